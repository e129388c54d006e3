"""Inputs on object storage: a run reads s3:// files, prefixes, patterns, reference data and
policy definitions as it reads local ones, from a real S3 API server (moto's, started by the
``s3`` fixture on a free port), and fails in one line naming the URL where the store does.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import SAMPLE_DATA
from test_policy import _two_versions
from typer.testing import CliRunner

from pa_batch.cli import app

SAMPLE = SAMPLE_DATA / "claims.csv"
REFERENCE = SAMPLE_DATA / "reference"
EXIT_TRANSIENT = 75


def _cli(*args) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def _extracts(folder: Path) -> list[Path]:
    """The sample in three formats: CSV, gzipped CSV, and its well-formed records as
    Parquet of several row groups."""
    first, second, last = folder / "a.csv", folder / "b.csv.gz", folder / "c.parquet"
    first.write_bytes(SAMPLE.read_bytes())
    second.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    frame = pd.read_csv(SAMPLE, dtype="str", keep_default_na=False, on_bad_lines="skip")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), last, row_group_size=40)
    return [first, second, last]


def _outputs(out: Path, folder: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results and rejects with ``folder/`` (a local folder or a URL) taken out of the
    files they name."""
    tables = [pd.read_parquet(out / name) for name in ("results.parquet", "rejects.parquet")]
    for table in tables:
        for column in ("source_file", "message"):
            if column in table:
                table[column] = table[column].str.replace(f"{folder}/", "", regex=False)
    return tables[0], tables[1]


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("given", ["files", "prefix", "pattern"])
def test_inputs_on_s3_are_decided_as_the_same_files_on_disk(s3, tmp_path, given):
    local = _extracts(tmp_path)
    for path in local:
        s3.put(f"claims/2024/{path.name}", path)
    s3.put("claims/2024/notes.txt", b"not an extract")  # a prefix takes extracts only
    s3.put("claims/2024/deeper/d.csv", SAMPLE)  # nor what lies below it
    arguments = {
        "files": [s3.url(f"claims/2024/{path.name}") for path in local],
        "prefix": [s3.url("claims/2024/")],
        "pattern": [s3.url("claims/2024/[abc].*")],
    }[given]
    reference = s3.put_tree("reference", REFERENCE)

    code, output = _cli("run", *arguments, "--out", tmp_path / "s3", "--reference-dir", reference)
    assert code == 0, output
    code, output = _cli(
        "run", *local, "--out", tmp_path / "disk", "--reference-dir", REFERENCE
    )  # fmt: skip
    assert code == 0, output

    on_s3 = _outputs(tmp_path / "s3", s3.url("claims/2024"))
    on_disk = _outputs(tmp_path / "disk", str(tmp_path))
    assert on_disk[1]["message"].str.contains("(first at a.csv row 8)", regex=False).any()
    for from_s3, from_disk in zip(on_s3, on_disk, strict=True):
        pd.testing.assert_frame_equal(from_s3, from_disk)
    summary = _summary(tmp_path / "s3")
    assert [(i["path"], i["sha256"]) for i in summary["inputs"]] == [
        (s3.url(f"claims/2024/{path.name}"), hashlib.sha256(path.read_bytes()).hexdigest())
        for path in local
    ]
    assert {s["name"]: s["origin"] for s in summary["reference"]}["shortages.csv"] == (
        f"{reference}/shortages.csv"
    )
    assert summary["counts"] == _summary(tmp_path / "disk")["counts"]


def test_a_policy_definition_on_s3_decides_as_the_same_file_on_disk(s3, tmp_path):
    policy = _two_versions(tmp_path)  # oral limit 25 mg from 2025-07-01
    line = "C{n},1,M1,1980-01-02,2025-07-0{n},00000-0000-00,BACLOFEN POWDER,oral,22,mg,G35"
    extract = tmp_path / "claims.csv"
    extract.write_text(
        "claim_id,line_number,member_id,member_birth_date,service_date,ndc,drug_name,route,"
        "strength,strength_unit,diagnosis_codes\n" + "\n".join(line.format(n=n) for n in (1, 2))
    )
    code, output = _cli(
        "run", s3.put("in/claims.csv", extract), "--out", tmp_path / "out",
        "--policy", s3.put("policies/raised.toml", policy),
    )  # fmt: skip
    assert code == 0, output
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert results[["policy_version", "decision"]].values.tolist() == [
        ["2025.2", "approved"],
        ["2025.2", "approved"],
    ]
    recorded = _summary(tmp_path / "out")["policy"]
    assert recorded["sha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()
    # the run keeps its own copy, so explain reads the definition as it was
    assert (tmp_path / "out/.pa-batch/current/policy.toml").read_bytes() == policy.read_bytes()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("in/missing.csv", "file not found"),
        ("notes/*.parquet", "pattern matches no file"),
        ("notes/", "directory holds no .csv, .csv.gz or .parquet file"),
        ("bad/broken.parquet", "cannot read PARQUET file (not a Parquet file, or truncated)"),
    ],
)
def test_a_missing_or_unreadable_input_on_s3_fails_in_one_line_naming_its_url(
    s3, tmp_path, key, said
):
    s3.put("bad/broken.parquet", b"PAR1 and then nothing")
    s3.put("notes/notes.txt", b"no extract")
    code, output = _cli("run", s3.url(key), "--out", tmp_path / "out")
    assert code == 1
    assert output.strip().splitlines()[-1] == f"pa-batch: error: {s3.url(key).rstrip('/')}: {said}"
    assert "Traceback" not in output
    assert not (tmp_path / "out" / "results.parquet").exists()


def test_a_bucket_that_does_not_exist_is_a_file_not_found(s3, tmp_path):
    code, output = _cli("run", "s3://no-such-bucket/claims.csv", "--out", tmp_path / "out")
    assert code == 1
    assert output.strip().splitlines()[-1] == (
        "pa-batch: error: s3://no-such-bucket/claims.csv: file not found"
    )


def test_an_unreachable_store_is_a_transient_failure_in_one_line(s3, tmp_path, monkeypatch):
    url = s3.put("in/claims.csv", SAMPLE)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    code, output = _cli("run", url, "--out", tmp_path / "out")
    assert code == EXIT_TRANSIENT  # the scheduler retries later
    assert output.strip().splitlines()[-1] == (
        f"pa-batch: error: {url}: cannot reach the object store"
    )


@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIAEXAMPLE:s3cr3t-value@bucket/claims.csv",
        "s3://bucket/claims.csv?access_key=AKIAEXAMPLE&secret_key=s3cr3t-value",
    ],
)
def test_credentials_in_a_url_are_refused_and_never_echoed(tmp_path, url):
    code, output = _cli("run", url, "--out", tmp_path / "out")
    assert code == 2  # a usage error: nothing is read, nothing recorded
    assert "must not carry credentials" in output
    assert "s3cr3t-value" not in output and "AKIAEXAMPLE" not in output
    assert not (tmp_path / "out").exists()


def test_an_unknown_url_scheme_is_a_usage_error(tmp_path):
    code, output = _cli("run", "ftp://host/claims.csv", "--out", tmp_path / "out")
    assert code == 2
    assert "not a supported URL" in output


def test_the_library_reads_store_urls_too(s3, tmp_path):
    import pa_batch

    result = pa_batch.run(s3.put("in/claims.csv", SAMPLE), tmp_path / "out")
    assert result.summary["inputs"][0]["path"] == s3.url("in/claims.csv")
    assert result.summary["counts"]["rows_read"] == 294  # the sample's records


def test_explain_re_reads_a_record_as_given_from_its_store_and_sees_a_change(s3, tmp_path):
    url = s3.put("in/claims.csv", SAMPLE)
    out = tmp_path / "out"
    assert _cli("run", url, "--out", out)[0] == 0

    code, output = _cli("explain", out, "RX24000008")
    assert code == 0, output
    assert f"as given, re-read from {url} record 8" in output

    s3.put("in/claims.csv", SAMPLE.read_bytes() + b"\n")  # the object replaced since the run
    code, output = _cli("explain", out, "RX24000008")
    assert code == 0, output
    assert f"normalized, since {url} is changed since the run (SHA-256" in output


# --- outputs on a store: the pointer commit, history, the reading commands ----------------


def _run_to_s3(s3, tmp_path, run_id: str, *extra) -> str:
    out = s3.url("out")
    code, output = _cli("run", SAMPLE, "--out", out, "--run-id", run_id, *extra)
    assert code == 0, output
    return out


def test_a_run_commits_to_a_store_the_same_files_a_local_run_commits(s3, tmp_path):
    out = _run_to_s3(s3, tmp_path, "first")
    code, output = _cli("run", SAMPLE, "--out", tmp_path / "disk", "--run-id", "first")
    assert code == 0, output

    run = ".pa-batch/runs/first"
    assert s3.keys("out/") == [
        "out/.pa-batch/current",
        "out/.pa-batch/last_attempt.json",
        *(f"out/{run}/{name}" for name in (
            ".committed", "policy.toml", "reference.products.csv", "reference.shortages.csv",
            "rejects.parquet", "results.parquet", "summary.html", "summary.json", "summary.md",
        )),
    ]  # fmt: skip
    assert s3.read("out/.pa-batch/current") == b"first\n"  # the pointer: the commit
    for name in ("results.parquet", "rejects.parquet"):
        assert s3.read(f"out/{run}/{name}") == (tmp_path / "disk" / name).read_bytes(), name
    stored = json.loads(s3.read(f"out/{run}/summary.json"))
    assert stored["counts"] == _summary(tmp_path / "disk")["counts"]

    code, output = _cli("runs", out, "--json")
    assert code == 0, output
    assert [(r["id"], r["current"], r["status"]) for r in json.loads(output)] == [
        ("first", True, "committed")
    ]
    code, on_store = _cli("explain", out, "RX24000008")
    assert code == 0, on_store
    code, on_disk = _cli("explain", tmp_path / "disk", "RX24000008")
    assert on_store.replace(out, "DIR") == on_disk.replace(str(tmp_path / "disk"), "DIR")


def test_diff_keep_runs_and_a_retry_work_on_a_store(s3, tmp_path):
    policy = _two_versions(tmp_path, second_limit=5.0)  # from 2025-07-01 nothing over 5 mg
    extract = tmp_path / "claims.csv"
    extract.write_text(
        "claim_id,line_number,member_id,member_birth_date,service_date,ndc,drug_name,route,"
        "strength,strength_unit,diagnosis_codes\n"
        "C1,1,M1,1980-01-02,2025-07-01,00000-0000-00,BACLOFEN POWDER,oral,12,mg,G35\n"
    )
    out = s3.url("out")
    for run_id, extra in (("a", []), ("b", ["--policy", policy]), ("c", [])):
        code, output = _cli("run", extract, "--out", out, "--run-id", run_id, "--keep-runs", "2",
                            *extra)  # fmt: skip
        assert code == 0, output
    # the oldest was retired: its objects are gone, the history lists the two kept
    assert not [key for key in s3.keys("out/") if "/runs/a/" in key]
    code, output = _cli("runs", out, "--json")
    assert [(r["id"], r["current"]) for r in json.loads(output)] == [("c", True), ("b", False)]

    code, output = _cli("diff", "b", "c", "--in", out, "--out", tmp_path / "diff.csv")
    assert code == 0, output
    assert "denied \u2192 approved: 1" in output
    diff = pd.read_csv(tmp_path / "diff.csv", dtype="str", keep_default_na=False)
    assert diff[["claim_id", "old_decision", "new_decision"]].values.tolist() == [
        ["C1", "denied", "approved"]
    ]

    keys = s3.keys("out/")
    code, output = _cli("run", extract, "--out", out, "--run-id", "c", "--keep-runs", "2")
    assert code == 0, output
    assert "already committed" in output
    assert s3.keys("out/") == keys  # nothing written but the attempt's record

    import pa_batch

    assert pa_batch.runs(out)[0]["id"] == "c"
    result = pa_batch.run(extract, out, run_id="d", policy=policy)
    assert result.results()["decision"].tolist() == ["denied"]


def _commit_put(where, mode: str) -> bool:
    """A PUT of the commit: an object of the run, or the pointer."""
    return mode == "wb" and ("/runs/" in where.url or where.name == "current")


class Killed(BaseException):
    """A kill at a step of the commit: nothing after it runs, no cleanup either."""


def test_a_run_killed_at_each_step_of_the_store_commit_leaves_the_old_or_the_new_run(
    s3, tmp_path, monkeypatch
):
    import pa_batch
    from pa_batch.io import storage, store_commit

    out = s3.url("out")
    pa_batch.run(SAMPLE, out, run_id="old")
    puts: list[str] = []
    real_open = storage.StorePath.open

    def counting_open(self, mode="rb"):
        if _commit_put(self, mode):
            puts.append(self.url)
        return real_open(self, mode)

    monkeypatch.setattr(storage.StorePath, "open", counting_open)
    pa_batch.run(SAMPLE, s3.url("count"), run_id="count")
    steps = len(puts)  # every object of a commit, the pointer, the mark
    assert puts[-2].endswith("/.pa-batch/current") and puts[-1].endswith("/.committed")
    monkeypatch.setattr(store_commit.StoreOutput, "abort", lambda self: None)  # killed: none

    for step in range(steps):
        calls = iter(range(10**6))

        def dying_open(self, mode="rb", step=step, calls=calls):
            if _commit_put(self, mode) and next(calls) == step:
                raise Killed
            return real_open(self, mode)

        monkeypatch.setattr(storage.StorePath, "open", dying_open)
        run_id = f"new{step}"
        with pytest.raises(Killed):
            pa_batch.run(SAMPLE, out, run_id=run_id)
        monkeypatch.setattr(storage.StorePath, "open", real_open)

        served = pa_batch.runs(out)
        assert all(entry["status"] != "damaged" for entry in served)  # never a half run
        current = [entry["id"] for entry in served if entry["current"]]
        committed = step == steps - 1  # killed before the mark only: the pointer was put
        assert current == [run_id if committed else served_before(served, run_id)]
        explained = pa_batch.explain(out, "RX24000008")  # the served run reads whole
        assert explained["run"]["id"] == current[0]
        if not committed:  # nothing committed: a retry with the same id commits
            assert run_id not in [entry["id"] for entry in served]
            assert pa_batch.run(SAMPLE, out, run_id=run_id).status == "committed"
        assert pa_batch.runs(out)[0]["id"] == run_id

    pa_batch.run(SAMPLE, out, run_id="after")
    # no debris: every run's objects are a committed run's (the one killed before its mark
    # was marked by the next run)
    # (pyarrow leaves an empty "runs/" marker where it deleted a prefix: no run)
    prefixes = {key.split("/")[3] for key in s3.keys("out/.pa-batch/runs/")} - {""}
    marked = {key.split("/")[3] for key in s3.keys("out/.pa-batch/runs/") if key.endswith(
        "/.committed")}  # fmt: skip
    assert prefixes == marked == {"old", "after", *(f"new{step}" for step in range(steps))}


def served_before(served: list[dict], run_id: str) -> str:
    """The newest committed run other than ``run_id``."""
    return next(
        entry["id"] for entry in served if entry["id"] != run_id and entry["status"] != "failed"
    )
