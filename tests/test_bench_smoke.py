"""A small run of the benchmark (`make bench` runs it at 10M and 50M lines): the extract
generator, the read floor, both DuckDB peers and pa-batch side by side, and the equivalent
peer agreeing with pa-batch on every decided line, so the benchmark compares like with like."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).parent.parent / "bench"


@pytest.mark.slow
@pytest.mark.subprocess
def test_benchmark_smoke_runs_both_sides_and_they_agree(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_run.py"), "--lines", "20000", "--no-large",
         "--shapes", "typed-1M,csv", "--data", str(tmp_path), "--report", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "results.json").read_text())
    assert [row["file"] for row in report["rows"]] == [
        "extract_20000_all_typed-1M.parquet", "extract_20000_all_csv.csv",
        "extract_20000_1pct_typed-1M.parquet", "extract_20000_1pct_csv.csv",
    ]  # fmt: skip
    for row in report["rows"]:
        assert row["ratio"] > 0 and row["lean_ratio"] > 0 and row["floor_ratio"] > 0
        assert row["pa_batch_rss_mib"] > 0
    matrix = (tmp_path / "results.md").read_text()
    assert "| Parquet, typed columns, 1M-row groups | all |" in matrix
    assert "| CSV | 1pct |" in matrix

    # the lean pass decided the powder lines it found, in the policy's three outcomes
    lean = pd.read_parquet(tmp_path / "out" / "lean" / "results.parquet")
    assert len(lean) > 0
    assert set(lean["decision"]) <= {"approved", "denied", "investigational"}

    # the last pair run was the 1% CSV: both sides' results of it are in tmp_path/out
    ours = pd.read_parquet(tmp_path / "out" / "pa_batch" / "results.parquet")
    peer = pd.read_parquet(tmp_path / "out" / "peer" / "results.parquet")
    assert len(ours) == len(peer) > 0
    both = ours.merge(peer, on="source_row", suffixes=("", "_peer"))
    for column in ("decision", "reasons", "advisories"):
        assert (both[column] == both[f"{column}_peer"]).all(), column
    our_rejects = pd.read_parquet(tmp_path / "out" / "pa_batch" / "rejects.parquet")
    peer_rejects = pd.read_parquet(tmp_path / "out" / "peer" / "rejects.parquet")
    # the peer skips malformed CSV records (it reads every record it can, as DuckDB does)
    ours_rejected = set(
        our_rejects.loc[our_rejects["error_code"] != "MALFORMED_RECORD", "source_row"]
    )
    assert ours_rejected == set(peer_rejects["source_row"])


@pytest.mark.slow
@pytest.mark.subprocess
def test_reading_benchmark_smoke_measures_explain_and_diff(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_reading.py"), "--lines", "20000",
         "--data", str(tmp_path), "--report", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "reading.json").read_text())["rows"]
    assert [row["command"].split(" (")[0] for row in rows] == [
        "run", "run", "explain one claim", "diff of the two runs",
    ] * 2  # fmt: skip
    assert all(row["seconds"] > 0 and row["peak_rss_mib"] > 0 for row in rows)
    assert (tmp_path / "reading_20000" / "diff_parquet.parquet").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.dask
def test_the_dask_client_benchmark_runs_on_a_cluster_of_separate_processes(tmp_path):
    report_path = tmp_path / "dask_client.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_dask_client.py"), "--lines", "20000", "--files",
         "2", "--rounds", "1", "--workers", "1", "2", "--json", str(report_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert sorted(report["runs"]) == ["dask-1", "dask-2", "local"]
    assert [len(runs) for runs in report["runs"].values()] == [1, 1, 1]  # a round: one each
    for run in [run for runs in report["runs"].values() for run in runs]:
        assert run["cpu_s"] > 0 and run["wall_s"] > 0
        assert not run["large_graph_warning"]
    for engine in ("dask-1", "dask-2"):
        assert report["runs"][engine][0]["workers_cpu_s"] > 0
        assert report["first_run_on_a_cold_cluster"][engine]["wall_s"] > 0
    assert report["client_cpu_share_of_local_cpu"] > 0 and report["scaling"] > 0
    assert report["scaling_by_round"] == [report["scaling"]]  # one round: its ratio is the best
    assert report["scaling_median_of_rounds"] == report["scaling"]
    assert report["import_floor_cpu_s"] > report["any_dask_client_floor_cpu_s"] > 0
    # the notebook's three calls on its connected client, each the client's work alone
    assert len(report["notebook_client_cpu_s"]) == 3
    assert all(0 < cpu < report["import_floor_cpu_s"] for cpu in report["notebook_client_cpu_s"])


def test_registry_benchmark_smoke_times_every_batch(tmp_path):
    report_path = tmp_path / "registry.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_registry.py"), "--lines", "300000", "--batch-rows",
         "10000", "--json", str(report_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert report["batches"] == 30
    assert report["keys_registered"] + report["repeats_found"] == 300_000
    assert report["first_tenth_median_ms"] > 0 and report["last_tenth_median_ms"] > 0
