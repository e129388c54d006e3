"""What a new user meets on the first day: no silent misdecision, a help that tells the truth,
outputs that never clobber a user's file, and the small things users expect.

File-level cases (a missing policy column, a misspelt reference file, pandera's switches, a
user's file in --out, an integer NDC, a ';' header) are in the bad-input corpus
(tests/bad_inputs/cases.csv); these are the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import HEADER, SAMPLE_DATA, VALID_LINE, nothing_published
from typer.testing import CliRunner

from pa_batch.cli import app

ROOT = Path(__file__).parent.parent
LINE = "C1,1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35"


def _cli(*args: str | Path, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


# --- the help tells the truth ---------------------------------------------------------------


def test_version_prints_the_version_and_exits_0():
    from pa_batch import __version__

    result = _cli("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"pa-batch {__version__}"


def test_help_shows_flags_as_flags_and_names_the_input_columns():
    result = _cli("run", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "<bool>" not in text and "{inputs}" not in text
    assert "Usage: pa-batch run [OPTIONS] INPUT..." in text
    assert "--debug Show a traceback" in text
    for column in ("claim_id", "route", "strength_unit", "diagnosis_codes", "prior_auth_number"):
        assert column in text
    assert ".csv.gz" in text and ".parquet" in text


@pytest.mark.subprocess
def test_python_m_runs_from_a_fresh_checkout_root(tmp_path):
    """`python -m pa_batch` with the checkout first on sys.path, as the README shows it."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "pa_batch", "run", "sample_data/claims.csv", "--out", str(out),
         "--reference-dir", "sample_data/reference"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads((out / "summary.json").read_text())["counts"]["rows_read"] == 294


# --- the run's own id and the deployment's settings -------------------------------------------


def test_every_json_log_line_carries_the_run_id_from_the_first(write_csv, tmp_path):
    out = tmp_path / "out"
    result = _cli("run", write_csv([LINE]), "--out", out, "--log-format", "json",
                  "--run-id", "nightly-2026-11-26")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["event"] == "input_started"
    assert {line["run_id"] for line in lines} == {"nightly-2026-11-26"}
    assert json.loads((out / "summary.json").read_text())["run"]["id"] == "nightly-2026-11-26"
    assert (out / ".pa-batch" / "runs" / "nightly-2026-11-26").is_dir()


def test_a_failed_run_logs_its_run_id_too(tmp_path):
    result = _cli("run", tmp_path / "absent.csv", "--out", tmp_path / "out",
                  "--log-format", "json", "--run-id", "r1")  # fmt: skip
    assert result.exit_code == 1
    assert {json.loads(line)["run_id"] for line in result.stdout.splitlines()} == {"r1"}


@pytest.mark.parametrize("run_id", ["", "x" * 251, "a\nb", " padded", "tab\there"])
def test_a_run_id_that_is_not_printable_text_is_a_usage_error(write_csv, tmp_path, run_id):
    result = _cli("run", write_csv([LINE]), "--out", tmp_path / "out", "--run-id", run_id)
    assert result.exit_code == 2
    assert "printable characters" in result.output
    assert nothing_published(tmp_path / "out")


def test_a_run_id_already_committed_with_other_inputs_fails_naming_it(write_csv, tmp_path):
    out = tmp_path / "out"
    assert _cli("run", write_csv([LINE]), "--out", out, "--run-id", "r1").exit_code == 0
    other = write_csv([LINE.replace("C1,", "C2,")])
    again = _cli("run", other, "--out", out, "--run-id", "r1")
    assert again.exit_code == 1
    assert "run id 'r1' is already committed here with other inputs" in again.stderr


def test_options_come_from_pa_batch_environment_variables(write_csv, tmp_path):
    out = tmp_path / "from_env"
    env = {"PA_BATCH_OUT": str(out), "PA_BATCH_FORMAT": "csv", "PA_BATCH_LOG_FORMAT": "json",
           "PA_BATCH_RUN_ID": "env-run", "PA_BATCH_REFERENCE_DIR": str(SAMPLE_DATA / "reference")}  # fmt: skip
    result = _cli("run", write_csv([LINE]), env=env)
    assert result.exit_code == 0, result.output
    assert (out / "results.csv").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["id"] == "env-run"
    assert summary["options"]["reference_dir"] == str(SAMPLE_DATA / "reference")


def test_a_flag_wins_over_the_environment(write_csv, tmp_path):
    env = {"PA_BATCH_FORMAT": "csv"}
    out = tmp_path / "out"
    assert (
        _cli("run", write_csv([LINE]), "--out", out, "--format", "parquet", env=env).exit_code == 0
    )
    assert (out / "results.parquet").exists() and not (out / "results.csv").exists()


# --- outputs never clobber ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["results.csv", "rejects.csv", "summary.json", "summary.md"])
def test_a_users_file_under_an_output_name_is_never_replaced(write_csv, tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text("mine\n")
    result = _cli("run", write_csv([LINE]), "--out", out, "--format", "csv")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"pa-batch: error: {out / name}: a file pa-batch did not write is in the way of an "
        "output; move it or choose another --out"
    )
    assert (out / name).read_text() == "mine\n" and not (out / name).is_symlink()
    # nothing created beside it but the attempt's record, in the control directory
    assert sorted(p.name for p in out.iterdir()) == [".pa-batch", name]
    assert sorted(os.listdir(out / ".pa-batch")) == ["failures", "last_attempt.json"]


def test_a_users_symlink_under_an_output_name_is_not_taken_for_ours(write_csv, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere.parquet").write_text("mine\n")
    (out / "results.parquet").symlink_to(tmp_path / "elsewhere.parquet")
    assert _cli("run", write_csv([LINE]), "--out", out).exit_code == 1
    assert (tmp_path / "elsewhere.parquet").read_text() == "mine\n"


def test_our_own_names_are_replaced_run_after_run(write_csv, tmp_path):
    out = tmp_path / "out"
    for _ in range(2):
        assert _cli("run", write_csv([LINE]), "--out", out).exit_code == 0


# --- numbers stored as numbers keep what made them codes -------------------------------------


def test_an_integer_ndc_column_is_left_padded_to_eleven_digits(tmp_path):
    """What `pd.read_csv(...).to_parquet()` writes: the NDC as int64, leading zeros lost."""
    listed = tmp_path / "ref"
    listed.mkdir()
    (listed / "products.csv").write_text("ndc,description\n00172-5728-60,listed product\n")
    frame = pd.DataFrame([{**VALID_LINE, "drug_name": "LISTED PRODUCT"}])
    csv_path = tmp_path / "claims.csv"
    frame.assign(ndc="00172572860").to_csv(csv_path, index=False)
    parquet_path = tmp_path / "claims.parquet"
    pd.read_csv(csv_path).to_parquet(parquet_path)  # a user's round trip
    assert pq.read_schema(parquet_path).field("ndc").type == pa.int64()

    result = _cli("run", parquet_path, "--out", tmp_path / "out", "--reference-dir", listed)
    assert result.exit_code == 0, result.output
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert results["ndc"].tolist() == ["00172572860"]
    assert results["decision"].tolist() == ["approved"]


# --- smaller things users expect -----------------------------------------------------------------


def test_rejects_say_whether_the_record_was_a_baclofen_powder_line(write_csv, tmp_path):
    listed = tmp_path / "ref"
    listed.mkdir()
    (listed / "products.csv").write_text("ndc,description\n12345-6789-01,listed\n")
    rows = [
        "C1,x,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35",  # yes: name
        "C2,x,M1,1980-01-02,2024-05-01,12345-6789-01,LISTED,oral,5,mg,G35",  # yes: listed NDC
        "C3,x,M1,1980-01-02,2024-05-01,00000-0000-00,ASPIRIN,oral,5,mg,G35",  # no
        "C4,1,M1,1980-01-02,2024-05-01,bad-ndc,ASPIRIN,oral,5,mg,G35",  # unknown: NDC unreadable
        "C5,1,M1",  # unknown: malformed
        "C6,1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,five,mg,G35",  # yes
    ]
    out = tmp_path / "out"
    result = _cli("run", write_csv(rows), "--out", out, "--reference-dir", listed)
    assert result.exit_code == 0, result.output
    rejects = pd.read_parquet(out / "rejects.parquet")
    assert dict(zip(rejects["source_row"], rejects["powder_line"], strict=True)) == {
        1: "yes", 2: "yes", 3: "no", 4: "unknown", 5: "unknown", 6: "yes"
    }  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rejected_by_powder_line"] == {"yes": 3, "no": 1, "unknown": 2}
    assert "yes 3, no 1, unknown 2" in (out / "summary.md").read_text()


def test_without_a_product_list_an_unreadable_ndc_decides_nothing(write_csv, tmp_path):
    """Scope is then by name alone: a record not named baclofen powder is not a policy line."""
    out = tmp_path / "out"
    row = "C4,1,M1,1980-01-02,2024-05-01,bad-ndc,ASPIRIN,oral,5,mg,G35"
    assert _cli("run", write_csv([row]), "--out", out).exit_code == 0
    assert pd.read_parquet(out / "rejects.parquet")["powder_line"].tolist() == ["no"]


@pytest.mark.parametrize(
    ("given", "route", "reasons"),
    [
        ("orally", "oral", ""), ("P.O.", "oral", ""), ("per  os", "oral", ""),
        ("INTRATHECAL INJECTION", "intrathecal", "STRENGTH_UNIT_INVALID"),
        ("intrathecal infusion", "intrathecal", "STRENGTH_UNIT_INVALID"),
        ("buccal", "other", "ROUTE_NOT_COVERED"),
    ],
)  # fmt: skip
def test_results_carry_the_route_as_given_beside_the_normalized_one(
    write_csv, tmp_path, given, route, reasons
):
    row = f"C1,1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,{given},5,mg,G35"
    out = tmp_path / "out"
    assert _cli("run", write_csv([row]), "--out", out).exit_code == 0
    results = pd.read_parquet(out / "results.parquet")
    assert results[["route_given", "route", "reasons"]].values.tolist() == [[given, route, reasons]]


def test_unknown_columns_are_listed_as_ignored_in_both_summaries(write_csv, tmp_path):
    out = tmp_path / "out"
    extract = write_csv([f"{LINE},x,30"], header=f"{HEADER},Rout,quantity")
    assert _cli("run", extract, "--out", out).exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"][0]["ignored_columns"] == ["Rout"]
    assert "`Rout`" in (out / "summary.md").read_text()


def test_csv_outputs_keep_the_sign_of_plain_numbers(write_csv, tmp_path):
    row = "C1,1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,-0.5,mg,G35"
    good = "C2,1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35"
    out = tmp_path / "out"
    extract = write_csv([f"{row},-30", f"{good},-1e3"], header=f"{HEADER},quantity")
    assert _cli("run", extract, "--out", out, "--format", "csv").exit_code == 0
    rejects = pd.read_csv(out / "rejects.csv", dtype="str", keep_default_na=False)
    results = pd.read_csv(out / "results.csv", dtype="str", keep_default_na=False)
    assert rejects["value"].tolist() == ["-0.5"]
    assert results["quantity"].tolist() == ["-1e3"]


def test_reference_commercial_strengths_accept_the_old_date_column_names(write_csv, tmp_path):
    """available_from / available_to were the old names; start_date / end_date the new."""
    decisions = {}
    for names in (("available_from", "available_to"), ("start_date", "end_date")):
        reference = tmp_path / names[0]
        reference.mkdir()
        (reference / "commercial_strengths.csv").write_text(
            f"route,strength,strength_unit,{names[0]},{names[1]}\noral,5,mg,2024-06-01,\n"
        )
        out = tmp_path / f"out_{names[0]}"
        may, june = LINE, LINE.replace("C1", "C2").replace("2024-05-01", "2024-06-01")
        assert (
            _cli(
                "run", write_csv([may, june]), "--out", out, "--reference-dir", reference
            ).exit_code
            == 0
        )
        decisions[names] = pd.read_parquet(out / "results.parquet")["reasons"].tolist()
    assert set(map(tuple, decisions.values())) == {("", "COMMERCIALLY_AVAILABLE")}


def test_a_sub_directory_of_the_reference_directory_is_not_a_misspelling(write_csv, tmp_path):
    reference = tmp_path / "ref"
    (reference / "market").mkdir(parents=True)
    assert _cli("run", write_csv([LINE]), "--out", tmp_path / "out",
                "--reference-dir", reference).exit_code == 0  # fmt: skip


def test_pandera_switches_set_in_process_do_not_turn_the_checks_off(
    write_csv, tmp_path, monkeypatch
):
    """The corpus runs the real environment variables; this sets pandera's global config."""
    from pandera import config

    monkeypatch.setattr(config.CONFIG, "validation_enabled", False)
    config.reset_config_context()
    try:
        row = "C1,x,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35"
        out = tmp_path / "out"
        assert _cli("run", write_csv([row]), "--out", out).exit_code == 0
        assert json.loads((out / "summary.json").read_text())["counts"]["rejected"] == 1
    finally:
        monkeypatch.undo()
        config.reset_config_context()


def test_make_run_installs_only_what_a_run_needs():
    makefile = (ROOT / "Makefile").read_text()
    run_target = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert ".test-deps" not in run_target
    assert "--constraint constraints.txt" in makefile
    constraints = (ROOT / "constraints.txt").read_text()
    for package in ("pandas==", "pandera==", "pyarrow==", "typer==", "numpy=="):
        assert package in constraints


def test_the_version_is_defined_once():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert "\nversion =" not in pyproject.split("[project]", 1)[1].split("[", 1)[0]
    assert os.path.exists(ROOT / "pa_batch" / "__init__.py")
