"""The dask engine against a real cluster in trouble: a dashboard port someone else holds,
an address that is no address, and workers that die holding the reference data."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys

import pandas as pd
import pytest
from helpers import HEADER, held_port, read_table
from typer.testing import CliRunner

from pa_batch.cli import app
from pa_batch.runner import dask_engine, engines

pytestmark = pytest.mark.dask

LINES = [
    f"C{n},1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,{mg},mg,G35"
    for n, mg in enumerate([5, 25, 10, 15] * 25)
]


def _extract(tmp_path):
    path = tmp_path / "claims.csv"
    path.write_text(HEADER + "\n" + "\n".join(LINES) + "\n")
    return path


def test_a_run_starts_its_own_cluster_while_port_8787_is_taken(tmp_path):
    extract = _extract(tmp_path)
    with held_port(8787):
        finished = subprocess.run(
            [sys.executable, "-m", "pa_batch", "run", str(extract), "--out", str(tmp_path / "out"),
             "--engine", "dask"],
            capture_output=True, text=True, cwd=tmp_path, timeout=300,
        )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == "", finished.stderr  # no UserWarning about the port, nothing
    assert "committed 100 records" in finished.stdout


@pytest.mark.parametrize(
    "address",
    ["foo", "inproc://x", "tls://127.0.0.1:8786", "tcp://host:99999", "tcp://:1", "a b:1"],
)
def test_a_malformed_scheduler_address_is_a_usage_error(tmp_path, address):
    result = CliRunner().invoke(
        app, ["run", str(_extract(tmp_path)), "--out", str(tmp_path / "out"), "--engine", "dask",
              "--scheduler", address],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "not a Dask scheduler address" in result.output
    assert "internal error" not in result.output and not (tmp_path / "out").exists()


@pytest.fixture
def cluster():
    """A cluster of its own (workers are killed here): two worker processes under nannies,
    which start a new worker when one dies."""
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=engines.LOCAL_DASHBOARD
    ) as local:
        yield local


def _kill_workers(client, how_many: int) -> None:
    """SIGKILL ``how_many`` worker processes, one after the other, each time waiting for its
    nanny to bring a fresh worker up (one that holds no scattered data)."""
    for address in list(client.scheduler_info()["workers"])[:how_many]:
        with contextlib.suppress(Exception):  # the worker dies before it can answer
            client.run(lambda: os.kill(os.getpid(), 9), workers=[address])
        client.wait_for_workers(2, timeout=120)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])  # records sent, or fragments read
@pytest.mark.parametrize("lost", ["both-at-once", "one-after-the-other"])
def test_workers_that_die_holding_the_reference_data_are_survived(
    tmp_path, cluster, monkeypatch, lost, fmt
):
    original = dask_engine.DaskEngine._scatter
    scattered = []

    def scatter_then_lose_the_workers(self):
        original(self)
        scattered.append(1)
        if len(scattered) > 1:
            return
        if lost == "both-at-once":
            with contextlib.suppress(Exception):
                self.client.run(lambda: os.kill(os.getpid(), 9))
            self.client.wait_for_workers(2, timeout=120)
        else:
            _kill_workers(self.client, 2)

    monkeypatch.setattr(dask_engine.DaskEngine, "_scatter", scatter_then_lose_the_workers)
    extract = _extract(tmp_path)
    if fmt == "parquet":
        frame = pd.read_csv(extract, dtype="str")
        extract = tmp_path / "claims.parquet"
        frame.to_parquet(extract, row_group_size=10)
    result = CliRunner().invoke(
        app, ["run", str(extract), "--out", str(tmp_path / "dask"), "--engine", "dask",
              "--scheduler", cluster.scheduler_address, "--batch-rows", "30"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(scattered) >= 2, "the reference data was never scattered again"
    local = CliRunner().invoke(app, ["run", str(extract), "--out", str(tmp_path / "local")])
    assert local.exit_code == 0
    pd.testing.assert_frame_equal(
        read_table(tmp_path / "dask", "results"), read_table(tmp_path / "local", "results")
    )


# --- workers read their own fragments -----------------------------------------------------


def _fragmented_parquet(path, corrupt: bool = False):
    """2,000 records in row groups of 100: powder lines and others, rejects, and keys that
    repeat across row groups (duplicates within a fragment and across fragments). With ``corrupt``, a data
    page in the middle fails its checksum."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for n in range(2000):
        powder = n % 3 == 0
        rows.append({
            # ids 0-299 come back in the second fragment, ids 1299-1498 within it
            "claim_id": f"C{n if n < 1500 else n - 1500 if n < 1800 else n - 501}",
            "line_number": "1" if n % 97 else "x",
            "member_id": "M1",
            "member_birth_date": "1980-01-02",
            "service_date": "2024-05-01",
            "ndc": "00000-0000-00" if powder else "00006-0749-54",
            "drug_name": "BACLOFEN POWDER" if powder else "LOSARTAN 50 MG TABLET",
            "route": "oral",
            "strength": str([5, 25, 12, 15][n % 4]),
            "strength_unit": "mg",
            "diagnosis_codes": "G35",
        })  # fmt: skip
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, path, row_group_size=100, write_page_checksum=True)
    if corrupt:
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(64)
        path.write_bytes(bytes(data))
    return path


@pytest.fixture
def s3_cluster(s3):
    """A cluster started after the ``s3`` fixture set the AWS variables: its worker
    processes reach the same S3 server through them."""
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=engines.LOCAL_DASHBOARD
    ) as local:
        yield local


def test_workers_read_their_own_parquet_fragments_from_s3(tmp_path, s3, s3_cluster, monkeypatch):
    from pa_batch.io import inputs

    url = s3.put("claims/fragmented.parquet", _fragmented_parquet(tmp_path / "f.parquet"))
    local = CliRunner().invoke(app, ["run", url, "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output

    def read_on_the_client(self, *args, **kwargs):
        raise AssertionError("the client read the records of a Parquet extract")

    monkeypatch.setattr(inputs.Extract, "batches", read_on_the_client)  # this process only
    result = CliRunner().invoke(
        app, ["run", url, "--out", str(tmp_path / "dask"), "--engine", "dask", "--scheduler",
              s3_cluster.scheduler_address, "--batch-rows", "300"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # the workers wrote a part per fragment: 2,000 records in fragments of 4 x 300
    assert [p.name for p in sorted((tmp_path / "dask" / "results").iterdir())] == [
        "part-000000.parquet",
        "part-000001.parquet",
    ]
    for name in ("results", "rejects"):  # the parts in order: the local run's rows
        pd.testing.assert_frame_equal(
            read_table(tmp_path / "dask", name), read_table(tmp_path / "local", name)
        )
    summaries = [
        pd.read_json(tmp_path / d / "summary.json", typ="series") for d in ("dask", "local")
    ]
    assert summaries[0]["counts"] == summaries[1]["counts"]
    assert summaries[0]["inputs"][0]["sha256"] == summaries[1]["inputs"][0]["sha256"]
    rejects = read_table(tmp_path / "dask", "rejects")
    duplicates = rejects[rejects["error_code"] == "DUPLICATE_KEY"]
    first_at = duplicates["message"].str.extract(r"row (\d+)\)$")[0].astype(int)
    assert (first_at < 400).any() and (first_at > 1250).any()  # across fragments and within


def test_a_corrupt_fragment_on_a_worker_fails_the_run_in_one_line(tmp_path, s3, s3_cluster):
    url = s3.put("claims/corrupt.parquet", _fragmented_parquet(tmp_path / "c.parquet", True))
    result = CliRunner().invoke(
        app, ["run", url, "--out", str(tmp_path / "out"), "--engine", "dask", "--scheduler",
              s3_cluster.scheduler_address, "--batch-rows", "300"],
    )  # fmt: skip
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"pa-batch: error: {url}: cannot read PARQUET file (")
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "results").exists()


def test_workers_write_their_parts_to_a_store_and_every_reading_command_reads_them(
    tmp_path, s3, s3_cluster
):
    """A dask run with an s3:// output: the workers put the parts under the run's prefix
    themselves, the pointer commits them, no working file is left; the library, diff and
    explain read the dataset as they read a local run's single files."""
    import pa_batch

    url = s3.put("claims/fragmented.parquet", _fragmented_parquet(tmp_path / "f.parquet"))
    out = s3.url("out")
    local = pa_batch.run(url, out, run_id="local")
    on_dask = pa_batch.run(url, out, run_id="dask", engine="dask",
                           scheduler=s3_cluster.scheduler_address, batch_rows=300)  # fmt: skip
    run = "out/.pa-batch/runs/dask/"
    # (pyarrow marks the run's prefix with an empty object when its working files go)
    assert [key[len(run) :] for key in s3.keys(run) if key != run] == [
        ".committed", "policy.toml", "reference.products.csv", "reference.shortages.csv",
        "rejects/part-000000.parquet", "rejects/part-000001.parquet",
        "results/part-000000.parquet", "results/part-000001.parquet",
        "summary.html", "summary.json", "summary.md",
    ]  # fmt: skip
    outputs = on_dask.summary["outputs"]
    assert (outputs["results"], outputs["rejects"]) == ("results", "rejects")
    assert (
        outputs["sha256"]["results/part-000001.parquet"]
        == hashlib.sha256(s3.read(run + "results/part-000001.parquet")).hexdigest()
    )

    pd.testing.assert_frame_equal(on_dask.results(), local.results())
    pd.testing.assert_frame_equal(on_dask.rejects(), local.rejects())
    difference = CliRunner().invoke(
        app, ["diff", "local", "dask", "--in", out, "--out", str(tmp_path / "diff.csv")]
    )
    assert difference.exit_code == 0, difference.output
    assert pd.read_csv(tmp_path / "diff.csv").empty  # the same decisions, line for line
    explained = CliRunner().invoke(app, ["explain", out, "C1299"])  # a key met twice
    assert explained.exit_code == 0, explained.output
    assert "DUPLICATE_KEY" in explained.output
