"""The command line: exit codes 0/1/2/3, one-line errors without tracebacks, the console
script and ``python -m pa_batch`` from the installed package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SAMPLE_DATA

LINE = "C1,1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35"


def test_committed_run_exits_0_and_prints_outcome_table(run_cli, write_csv):
    run = run_cli(write_csv([LINE]))
    assert run.exit_code == 0
    assert "approved" in run.output and "rejected" in run.output
    assert run.summary["counts"]["approved"] == 1


def test_invalid_reference_file_exits_1_naming_file_and_column(run_cli, write_csv, tmp_path):
    reference = tmp_path / "ref"
    reference.mkdir()
    (reference / "shortages.csv").write_text(
        "route,strength,strength_unit,start_date,end_date\noral,10,mg,2024-13-01,\n"
    )
    run = run_cli(write_csv([LINE]), "--reference-dir", reference)
    assert run.exit_code == 1
    assert "shortages.csv" in run.stderr and "column 'start_date'" in run.stderr
    assert "row 1" in run.stderr


@pytest.mark.parametrize(
    "args",
    [["--format", "xml"], ["--max-reject-rate", "1.5"], ["--bogus"], []],
    ids=["format", "rate-range", "unknown-option", "no-out"],
)
def test_usage_errors_exit_2(tmp_path, write_csv, args):
    from typer.testing import CliRunner

    from pa_batch.cli import app

    base = ["run", str(write_csv([LINE]))]
    if args:
        base += ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, base + args)
    assert result.exit_code == 2


def test_reject_rate_over_threshold_commits_and_exits_3(run_cli, write_csv):
    run = run_cli(write_csv([LINE, "C2,x,M1,1980-01-02,2024-05-01,1,B,oral,5,mg,G35"]),
                  "--max-reject-rate", "0.25")  # fmt: skip
    assert run.exit_code == 3
    assert run.summary["over_reject_threshold"] is True
    assert run.summary["counts"]["rejected"] == 1


def test_reject_rate_at_threshold_exits_0(run_cli, write_csv):
    run = run_cli(write_csv([LINE, "C2,x,M1,1980-01-02,2024-05-01,1,B,oral,5,mg,G35"]),
                  "--max-reject-rate", "0.5")  # fmt: skip
    assert run.exit_code == 0


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize(
    ("extra", "exit_code", "status"),
    [([], 0, "committed"), (["--max-reject-rate", "0.25"], 3, "committed_over_threshold")],
)
def test_json_log_is_one_object_per_line_ending_with_the_exit_code(
    run_cli, write_csv, extra, exit_code, status
):
    extract = write_csv([LINE, "C2,x,M1,1980-01-02,2024-05-01,1,B,oral,5,mg,G35"])
    run = run_cli(extract, "--log-format", "json", *extra)
    assert run.exit_code == exit_code
    assert run.stderr == ""
    events = _json_lines(run.stdout)
    assert events[-1] == {**events[-1], "event": "run_finished", "status": status,
                          "exit_code": exit_code}  # fmt: skip
    assert [e["event"] for e in events][:2] == ["input_started", "batch_done"]
    committed = next(e for e in events if e["event"] == "run_committed")
    summary = run.summary
    assert committed["run_id"] == summary["run"]["id"]
    for outcome in ("rows_read", "approved", "rejected"):
        assert committed[outcome] == summary["counts"][outcome]
    assert sum(e["records"] for e in events if e["event"] == "batch_done") == 2


def test_json_log_failure_names_file_and_column(run_cli, tmp_path):
    extract = _write(tmp_path / "no_ndc.csv", "claim_id,line_number,member_id,service_date\n")
    run = run_cli(extract, "--log-format", "json")
    assert run.exit_code == 1
    *_, failed, finished = _json_lines(run.stdout)
    assert failed["event"] == "run_failed" and failed["level"] == "error"
    assert failed["file"] == str(extract) and failed["column"] == "ndc"
    assert finished == {**finished, "event": "run_finished", "status": "failed", "exit_code": 1}


def test_debug_shows_the_traceback_that_is_otherwise_hidden(run_cli, tmp_path):
    extract = _write(tmp_path / "bad.parquet", "not parquet")
    quiet = run_cli(extract)
    loud = run_cli(extract, "--debug")
    assert quiet.exit_code == loud.exit_code == 1
    assert "Traceback" not in quiet.stderr
    assert "Traceback (most recent call last)" in loud.stderr
    assert "RunError" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1] == quiet.stderr.strip()


def test_help_shows_examples():
    from typer.testing import CliRunner

    from pa_batch.cli import app

    result = CliRunner().invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    assert "pa-batch run claims.csv --out out/" in result.output


def _installed_command() -> list[str]:
    script = Path(sys.executable).parent / "pa-batch"
    return [str(script)] if script.exists() else [shutil.which("pa-batch") or "pa-batch"]


@pytest.mark.subprocess
@pytest.mark.parametrize("command", ["console-script", "python-m"])
def test_installed_package_runs_the_sample(tmp_path, command):
    argv = (
        _installed_command() if command == "console-script" else [sys.executable, "-m", "pa_batch"]
    )
    out = tmp_path / "out"
    completed = subprocess.run(
        [*argv, "run", str(SAMPLE_DATA / "claims.csv"), "--out", str(out),
         "--reference-dir", str(SAMPLE_DATA / "reference")],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert (out / "summary.json").exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_progress_goes_to_a_terminal_only(write_csv, tmp_path, monkeypatch):
    """A progress bar per input on a terminal (rich), ending at the input's record count;
    nothing on a captured stderr."""
    import io
    import re

    monkeypatch.setenv("COLUMNS", "400")  # a terminal wide enough for the temporary path

    import pa_batch
    from pa_batch.runner.runlog import RunLog

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    extract = write_csv([LINE] * 3)
    for err, on_terminal in ((Terminal(), True), (io.StringIO(), False)):
        log = RunLog("text", out=io.StringIO(), err=err)
        pa_batch.run([extract], tmp_path / f"out{on_terminal}", batch_rows=2, on_event=log)
        shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err.getvalue())
        if not on_terminal:
            assert shown == ""
            continue
        last = [line for line in shown.splitlines() if line.strip()][-1]
        assert last.startswith(f"pa-batch: {extract} (csv)")
        assert re.search(r"\b3 records\b", last)
        assert "C1" not in shown and "M1" not in shown  # counts and paths, no cell value


def test_unreadable_input_exits_1_naming_it(run_cli, write_csv, monkeypatch):
    # tests may run as root, for whom chmod 000 does not stop reading: refuse it here instead
    extract = write_csv([LINE])
    real_open = Path.open

    def guarded_open(self, *args, **kwargs):
        if self == extract:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded_open)
    run = run_cli(extract)
    assert run.exit_code == 1
    assert run.stderr.strip() == f"pa-batch: error: {extract}: cannot read file (Permission denied)"
