"""The reading commands (runs, diff, explain) on awkward histories: they never write into a
run, they compare the runs asked for, they read back exactly what a run was given, and any
damage or race ends in one line naming the file, never a traceback or a wrong answer."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import HEADER
from typer.testing import CliRunner

from pa_batch.cli import app

GOOD = "{claim},1,M1,1980-01-02,{date},00000-0000-00,BACLOFEN POWDER,oral,{strength},mg,G35"
# commercial strengths the tests set: oral 10 mg is listed, so a 10 mg line is denied
# COMMERCIALLY_AVAILABLE unless a shortage of it is active
COMMERCIAL = "route,strength,strength_unit\noral,10,mg\n"


def _cli(*args, cwd: Path | None = None):
    if cwd is None:
        return CliRunner().invoke(app, [str(a) for a in args])
    before = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, [str(a) for a in args])
    finally:
        os.chdir(before)


def _extract(path: Path, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _line(claim: str = "C1", date: str = "2024-05-01", strength: str = "5") -> str:
    return GOOD.format(claim=claim, date=date, strength=strength)


def _run(extract: Path, out: Path, *args) -> None:
    result = _cli("run", extract, "--out", out, *args)
    assert result.exit_code == 0, result.output


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pa-batch: error: "), result.stderr
    return lines[0]


# --- diff --out never lands in a run ---------------------------------------------------------


@pytest.fixture(scope="module")
def _two_runs_made_once(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_runs")
    out = folder / "out"
    _run(_extract(folder / "a.csv", [_line(strength="5")]), out, "--run-id", "old")
    _run(_extract(folder / "b.csv", [_line(strength="25")]), out, "--run-id", "new")
    return folder


@pytest.fixture
def two_runs(_two_runs_made_once, tmp_path):
    """DIR ``out`` with runs ``old`` (5 mg, approved) and ``new`` (25 mg, denied), beside
    their extracts ``a.csv`` and ``b.csv``: a test's own copy (links copied as links)."""
    copy = tmp_path / "two_runs"
    shutil.copytree(_two_runs_made_once, copy, symlinks=True)
    return copy / "out"


@pytest.mark.parametrize(
    "target",
    [
        ".pa-batch/current/results.parquet",  # the current run's own results
        ".pa-batch/runs/old/diff.parquet",  # a new file inside a run's directory
        ".pa-batch/diff.csv",  # the history's control directory
        "results.parquet",  # DIR's published name (a link into the run)
        "results.csv",  # a published name this run does not use, but the next may
        "summary.md",
    ],
)
def test_diff_refuses_an_out_file_inside_a_run_or_under_a_published_name(two_runs, target):
    before = {p: p.read_bytes() for p in two_runs.rglob("*") if p.is_file() and not p.is_symlink()}
    result = _cli("diff", "old", "new", "--in", two_runs, "--out", two_runs / target)
    assert "choose another --out" in _one_line_error(result)
    after = {p: p.read_bytes() for p in two_runs.rglob("*") if p.is_file() and not p.is_symlink()}
    assert after == before
    assert _cli("run", two_runs / ".." / "a.csv", "--out", two_runs).exit_code == 0


def test_diff_refuses_a_published_name_of_a_run_directory_copied_elsewhere(two_runs, tmp_path):
    copy = tmp_path / "kept"
    shutil.copytree(two_runs / ".pa-batch" / "runs" / "old", copy)
    result = _cli("diff", copy, two_runs, "--out", copy / "diff.parquet")
    assert "inside a run's directory" in _one_line_error(result)


def test_the_diff_file_is_not_world_readable(two_runs, tmp_path):
    os.umask(0o022)
    target = tmp_path / "diff.csv"
    assert _cli("diff", "old", "new", "--in", two_runs, "--out", target).exit_code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


# --- run ids with --in -----------------------------------------------------------------------


def test_ids_are_looked_up_in_the_history_given_with_in(tmp_path):
    history = tmp_path / "hist"
    _run(_extract(tmp_path / "a.csv", [_line(strength="5")]), history, "--run-id", "baseline")
    _run(_extract(tmp_path / "b.csv", [_line(strength="25")]), history, "--run-id", "trial")
    # an unrelated directory of the same name as an id, in the working directory
    (tmp_path / "work" / "trial").mkdir(parents=True)
    target = tmp_path / "d.csv"
    result = _cli(
        "diff", "baseline", "trial", "--in", history, "--out", target, cwd=tmp_path / "work"
    )
    assert result.exit_code == 0, result.output
    assert "1 lines differ" in result.stdout
    assert "approved \u2192 denied: 1" in result.stdout


def test_an_argument_naming_both_a_history_id_and_an_output_directory_is_refused(tmp_path):
    history = tmp_path / "hist"
    _run(_extract(tmp_path / "a.csv", [_line(strength="5")]), history, "--run-id", "baseline")
    _run(_extract(tmp_path / "b.csv", [_line(strength="25")]), history, "--run-id", "trial")
    _run(_extract(tmp_path / "c.csv", [_line(strength="25")]), tmp_path / "work" / "baseline")
    result = _cli(
        "diff",
        "baseline",
        "trial",
        "--in",
        history,
        "--out",
        tmp_path / "d.csv",
        cwd=tmp_path / "work",
    )
    assert "names both a run id" in _one_line_error(result)
    explained = _cli("explain", "baseline", "C1", "--in", history, cwd=tmp_path / "work")
    assert "names both a run id" in _one_line_error(explained)
    # the path spelt as a path is the directory, unambiguously
    result = _cli("explain", "./baseline", "C1", cwd=tmp_path / "work")
    assert result.exit_code == 0 and "DENIED" in result.stdout


# --- explain: a record is (file, record number) ---------------------------------------------


def test_explain_keeps_rejected_records_of_different_files_apart(tmp_path):
    first = _extract(
        tmp_path / "one.csv",
        ["C1,1,M1,1980-01-02,not-a-date,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35"],
    )
    second = _extract(
        tmp_path / "two.csv",
        ["C1,2,M1,1980-01-02,2024-05-01,bad-ndc,BACLOFEN POWDER,oral,5,mg,G35"],
    )
    out = tmp_path / "out"
    assert _cli("run", first, second, "--out", out).exit_code == 0
    explained = json.loads(_cli("explain", out, "C1", "--json").stdout)
    rejected = [line for line in explained["lines"] if line["outcome"] == "rejected"]
    assert [(Path(line["source"]["file"]).name, line["source"]["row"]) for line in rejected] == [
        ("one.csv", 1),
        ("two.csv", 1),
    ]
    assert [[e["column"] for e in line["errors"]] for line in rejected] == [
        ["service_date"],
        ["ndc"],
    ]


# --- the CSV spreadsheet guard reads back exactly --------------------------------------------

AWKWARD_IDS = ["=x", "'=x", "'plain", "''", "-3", "+A", "@sum", "x'"]


def test_csv_outputs_read_back_every_claim_id_exactly(tmp_path):
    extract = _extract(tmp_path / "a.csv", [_line(claim=f'"{c}"') for c in AWKWARD_IDS])
    _run(extract, tmp_path / "csv", "--format", "csv")
    _run(extract, tmp_path / "parquet")
    for claim in AWKWARD_IDS:
        explained = _cli("explain", "--json", tmp_path / "csv", "--", claim)
        assert explained.exit_code == 0, (claim, explained.output)
        lines = json.loads(explained.stdout)["lines"]
        assert [line["input"]["claim_id"] for line in lines] == [claim]
    same = _cli("diff", tmp_path / "csv", tmp_path / "csv", "--out", tmp_path / "same.csv")
    assert same.exit_code == 0 and same.stdout.startswith("0 lines differ")
    across = _cli("diff", tmp_path / "parquet", tmp_path / "csv", "--out", tmp_path / "x.csv")
    assert across.exit_code == 0 and across.stdout.startswith("0 lines differ"), across.output
    # and a spreadsheet still sees no formula: every risky cell starts with '
    written = pd.read_csv(tmp_path / "csv" / "results.csv", dtype="str", keep_default_na=False)
    assert all(cell[:1] not in "=+@" for cell in written["claim_id"]), written["claim_id"].tolist()


# --- explain quotes the run's own reference data, or says it cannot --------------------------


def _shortage_run(
    tmp_path: Path, shortages_header: str = "route,strength,strength_unit,start_date,end_date"
) -> Path:
    reference = tmp_path / "ref"
    reference.mkdir()
    (reference / "commercial_strengths.csv").write_text(COMMERCIAL)
    (reference / "shortages.csv").write_text(
        f"{shortages_header}\noral,10,mg,2024-01-01,2024-12-31\n"
    )
    out = tmp_path / "out"
    _run(_extract(tmp_path / "a.csv", [_line(strength="10")]), out, "--reference-dir", reference)
    return out


def test_explain_reads_a_shortage_window_under_any_header_the_loader_accepts(tmp_path):
    out = _shortage_run(tmp_path, "Route,Strength,Strength_Unit,Start_Date,End_Date")
    text = _cli("explain", out, "C1").stdout
    assert "(2024-01-01 to 2024-12-31)" in text
    assert "open to ongoing" not in text


def test_explain_says_a_missing_reference_copy_is_missing_and_cites_no_other_table(tmp_path):
    out = _shortage_run(tmp_path)
    run_dir = (out / ".pa-batch" / "current").resolve()
    (run_dir / "reference.commercial_strengths.csv").unlink()
    (run_dir / "reference.shortages.csv").write_text("route,strength\n")  # changed since
    result = _cli("explain", out, "C1", "--json")
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout)["lines"][0]
    assert line["commercial_strength"]["content"] is None
    assert (
        "copy of commercial_strengths.csv is missing" in line["commercial_strength"]["unavailable"]
    )
    assert line["shortage"]["content"] is None
    assert "was changed since the run" in line["shortage"]["unavailable"]
    text = _cli("explain", out, "C1").stdout
    availability = text.split("not commercially available, or in shortage:")[1].split("\n")[0]
    assert "policy.toml" not in text and "intrathecal" not in availability
    assert "open to ongoing" not in text


def test_explain_prints_the_strength_the_rule_compared(tmp_path):
    out = tmp_path / "out"
    _run(_extract(tmp_path / "a.csv", [_line(strength="20.000001")]), out)
    text = _cli("explain", out, "C1").stdout
    assert "observed 20.000001 mg; requires at most 20 mg per unit" in text
    assert "observed 20 mg" not in text


# --- the end of the calendar -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_an_approval_window_past_9999_ends_on_9999_12_31_and_reads_back(tmp_path, fmt):
    out = tmp_path / "out"
    extract = _extract(tmp_path / "a.csv", [_line(date="9999-06-01"), _line("C2")])
    for run_id in ("one", "two"):
        _run(extract, out, "--format", fmt, "--run-id", run_id)
    explained = json.loads(_cli("explain", out, "C1", "--json").stdout)
    assert explained["lines"][0]["approval"] == {"start": "9999-06-01", "end": "9999-12-31"}
    result = _cli("diff", "one", "two", "--in", out, "--out", tmp_path / "d.parquet")
    assert result.exit_code == 0 and result.stdout.startswith("0 lines differ"), result.output


def test_reading_commands_read_a_run_whose_window_passed_9999(tmp_path):
    """Runs written before the window stopped at 9999-12-31 hold a year-10000 end date."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    _run(_extract(tmp_path / "a.csv", [_line(date="9999-06-01")]), out, "--run-id", "old")
    results = out / ".pa-batch" / "runs" / "old" / "results.parquet"
    table = pq.read_table(results)
    days = int(np.datetime64("10000-05-31", "D").astype("int64"))
    beyond = pa.array([days], pa.int32()).cast(pa.date32())
    table = table.set_column(table.schema.get_field_index("approval_end"), "approval_end", beyond)
    os.chmod(results, 0o640)
    pq.write_table(table, results)
    explained = _cli("explain", out, "C1")
    assert explained.exit_code == 0, explained.output
    assert "to 10000-" in explained.stdout
    diffed = _cli("diff", out, out, "--out", tmp_path / "d.csv")
    assert diffed.exit_code == 0, diffed.output


# --- damaged histories -----------------------------------------------------------------------


def _history(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    _run(_extract(tmp_path / "a.csv", [_line()]), out, "--run-id", "first")
    _run(_extract(tmp_path / "a.csv", [_line()]), out, "--run-id", "second")
    return out


@pytest.mark.parametrize(
    ("damage", "listed_as"),
    [
        (lambda run: (run / "summary.json").write_text("{not json"), "damaged"),
        (lambda run: (run / "summary.json").write_text("[1, 2]"), "damaged"),
        (
            lambda run: (run / "summary.json").write_text(
                '{"run": {}, "counts": {"rows_read": "x"}}'
            ),
            "damaged",
        ),
    ],
    ids=["not-json", "a-list", "wrong-shape"],
)
def test_a_damaged_summary_is_listed_as_damaged_and_read_in_one_line(tmp_path, damage, listed_as):
    out = _history(tmp_path)
    damage(out / ".pa-batch" / "runs" / "first")
    listing = _cli("runs", out)
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.stdout.splitlines() if line.startswith("first "))
    assert listed_as in row
    assert "first (damaged): damaged:" in listing.stdout
    for command in (
        ["explain", "first", "C1", "--in", out],
        ["diff", "first", "second", "--in", out, "--out", tmp_path / "d.csv"],
    ):
        result = _cli(*command)
        if result.exit_code != 0:  # diff needs only results; explain needs the summary
            assert "summary.json" in _one_line_error(result)


def test_a_failure_record_of_the_wrong_shape_is_listed_not_a_traceback(tmp_path):
    out = _history(tmp_path)
    failures = out / ".pa-batch" / "failures"
    failures.mkdir()
    (failures / "broken.json").write_text('"just a string"')
    (failures / "odd.json").write_text('{"run_id": 7, "error": ["a", "b"]}')
    listing = _cli("runs", out)
    assert listing.exit_code == 0, listing.output
    assert "broken" in listing.stdout and "odd" not in listing.stdout.split("\n")[0]


@pytest.mark.parametrize("name", ["results.parquet", "rejects.parquet"])
def test_a_truncated_results_file_fails_the_reading_commands_in_one_line(tmp_path, name):
    out = _history(tmp_path)
    damaged = out / ".pa-batch" / "runs" / "first" / name
    damaged.write_bytes(damaged.read_bytes()[:40])
    assert name in _one_line_error(_cli("explain", "first", "C1", "--in", out))
    if name.startswith("results"):
        diffed = _cli("diff", "first", "second", "--in", out, "--out", tmp_path / "d.csv")
        assert name in _one_line_error(diffed)


def test_explain_of_a_run_retired_while_it_is_read_says_so(tmp_path, monkeypatch):
    from pa_batch.audit import explain

    out = _history(tmp_path)
    run_dir = out / ".pa-batch" / "runs" / "first"
    load_policy = explain.load_policy

    def retire_then_load(path):  # a newer run's --keep-runs retires it mid-read
        shutil.rmtree(run_dir)
        return load_policy(path)

    monkeypatch.setattr(explain, "load_policy", retire_then_load)
    error = _one_line_error(_cli("explain", "first", "C1", "--in", out))
    assert "retired from the history while it was read" in error
