"""pa_batch as a library: a notebook's calls give data, not just counts; failures are
RunErrors with a category; events reach logging and a callback; and nothing about the
calling process changes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import HEADER, SAMPLE_DATA

import pa_batch

LINE = "C{n},1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,{mg},mg,G35"


def _extract(path: Path, strengths: list[int]) -> Path:
    rows = [LINE.format(n=n, mg=mg) for n, mg in enumerate(strengths, start=1)]
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def test_run_returns_the_committed_run_and_its_data(tmp_path):
    extract = _extract(tmp_path / "a.csv", [5, 25])
    result = pa_batch.run(extract, tmp_path / "out", run_id="nb-1")
    assert (result.status, result.exit_code, result.run_id) == ("committed", 0, "nb-1")
    assert result.run_dir == tmp_path / "out" / ".pa-batch" / "runs" / "nb-1"
    assert result.summary == json.loads((tmp_path / "out" / "summary.json").read_text())
    results = result.results()
    assert results[["claim_id", "decision", "reasons"]].values.tolist() == [
        ["C1", "approved", ""],
        ["C2", "denied", "ORAL_DOSE_EXCEEDS_LIMIT"],
    ]
    published = pq.read_table(tmp_path / "out" / "results.parquet")
    pd.testing.assert_frame_equal(results, published.to_pandas(date_as_object=False))
    assert result.rejects().empty


def test_a_run_over_the_reject_limit_is_committed_with_exit_code_3(tmp_path):
    extract = _extract(tmp_path / "a.csv", [5])
    extract.write_text(extract.read_text() + "C9,x,M1,1980-01-02,2024-05-01,1,X,oral,5,mg,G35\n")
    result = pa_batch.run(extract, tmp_path / "out", max_reject_rate=0.1)
    assert (result.status, result.exit_code) == ("committed_over_threshold", 3)


def test_a_failure_is_a_run_error_with_its_category_file_and_column(tmp_path):
    extract = tmp_path / "no_ndc.csv"
    extract.write_text("claim_id,line_number,member_id,service_date\nC1,1,M1,2024-05-01\n")
    with pytest.raises(pa_batch.RunError) as raised:
        pa_batch.run([extract], tmp_path / "out")
    error = raised.value
    assert (error.category, error.file, error.column) == ("input", str(extract), "ndc")
    assert error.message == "required column missing from header"
    with pytest.raises(pa_batch.RunError) as raised:
        pa_batch.run([extract], tmp_path / "out", engine="spark")
    assert raised.value.category == "input" and "engine" in raised.value.message


def test_events_go_to_the_pa_batch_logger_and_to_on_event(tmp_path, caplog):
    seen: list[dict] = []
    with caplog.at_level(logging.INFO, logger="pa_batch"):
        pa_batch.run(_extract(tmp_path / "a.csv", [5]), tmp_path / "out", on_event=seen.append)
    names = [event["event"] for event in seen]
    assert names[0] == "input_started" and names[-2:] == ["run_committed", "run_finished"]
    logged = [record.pa_batch for record in caplog.records if record.name == "pa_batch"]
    assert logged == seen
    assert all(isinstance(event["message"], str) and event["message"] for event in seen)
    finished = seen[-1]
    assert finished["counts"] == {"rows_read": 1, "approved": 1, "denied": 0,
                                  "investigational": 0, "out_of_scope": 0, "rejected": 0}  # fmt: skip
    assert Path(finished["summary"]).name == "summary.json"


def test_run_leaves_the_arrow_memory_pool_as_the_caller_had_it(tmp_path):
    before = pa.default_memory_pool().backend_name
    pa_batch.run(_extract(tmp_path / "a.csv", [5]), tmp_path / "out")
    assert pa.default_memory_pool().backend_name == before


@pytest.mark.subprocess
def test_importing_the_library_tunes_nothing(tmp_path):
    """In a fresh interpreter, as a notebook kernel would be: the pool Arrow picks by itself
    is still the pool after ``import pa_batch`` and a run."""
    extract = _extract(tmp_path / "a.csv", [5])
    script = (
        "import pyarrow as pa; first = pa.default_memory_pool().backend_name\n"
        "import pa_batch; pa_batch.run([{extract!r}], {out!r})\n"
        "print(first, pa.default_memory_pool().backend_name)\n"
    ).format(extract=str(extract), out=str(tmp_path / "out"))
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           cwd=tmp_path, check=True).stdout.split()  # fmt: skip
    assert shown[0] == shown[1]


def test_decide_frame_gives_what_a_run_gives_for_the_same_records(tmp_path):
    reference = SAMPLE_DATA / "reference"
    # the sample's records but its malformed one (a frame has no field count to get wrong)
    frame = pd.read_csv(SAMPLE_DATA / "claims.csv", dtype="str", keep_default_na=False,
                        on_bad_lines="skip")  # fmt: skip
    sample = tmp_path / "sample.csv"
    frame.to_csv(sample, index=False)
    results, rejects = pa_batch.decide_frame(frame, reference_dir=reference)
    committed = pa_batch.run(sample, tmp_path / "out", reference_dir=reference)
    want_rejects = committed.rejects()
    want_rejects["message"] = want_rejects["message"].str.replace(str(sample), "<frame>")
    for got, want in ((results, committed.results()), (rejects, want_rejects)):
        assert len(got) == len(want) > 0
        columns = [c for c in want.columns if c != "source_file"]
        pd.testing.assert_frame_equal(got[columns], want[columns])
        assert set(got["source_file"]) == {"<frame>"}


def test_explain_diff_and_runs_as_functions(tmp_path):
    out = tmp_path / "out"
    pa_batch.run(_extract(tmp_path / "a.csv", [5, 5]), out, run_id="before")
    pa_batch.run(_extract(tmp_path / "b.csv", [5, 25]), out, run_id="after")
    explained = pa_batch.explain(out, "C2")
    assert [line["decision"] for line in explained["lines"]] == ["denied"]
    changed = pa_batch.diff("before", "after", runs_in=out)
    assert changed[["claim_id", "old_decision", "new_decision"]].values.tolist() == [
        ["C2", "approved", "denied"]
    ]
    listed = pa_batch.runs(out)
    assert [(entry["id"], entry["current"]) for entry in listed] == [
        ("after", True),
        ("before", False),
    ]


@pytest.mark.dask
def test_an_existing_dask_client_is_used_and_left_open(tmp_path, dask_scheduler):
    from dask.distributed import Client

    with Client(dask_scheduler) as client:
        result = pa_batch.run(_extract(tmp_path / "a.csv", [5, 25]), tmp_path / "out",
                              engine="dask", client=client)  # fmt: skip
        assert result.summary["counts"]["approved"] == 1
        assert client.status == "running"
        assert client.submit(sum, [1, 2]).result() == 3
