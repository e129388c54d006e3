"""Helpers for tests: fixture paths and a view of a run's committed outputs."""

from __future__ import annotations

import csv
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from hypothesis import settings

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_EXAMPLES = FIXTURES / "spec_examples"
SAMPLE_DATA = Path(__file__).parent.parent / "sample_data"

HEADER = (
    "claim_id,line_number,member_id,member_birth_date,service_date,ndc,drug_name,route,"
    "strength,strength_unit,diagnosis_codes"
)
# a baclofen powder line that passes every check and is approved (oral 5 mg, MS)
VALID_LINE = {
    "claim_id": "C",
    "line_number": "1",
    "member_id": "M1",
    "member_birth_date": "1980-01-02",
    "service_date": "2024-05-01",
    "ndc": "00000-0000-00",
    "drug_name": "BACLOFEN POWDER",
    "route": "oral",
    "strength": "5",
    "strength_unit": "mg",
    "diagnosis_codes": "G35",
}


class Run:
    """A committed (or failed) run: exit code, console text, and the output files."""

    def __init__(self, out: Path, exit_code: int, output: str, stdout: str, stderr: str):
        self.out = out
        self.exit_code = exit_code
        self.output = output  # stdout and stderr as a terminal shows them
        self.stdout = stdout
        self.stderr = stderr

    @property
    def summary(self) -> dict:
        return json.loads((self.out / "summary.json").read_text())

    def table(self, name: str) -> pd.DataFrame:
        """The run's ``name`` table: one file, or a dataset's parts in name order."""
        return read_table(self.out, name)

    @property
    def results(self) -> pd.DataFrame:
        return self.table("results")

    @property
    def rejects(self) -> pd.DataFrame:
        return self.table("rejects")


def _read_csv_text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype="str", keep_default_na=False)


def table_bytes(out: Path, name: str) -> bytes:
    """An output table's bytes: its one file's, or its parts' in name order."""
    for suffix in (".parquet", ".csv"):
        if (out / f"{name}{suffix}").exists():
            return (out / f"{name}{suffix}").read_bytes()
    parts = sorted((out / name).glob("part-*"))
    if not parts:
        raise FileNotFoundError(name)
    return b"".join(part.read_bytes() for part in parts)


def read_table(out: Path, name: str) -> pd.DataFrame:
    """An output table as written: ``name.parquet`` or ``name.csv`` (a local run), or the
    parts ``name/part-*`` (a dask run) read in name order and joined."""
    for suffix, read in ((".parquet", pd.read_parquet), (".csv", _read_csv_text)):
        path = out / f"{name}{suffix}"
        if path.exists():
            return read(path)
        parts = sorted((out / name).glob(f"part-*{suffix}"))
        if parts:
            return pd.concat([read(part) for part in parts], ignore_index=True)
    raise FileNotFoundError(name)


def run_lines(folder: Path, lines: list[dict[str, str]], *args: str) -> Path:
    """Write ``lines`` (VALID_LINE's columns) to folder/claims.csv, run the CLI on it, return
    the committed output directory."""
    from typer.testing import CliRunner

    from pa_batch.cli import app

    extract = folder / "claims.csv"
    with extract.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(VALID_LINE))
        writer.writeheader()
        writer.writerows(lines)
    out = folder / "out"
    result = CliRunner().invoke(app, ["run", str(extract), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return out


@contextmanager
def held_port(port: int) -> Iterator[None]:
    """Keep TCP ``port`` taken (a listening socket on every interface) for the duration, as a
    notebook's Dask dashboard on 8787 would. Already taken by another process: just as good."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            holder.bind(("", port))
            holder.listen()
        except OSError:
            pass  # someone else holds it: the condition under test holds anyway
        yield
    finally:
        holder.close()


def nothing_published(out: Path) -> bool:
    """A failed first run published nothing: DIR holds at most its control directory, with
    the attempt's own records (last_attempt.json, failures/) and no run."""
    if not out.exists():
        return True
    control = out / ".pa-batch"
    return [p.name for p in out.iterdir()] == [".pa-batch"] and not (
        {p.name for p in control.iterdir()} - {"last_attempt.json", "failures", "lock"}
    )


class S3Bucket:
    """A bucket of the test S3 server (the ``s3`` fixture): objects put from local files."""

    _made = iter(range(10**9))

    def __init__(self, name: str):
        import boto3

        self.name = name
        self.client = boto3.client("s3")

    @classmethod
    def create(cls) -> S3Bucket:
        import os

        bucket = cls(f"claims-{os.getpid()}-{next(cls._made)}")
        bucket.client.create_bucket(Bucket=bucket.name)
        return bucket

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"

    def put(self, key: str, source: Path | bytes) -> str:
        """Put ``source`` (a file's bytes, or bytes) under ``key``; its URL."""
        body = source.read_bytes() if isinstance(source, Path) else source
        self.client.put_object(Bucket=self.name, Key=key, Body=body)
        return self.url(key)

    def put_tree(self, prefix: str, folder: Path) -> str:
        """Every file directly in ``folder`` under ``prefix/``; the prefix's URL."""
        for path in sorted(folder.iterdir()):
            if path.is_file():
                self.put(f"{prefix}/{path.name}", path)
        return self.url(prefix)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


FAST_PROFILE = "fast"  # make test-fast: --hypothesis-profile=fast (registered in conftest.py)


def examples(count: int) -> int:
    """A property test's example count: ``count`` in make test, at most 20 in the fast loop
    (an explicit ``max_examples`` would override the profile, so it is asked here)."""
    if settings.get_current_profile_name() == FAST_PROFILE:
        return min(count, 20)
    return count
