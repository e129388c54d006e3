"""The nightly contract: a scheduler's own run ids, retries that are safe, exit codes that say
whether to retry, a last JSON line with the counts, a record of every attempt; and the
scheduling examples of docs/scheduling.md, run as far as they run without the schedulers."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import HEADER, SAMPLE_DATA
from typer.testing import CliRunner

from pa_batch.cli import app

EXAMPLES = Path(__file__).parent.parent / "examples" / "scheduling"
AIRFLOW_ID = "scheduled__2024-01-01T00:00:00+00:00"
LINE = "C{n},1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35"
BAD = "C{n},x,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35"


def _extract(path: Path, good: int = 3, bad: int = 0) -> Path:
    rows = [LINE.format(n=n) for n in range(good)] + [BAD.format(n=n) for n in range(bad)]
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def _run(*args) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(app, ["run", *map(str, args), "--log-format", "json"])
    return result.exit_code, [json.loads(line) for line in result.stdout.splitlines()]


def _runs_in(out: Path) -> list[str]:
    return sorted(os.listdir(out / ".pa-batch" / "runs"))


def test_an_airflow_run_id_is_kept_exactly_everywhere(tmp_path):
    out = tmp_path / "out"
    code, events = _run(_extract(tmp_path / "a.csv"), "--out", out, "--run-id", AIRFLOW_ID)
    assert code == 0
    assert {event["run_id"] for event in events} == {AIRFLOW_ID}
    assert json.loads((out / "summary.json").read_text())["run"]["id"] == AIRFLOW_ID
    (name,) = _runs_in(out)
    assert "/" not in name and ":" not in name and "+" not in name
    listing = CliRunner().invoke(app, ["runs", str(out)]).stdout
    assert f"{AIRFLOW_ID} *" in listing
    explained = CliRunner().invoke(app, ["explain", AIRFLOW_ID, "C1", "--in", str(out)])
    assert explained.exit_code == 0, explained.output


def test_two_ids_that_differ_only_in_unsafe_characters_get_two_directories(tmp_path):
    out = tmp_path / "out"
    extract = _extract(tmp_path / "a.csv")
    assert _run(extract, "--out", out, "--run-id", "night 1/2")[0] == 0
    assert _run(extract, "--out", out, "--run-id", "night 1:2")[0] == 0
    assert len(_runs_in(out)) == 2


def test_the_last_json_line_carries_the_counts_and_the_summary(tmp_path):
    out = tmp_path / "out"
    code, events = _run(_extract(tmp_path / "a.csv", good=3, bad=1), "--out", out)
    finished = events[-1]
    assert (code, finished["event"], finished["status"], finished["exit_code"]) == (
        0, "run_finished", "committed", 0
    )  # fmt: skip
    assert finished["counts"] == {"rows_read": 4, "approved": 3, "denied": 0,
                                  "investigational": 0, "out_of_scope": 0, "rejected": 1}  # fmt: skip
    summary = json.loads(Path(finished["summary"]).read_text())
    assert summary == json.loads((out / "summary.json").read_text())
    assert all(isinstance(event["message"], str) for event in events)


def test_a_retry_after_exit_3_exits_3_again_and_writes_no_second_run(tmp_path):
    out = tmp_path / "out"
    extract = _extract(tmp_path / "a.csv", good=3, bad=1)
    args = (extract, "--out", out, "--run-id", AIRFLOW_ID, "--max-reject-rate", "0.1")
    code, _ = _run(*args)
    assert code == 3
    before = {p: p.stat().st_mtime_ns for p in (out / ".pa-batch" / "runs").rglob("*")}
    code, events = _run(*args)
    assert code == 3
    assert [event["event"] for event in events] == ["run_already_committed", "run_finished"]
    assert events[-1]["status"] == "committed_over_threshold"
    assert events[-1]["counts"]["rejected"] == 1
    assert {p: p.stat().st_mtime_ns for p in (out / ".pa-batch" / "runs").rglob("*")} == before
    assert len(_runs_in(out)) == 1


def test_the_same_id_with_other_inputs_fails_and_is_no_failure_of_that_run(tmp_path):
    out = tmp_path / "out"
    assert _run(_extract(tmp_path / "a.csv", good=3), "--out", out, "--run-id", "n1")[0] == 0
    code, events = _run(_extract(tmp_path / "b.csv", good=2), "--out", out, "--run-id", "n1")
    assert code == 1
    failed = events[-2]
    assert failed["category"] == "input" and "run id 'n1' is already committed" in failed["error"]
    assert not (out / ".pa-batch" / "failures").exists()  # n1 did not fail: it stands
    attempt = json.loads((out / ".pa-batch" / "last_attempt.json").read_text())
    assert (attempt["run_id"], attempt["status"], attempt["exit_code"]) == ("n1", "failed", 1)


def test_a_run_id_whose_attempt_failed_may_be_retried(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "late.csv"
    code, events = _run(missing, "--out", out, "--run-id", "n2")
    assert code == 1 and events[-2]["category"] == "input"
    _extract(missing)  # the file arrives
    code, events = _run(missing, "--out", out, "--run-id", "n2")
    assert code == 0 and events[-1]["status"] == "committed"
    listing = CliRunner().invoke(app, ["runs", str(out)]).stdout
    assert "n2 (failed): file not found" in listing


@pytest.mark.subprocess
def test_a_retry_after_a_kill_that_landed_after_the_commit_exits_0(tmp_path):
    from test_crash_safety import KILL_AT_COMMIT_STEP

    def with_an_earlier_run() -> Path:
        out = tmp_path / "out"
        shutil.rmtree(out, ignore_errors=True)
        assert _run(_extract(tmp_path / "old.csv", good=1), "--out", out)[0] == 0
        return out

    extract = _extract(tmp_path / "a.csv")
    out = with_an_earlier_run()
    # --keep-runs 1: retiring the earlier run are the commit's last steps, after the swap
    arguments = ["run", str(extract), "--out", str(out), "--run-id", AIRFLOW_ID, "--keep-runs", "1"]
    counted = subprocess.run([sys.executable, "-c", KILL_AT_COMMIT_STEP, "0", *arguments],
                             capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    total = int(counted.stderr.split("commit steps: ")[1].split()[0])
    out = with_an_earlier_run()
    killed = subprocess.run([sys.executable, "-c", KILL_AT_COMMIT_STEP, str(total), *arguments],
                            capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    code, events = _run(extract, "--out", out, "--run-id", AIRFLOW_ID)
    assert code == 0
    assert [event["event"] for event in events] == ["run_already_committed", "run_finished"]
    assert AIRFLOW_ID in json.loads((out / "summary.json").read_text())["run"]["id"]


def test_a_run_into_a_locked_directory_exits_75_transient(tmp_path):
    from pa_batch.io.commit import OutputDirectory

    out = tmp_path / "out"
    holder = OutputDirectory(out).open([])  # another run is writing
    try:
        code, events = _run(_extract(tmp_path / "a.csv"), "--out", out)
    finally:
        holder.abort()
        holder.close()
    assert code == 75
    failed, finished = events[-2:]
    assert (failed["event"], failed["category"]) == ("run_failed", "transient")
    assert (finished["status"], finished["exit_code"], finished["counts"]) == ("failed", 75, None)
    attempt = json.loads((out / ".pa-batch" / "last_attempt.json").read_text())
    assert (attempt["exit_code"], attempt["category"]) == (75, "transient")


def test_a_missing_column_exits_1_input_and_a_first_run_leaves_its_record(tmp_path):
    extract = tmp_path / "no_ndc.csv"
    extract.write_text("claim_id,line_number,member_id,service_date\nC1,1,M1,2024-05-01\n")
    out = tmp_path / "out"
    code, events = _run(extract, "--out", out, "--run-id", "first")
    assert code == 1
    failed = events[-2]
    assert (failed["category"], failed["column"], failed["file"]) == ("input", "ndc", str(extract))
    attempt = json.loads((out / ".pa-batch" / "last_attempt.json").read_text())
    assert attempt["run_id"] == "first" and attempt["status"] == "failed"
    assert attempt["error"] == "required column missing from header"
    listing = CliRunner().invoke(app, ["runs", str(out)]).stdout
    assert "first (failed): required column missing from header" in listing


def test_a_committed_run_is_the_last_attempt(tmp_path):
    out = tmp_path / "out"
    _run(_extract(tmp_path / "a.csv"), "--out", out, "--run-id", "ok")
    attempt = json.loads((out / ".pa-batch" / "last_attempt.json").read_text())
    assert (attempt["run_id"], attempt["status"], attempt["exit_code"]) == ("ok", "committed", 0)
    assert Path(attempt["summary"]).is_file()


# --- the examples of docs/scheduling.md -----------------------------------------------------


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _installed_pa_batch() -> str:
    return str(Path(sys.executable).parent / "pa-batch")


@pytest.mark.subprocess
def test_the_nightly_script_runs_and_a_second_attempt_is_a_no_op(tmp_path):
    env = {**os.environ, "PA_BATCH_EXTRACT": str(SAMPLE_DATA / "claims.csv"),
           "PA_BATCH_OUT": str(tmp_path / "out"), "PA_BATCH": _installed_pa_batch(),
           "PA_BATCH_REFERENCE_DIR": str(SAMPLE_DATA / "reference")}  # fmt: skip
    first = subprocess.run([str(EXAMPLES / "nightly.sh")], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    finished = json.loads(first.stdout.splitlines()[-1])
    assert finished["event"] == "run_finished" and finished["counts"]["approved"] == 11
    second = subprocess.run([str(EXAMPLES / "nightly.sh")], env=env, capture_output=True, text=True)
    assert second.returncode == 0
    assert json.loads(second.stdout.splitlines()[0])["event"] == "run_already_committed"


@pytest.mark.subprocess
def test_the_airflow_bash_operator_command_runs_for_real(tmp_path):
    dag = _module("airflow_dag")
    env = {**os.environ, **dag.bash_env(AIRFLOW_ID, str(SAMPLE_DATA / "claims.csv"),
                                        str(tmp_path / "out"))}  # fmt: skip
    env["PATH"] = f"{Path(_installed_pa_batch()).parent}:{env['PATH']}"
    done = subprocess.run(["bash", "-c", dag.BASH_COMMAND], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    xcom = json.loads(done.stdout.splitlines()[-1])  # what do_xcom_push pushes
    assert (xcom["event"], xcom["run_id"], xcom["status"]) == (
        "run_finished",
        AIRFLOW_ID,
        "committed",
    )


def test_the_airflow_python_callable_and_the_dagster_asset_run_the_library(tmp_path):
    dag = _module("airflow_dag")
    assert dag.dag is None or dag.dag.dag_id == "pa_batch_nightly"  # no Airflow here: no DAG
    pushed = dag.decide_claims(AIRFLOW_ID, str(SAMPLE_DATA / "claims.csv"), str(tmp_path / "a"))
    assert pushed["status"] == "committed" and pushed["counts"]["rows_read"] == 294
    assets = _module("dagster_assets")
    metadata = assets.decide_claims("dagster-run-1", str(SAMPLE_DATA / "claims.csv"),
                                    str(tmp_path / "d"))  # fmt: skip
    summary = json.loads(Path(metadata["summary"]).read_text())
    assert (metadata["rows_read"], metadata["approved"], metadata["already_committed"]) == (
        294, summary["counts"]["approved"], False
    )  # fmt: skip
    again = assets.decide_claims(
        "dagster-run-1", str(SAMPLE_DATA / "claims.csv"), str(tmp_path / "d")
    )
    assert again["already_committed"] is True


def test_the_systemd_units_run_the_script_and_retry_only_transient_failures():
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.optionxform = str
    service.read(EXAMPLES / "pa-batch-nightly.service")
    assert service["Service"]["ExecStart"].endswith("examples/scheduling/nightly.sh")
    assert service["Service"]["RestartPreventExitStatus"].split() == ["1", "2", "3"]
    timer = configparser.ConfigParser(interpolation=None)
    timer.read(EXAMPLES / "pa-batch-nightly.timer")
    assert timer["Timer"]["OnCalendar"] == "*-*-* 02:30:00"
