"""The analyst's workflow: many files at once, the run history of an output directory, and
`pa-batch diff` between two runs."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import HEADER, SAMPLE_DATA
from typer.testing import CliRunner

from pa_batch.cli import app

LINE = "C{n},1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,{strength},mg,G35"


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _extract(path: Path, claims: list[int], strength: str = "5") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [LINE.format(n=n, strength=strength) for n in claims]
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


# --- many files ------------------------------------------------------------------------------


def test_a_directory_means_its_extracts_in_name_order(tmp_path):
    folder = tmp_path / "claims"
    _extract(folder / "b.csv", [3])
    _extract(folder / "a.csv", [1, 2])
    (folder / "notes.txt").write_text("not an extract\n")
    (folder / "nested").mkdir()
    _extract(folder / "nested" / "c.csv", [9])  # not directly inside: not read
    out = tmp_path / "out"
    assert _cli("run", folder, "--out", out).exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [Path(i["path"]).name for i in summary["inputs"]] == ["a.csv", "b.csv"]
    assert pd.read_parquet(out / "results.parquet")["claim_id"].tolist() == ["C1", "C2", "C3"]


def test_a_glob_pattern_is_expanded_by_the_program_with_per_file_counts(tmp_path):
    _extract(tmp_path / "claims" / "2024-02.csv", [3], strength="25")
    _extract(tmp_path / "claims" / "2024-01.csv", [1, 2])
    _extract(tmp_path / "claims" / "2023-12.csv", [0])
    out = tmp_path / "out"
    result = _cli("run", str(tmp_path / "claims" / "2024-*.csv"), "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    per_file = {Path(i["path"]).name: i["counts"] for i in summary["inputs"]}
    assert per_file == {
        "2024-01.csv": {"approved": 2, "denied": 0, "investigational": 0, "out_of_scope": 0, "rejected": 0},
        "2024-02.csv": {"approved": 0, "denied": 1, "investigational": 0, "out_of_scope": 0, "rejected": 0},
    }  # fmt: skip
    markdown = (out / "summary.md").read_text()
    assert "| approved | denied | investigational | out of scope | rejected |" in markdown


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("empty_dir", "directory holds no .csv, .csv.gz or .parquet file"),
        ("claims/*.parquet", "pattern matches no file"),
    ],
)
def test_a_directory_or_pattern_naming_nothing_fails_naming_it(tmp_path, argument, message):
    (tmp_path / "empty_dir").mkdir()
    _extract(tmp_path / "claims" / "a.csv", [1])
    result = _cli("run", str(tmp_path / argument), "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"pa-batch: error: {tmp_path / argument}: {message}"


def test_the_same_file_twice_is_a_notice_in_the_summary_and_log(tmp_path):
    first = _extract(tmp_path / "day1.csv", [1])
    again = tmp_path / "day1_resent.csv"
    shutil.copy(first, again)
    out = tmp_path / "out"
    result = _cli("run", first, again, "--out", out)
    assert result.exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["notices"]) == 1
    assert "input 2" in summary["notices"][0] and "same SHA-256 as input 1" in summary["notices"][0]
    assert "same SHA-256" in result.stderr
    assert "**Notice:**" in (out / "summary.md").read_text()
    assert summary["errors"]["DUPLICATE_KEY"] == 1


# --- run history -----------------------------------------------------------------------------


def _runs_dir(out: Path) -> list[str]:
    return sorted(os.listdir(out / ".pa-batch" / "runs"))


def test_every_committed_run_stays_until_the_retention_retires_the_oldest(tmp_path):
    extract = _extract(tmp_path / "claims.csv", [1])
    out = tmp_path / "out"
    ids = [f"r{n}" for n in range(1, 5)]
    for run_id in ids[:3]:
        assert _cli("run", extract, "--out", out, "--run-id", run_id).exit_code == 0
    assert _runs_dir(out) == ["r1", "r2", "r3"]
    assert _cli("run", extract, "--out", out, "--run-id", "r4", "--keep-runs", "2").exit_code == 0
    assert _runs_dir(out) == ["r3", "r4"]
    assert json.loads((out / "summary.json").read_text())["run"]["id"] == "r4"


def test_a_copied_history_keeps_its_order_whatever_the_file_times(tmp_path):
    """A restore (cp -r without -p) gives every file a new time, in any order: the order of
    runs, and what --keep-runs retires, come from the times the runs recorded."""
    extract = _extract(tmp_path / "claims.csv", [1])
    out = tmp_path / "out"
    for run_id in ("r1", "r2", "r3"):
        assert _cli("run", extract, "--out", out, "--run-id", run_id).exit_code == 0
    assert _cli("run", tmp_path / "absent.csv", "--out", out, "--run-id", "broken").exit_code == 1
    restored = tmp_path / "restored"
    shutil.copytree(out, restored, symlinks=True, copy_function=shutil.copyfile)
    runs = restored / ".pa-batch" / "runs"
    future = time.time() + 3600
    for age, name in enumerate(["r3", "r2", "r1"]):  # the oldest run's files now look newest
        os.utime(runs / name / ".committed", (future + age, future + age))
    os.utime(restored / ".pa-batch" / "failures" / "broken.json", (future - 10, future - 10))
    listed = json.loads(_cli("runs", restored, "--json").stdout)
    assert [run["id"] for run in listed] == ["broken", "r3", "r2", "r1"]
    assert (
        _cli("run", extract, "--out", restored, "--run-id", "r4", "--keep-runs", "2").exit_code == 0
    )
    assert _runs_dir(restored) == ["r3", "r4"]


def test_pa_batch_runs_lists_the_history_newest_first_with_failures(tmp_path):
    extract = _extract(tmp_path / "claims.csv", [1, 2])
    out = tmp_path / "out"
    assert _cli("run", extract, "--out", out, "--run-id", "first").exit_code == 0
    assert _cli("run", tmp_path / "absent.csv", "--out", out, "--run-id", "broken").exit_code == 1
    assert _cli("run", extract, extract, "--out", out, "--run-id", "second").exit_code == 0
    result = _cli("runs", out)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:5] == ["run", "id", "finished", "at", "status"]
    assert [line.split()[0] for line in lines[1:4]] == ["second", "broken", "first"]
    assert lines[1].split()[1] == "*"  # the run DIR shows now
    assert "failed" in lines[2]
    assert "4" in lines[1].split() and "2" in lines[3].split()  # rows read
    failure = json.loads((out / ".pa-batch" / "failures" / "broken.json").read_text())
    assert failure["exit_code"] == 1 and failure["status"] == "failed"
    assert failure["file"] == str(tmp_path / "absent.csv")


def test_runs_of_a_directory_that_is_no_output_fails_in_one_line(tmp_path):
    result = _cli("runs", tmp_path)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"pa-batch: error: {tmp_path}: not a pa-batch output directory (no .pa-batch inside)"
    )


def test_a_failure_before_any_history_leaves_only_its_attempt_record(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert _cli("run", tmp_path / "absent.csv", "--out", out, "--run-id", "first").exit_code == 1
    assert [p.name for p in out.iterdir()] == [".pa-batch"]  # nothing published
    assert sorted(os.listdir(out / ".pa-batch")) == ["failures", "last_attempt.json"]
    attempt = json.loads((out / ".pa-batch" / "last_attempt.json").read_text())
    assert {k: attempt[k] for k in ("run_id", "status", "exit_code", "category")} == {
        "run_id": "first",
        "status": "failed",
        "exit_code": 1,
        "category": "input",
    }
    assert attempt["error"] == "file not found" and attempt["file"] == str(tmp_path / "absent.csv")


# --- diff ------------------------------------------------------------------------------------


def test_a_shortage_file_gives_exactly_the_expected_diff(tmp_path):
    """Oral 10 mg is commercially available (denied) until a shortage makes it approvable."""
    extract = tmp_path / "claims.csv"
    extract.write_text(
        HEADER + "\n"
        + LINE.format(n=1, strength="10") + "\n"  # in the shortage window: denied -> approved
        + LINE.format(n=2, strength="10").replace("2024-05-01", "2024-08-01") + "\n"  # after it
        + LINE.format(n=3, strength="5") + "\n"  # not commercial: approved in both
    )  # fmt: skip
    shortage = tmp_path / "ref"
    shortage.mkdir()
    (shortage / "shortages.csv").write_text(
        "route,strength,strength_unit,start_date,end_date\noral,10,mg,2024-03-01,2024-06-30\n"
    )
    out = tmp_path / "out"
    assert _cli("run", extract, "--out", out, "--run-id", "base").exit_code == 0
    assert _cli("run", extract, "--out", out, "--run-id", "shortage",
                "--reference-dir", shortage).exit_code == 0  # fmt: skip

    diff_file = tmp_path / "diff.csv"
    result = _cli("diff", "base", "shortage", "--in", out, "--out", diff_file)
    assert result.exit_code == 0, result.output
    assert "1 lines differ" in result.output
    assert "denied \u2192 approved: 1" in result.output
    diff = pd.read_csv(diff_file, dtype="str", keep_default_na=False)
    assert diff[["claim_id", "line_number", "service_date", "change", "old_decision",
                 "new_decision", "old_reasons", "new_reasons", "new_approval_end"]].values.tolist() == [
        ["C1", "1", "2024-05-01", "decision, reasons, approval window", "denied", "approved",
         "COMMERCIALLY_AVAILABLE", "", "2025-04-30"],
    ]  # fmt: skip


def test_diff_of_output_directories_reports_lines_in_only_one_run(tmp_path):
    old = tmp_path / "old"
    new = tmp_path / "new"
    assert _cli("run", _extract(tmp_path / "a.csv", [1, 2]), "--out", old).exit_code == 0
    assert _cli("run", _extract(tmp_path / "b.csv", [2, 3]), "--out", new,
                "--format", "csv").exit_code == 0  # fmt: skip
    diff_file = tmp_path / "diff.parquet"
    result = _cli("diff", old, new, "--out", diff_file)
    assert result.exit_code == 0, result.output
    diff = pd.read_parquet(diff_file)
    assert diff[["claim_id", "change"]].values.tolist() == [
        ["C1", "only in old"],
        ["C3", "only in new"],
    ]
    assert "approved \u2192 (none): 1" in result.output
    assert "(none) \u2192 approved: 1" in result.output


def test_diff_json_gives_the_counts_and_transitions_for_a_scheduler(tmp_path):
    old = tmp_path / "old"
    new = tmp_path / "new"
    assert _cli("run", _extract(tmp_path / "a.csv", [1, 2]), "--out", old).exit_code == 0
    assert _cli("run", _extract(tmp_path / "b.csv", [2, 3, 4]), "--out", new).exit_code == 0
    result = _cli("diff", old, new, "--out", tmp_path / "diff.csv", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["lines_differ"] == 3
    assert document["out"] == str(tmp_path / "diff.csv")
    assert Path(document["old"]).parent.parent == old / ".pa-batch"
    assert document["transitions"] == [
        {"old": "(none)", "new": "approved", "lines": 2},
        {"old": "approved", "new": "(none)", "lines": 1},
    ]


def test_runs_json_lists_what_the_table_shows(tmp_path):
    extract = _extract(tmp_path / "claims.csv", [1, 2])
    out = tmp_path / "out"
    assert _cli("run", extract, "--out", out, "--run-id", "first").exit_code == 0
    assert _cli("run", tmp_path / "absent.csv", "--out", out, "--run-id", "broken").exit_code == 1
    result = _cli("runs", out, "--json")
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert [(r["id"], r["status"], r["current"]) for r in listed] == [
        ("broken", "failed", False),
        ("first", "committed", True),
    ]
    assert listed[1]["rows_read"] == 2 and listed[1]["outcomes"]["approved"] == 2
    assert listed[0]["error"] == "file not found"


def test_diff_of_identical_runs_is_empty_and_exits_0(tmp_path):
    out = tmp_path / "out"
    extract = SAMPLE_DATA / "claims.csv"
    assert _cli("run", extract, "--out", out, "--run-id", "a").exit_code == 0
    assert _cli("run", extract, "--out", out, "--run-id", "b").exit_code == 0
    result = _cli("diff", "a", "b", "--in", out, "--out", tmp_path / "d.csv")
    assert result.exit_code == 0
    assert result.output.startswith("0 lines differ")
    assert pd.read_csv(tmp_path / "d.csv").empty


@pytest.mark.parametrize(
    ("old", "new", "extra", "message"),
    [
        ("nope", "b", ["--in", "{out}"], "nope: no committed run with this id in {out}"),
        ("{tmp}", "{out}", [], "{tmp}: not a pa-batch output directory (no summary.json)"),
        ("{out}", "{out}", ["--bad"], None),
    ],
    ids=["unknown-run-id", "not-an-output-directory", "usage"],
)
def test_diff_errors_exit_1_in_one_line(tmp_path, old, new, extra, message):
    out = tmp_path / "out"
    assert (
        _cli("run", _extract(tmp_path / "a.csv", [1]), "--out", out, "--run-id", "b").exit_code == 0
    )
    fill = {"out": str(out), "tmp": str(tmp_path)}
    args = [old.format(**fill), new.format(**fill), *[e.format(**fill) for e in extra]]
    result = _cli("diff", *args, "--out", tmp_path / "d.csv")
    if message is None:
        assert result.exit_code == 2
        return
    assert result.exit_code == 1
    assert result.stderr.strip() == f"pa-batch: error: {message.format(**fill)}"


# --- the run manifest ------------------------------------------------------------------------


def test_the_manifest_reruns_a_run_to_byte_identical_outputs(tmp_path):
    out = tmp_path / "out"
    args = [SAMPLE_DATA / "claims.csv", "--out", out, "--format", "csv",
            "--reference-dir", SAMPLE_DATA / "reference", "--batch-rows", "50"]  # fmt: skip
    assert _cli("run", *args).exit_code == 0
    manifest = json.loads((out / "summary.json").read_text())
    assert manifest["format_version"] == 2
    assert manifest["run"]["status"] == "committed"
    assert manifest["run"]["started_at"] <= manifest["run"]["finished_at"]
    assert set(manifest["tool"]["libraries"]) >= {"python", "pandas", "pyarrow", "pandera"}
    assert all(len(r["sha256"]) == 64 for r in manifest["reference"])

    options = manifest["options"]
    again = tmp_path / "again"
    rerun = [*[i["path"] for i in manifest["inputs"]], "--out", again,
             "--format", options["format"], "--reference-dir", options["reference_dir"],
             "--batch-rows", str(options["batch_rows"]), "--encoding", options["encoding"]]  # fmt: skip
    assert _cli("run", *rerun).exit_code == 0
    import hashlib

    digests = manifest["outputs"]["sha256"]
    assert set(digests) == {"results.csv", "rejects.csv", "summary.md"}
    for name in ("results.csv", "rejects.csv"):  # summary.md names its own run and time
        assert hashlib.sha256((again / name).read_bytes()).hexdigest() == digests[name], name


# --- the market reference set -----------------------------------------------------------------

MARKET = SAMPLE_DATA / "reference" / "market"


@pytest.mark.parametrize(
    ("strength", "unit", "date", "policy_list", "market_list"),
    [
        ("5", "mg", "2024-05-01", "", "COMMERCIALLY_AVAILABLE"),  # 5 mg tablets exist
        ("15", "mg", "2024-03-31", "", ""),  # 15 mg tablets from 2024-04-01
        ("15", "mg", "2024-04-01", "", "COMMERCIALLY_AVAILABLE"),
        ("2", "mg/mL", "2023-10-11", "", ""),  # oral solution 2 mg/mL from 2023-10-12
        ("2", "mg/mL", "2023-10-12", "", "COMMERCIALLY_AVAILABLE"),
        ("10", "mg", "2020-01-01", "COMMERCIALLY_AVAILABLE", "COMMERCIALLY_AVAILABLE"),
    ],
)
def test_the_market_list_is_dated_by_what_the_market_carried(
    tmp_path, strength, unit, date, policy_list, market_list
):
    row = (
        LINE.format(n=1, strength=strength).replace(",mg,", f",{unit},").replace("2024-05-01", date)
    )
    extract = tmp_path / "claims.csv"
    extract.write_text(HEADER + "\n" + row + "\n")
    reasons = {}
    for name, args in (("policy", []), ("market", ["--reference-dir", MARKET])):
        out = tmp_path / name
        assert _cli("run", extract, "--out", out, *args).exit_code == 0
        reasons[name] = pd.read_parquet(out / "results.parquet")["reasons"].tolist()
    assert reasons == {"policy": [policy_list], "market": [market_list]}


def test_a_misspelt_reference_column_fails_naming_it(tmp_path):
    reference = tmp_path / "ref"
    reference.mkdir()
    (reference / "shortages.csv").write_text(
        "route,strength,strength_unit,start_date,end_dte\noral,10,mg,2024-03-01,2024-06-30\n"
    )
    result = _cli("run", _extract(tmp_path / "a.csv", [1]), "--out", tmp_path / "out",
                  "--reference-dir", reference)  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(
        f"pa-batch: error: {reference / 'shortages.csv'}: column 'end_dte': not a column of this file"
    )
