"""`pa-batch explain`: the explanation agrees with the decision for every reason code and
advisory (the decision-case fixture covers them all), quotes the shortage row behind a shortage
approval, explains a rejected record's errors, and reads the run's own copies."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from helpers import FIXTURES, SAMPLE_DATA, VALID_LINE, run_lines
from typer.testing import CliRunner

from pa_batch.cli import app

CASES = pd.read_csv(FIXTURES / "decision_cases.csv", dtype="str", keep_default_na=False)
COLUMNS = ["service_date", "route", "strength", "strength_unit", "diagnosis_codes",
           "member_birth_date"]  # fmt: skip


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def decided_run(tmp_path_factory):
    lines = [
        {**VALID_LINE, "claim_id": case["case"], **{c: case[c] for c in COLUMNS}}
        for case in CASES.to_dict("records")
    ]
    lines.append({**VALID_LINE, "claim_id": "REJECTED", "line_number": "1.5"})
    folder = tmp_path_factory.mktemp("explain")
    reference = folder / "ref"
    shutil.copytree(FIXTURES / "reference", reference)
    out = run_lines(folder, lines, "--reference-dir", str(reference))
    return out, reference


@pytest.mark.parametrize("case", CASES.to_dict("records"), ids=lambda case: case["case"])
def test_the_explanation_agrees_with_the_decision(decided_run, case):
    out, _ = decided_run
    result = _cli("explain", out, case["case"], "--json")
    assert result.exit_code == 0, result.output
    (line,) = json.loads(result.output)["lines"]
    unmet = [c["code"] for c in line["criteria"] if c["status"] == "fail"]
    assert "|".join(unmet) == case["reasons"]
    assert {c["status"] for c in line["criteria"]} <= {"pass", "fail", "n/a"}
    assert line["decision"] == case["decision"]
    assert "|".join(a["code"] for a in line["advisories"]) == case["advisories"]
    assert (line["approval"]["end"] or "") == case["approval_end"]
    assert all(c["clause"] for c in line["criteria"])
    text = _cli("explain", out, case["case"]).output
    assert f"decision: {case['decision']}" in text
    for code in unmet:
        assert f"[FAIL \u2192 {code}]" in text
    assert "None" not in text and "[met" not in text


def test_a_shortage_approval_quotes_the_shortage_row(decided_run):
    out, _ = decided_run
    case = "approved_intrathecal_0.05_in_ongoing_shortage"
    (line,) = json.loads(_cli("explain", out, case, "--json").output)["lines"]
    assert line["decision"] == "approved"
    assert line["shortage"]["file"] == "shortages.csv"
    shortages = pd.read_csv(
        FIXTURES / "reference" / "shortages.csv", dtype="str", keep_default_na=False
    )
    row = shortages.iloc[line["shortage"]["row"] - 1].to_dict()
    assert line["shortage"]["content"] == row
    assert line["commercial_strength"]["content"]["strength"] == 0.05  # a JSON number
    text = _cli("explain", out, case).output
    assert "but in shortage on the service date by shortages.csv row" in text


def test_a_rejected_record_explains_its_reject_codes(decided_run):
    out, _ = decided_run
    (line,) = json.loads(_cli("explain", out, "REJECTED", "--json").output)["lines"]
    assert line["outcome"] == "rejected"
    assert line["errors"] == [{"column": "line_number", "code": "INVALID_LINE_NUMBER",
                               "message": "line_number must be a whole number >= 1", "value": "1.5"}]  # fmt: skip
    text = _cli("explain", out, "REJECTED").output
    assert "REJECTED" in text and "INVALID_LINE_NUMBER" in text


def test_explain_reads_the_runs_own_copies_not_todays_files(decided_run):
    out, reference = decided_run
    case = "approved_intrathecal_0.05_in_ongoing_shortage"
    before = _cli("explain", out, case, "--json").output
    (reference / "shortages.csv").write_text("route,strength,strength_unit,start_date,end_date\n")
    try:
        assert _cli("explain", out, case, "--json").output == before
    finally:
        shutil.copy(FIXTURES / "reference" / "shortages.csv", reference / "shortages.csv")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["NO-SUCH-CLAIM"],
            "no line of that claim in the run, and no record of it in the "
            "run's inputs (1 input(s) searched, unchanged since the run)",
        ),
        (
            ["approved_oral_5mg", "--line", "7"],
            "no line of that claim and line in the run, and "
            "no record of it in the run's inputs (1 input(s) searched, unchanged since the run)",
        ),
    ],
)
def test_an_unknown_claim_or_line_exits_1_in_one_line(decided_run, args, message):
    out, _ = decided_run
    result = _cli("explain", out, *args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(message)


def test_explain_takes_a_run_of_the_history(tmp_path):
    out = tmp_path / "out"
    for run_id in ("first", "second"):
        assert (
            _cli("run", SAMPLE_DATA / "claims.csv", "--out", out, "--run-id", run_id).exit_code == 0
        )
    first = out / ".pa-batch" / "runs" / "first"
    result = _cli("explain", first, "RX24000008", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["run"]["id"] == "first"


def test_explain_takes_a_run_id_in_a_history(tmp_path):
    out = tmp_path / "out"
    for run_id in ("first", "second"):
        assert (
            _cli("run", SAMPLE_DATA / "claims.csv", "--out", out, "--run-id", run_id).exit_code == 0
        )
    result = _cli("explain", "first", "RX24000008", "--in", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["run"]["id"] == "first"


def test_clauses_and_advisories_quote_the_version_that_decided_the_line(tmp_path):
    """Under a version whose oral limit is 25 mg and oral age 10, a 25 mg line passes "oral
    dose within the limit" and every clause says 25 mg and 10 years, never the shipped 20 and
    12; a criterion that does not apply to the route states no finding."""
    from importlib import resources

    shipped = resources.files("pa_batch.policy.data").joinpath("baclofen-powder.toml").read_text()
    policy = tmp_path / "policy.toml"
    policy.write_text(
        shipped.replace('version = "2024.1"', 'version = "2025.2"')
        .replace("oral_max_mg_per_unit = 20.0", "oral_max_mg_per_unit = 25.0")
        .replace("oral_pediatric_age = 12", "oral_pediatric_age = 10")
    )
    extract = tmp_path / "claims.csv"
    extract.write_text(
        "claim_id,line_number,member_id,member_birth_date,service_date,ndc,drug_name,route,"
        "strength,strength_unit,diagnosis_codes\n"
        "C1,1,M1,2016-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,25,mg,G35\n"
    )
    out = tmp_path / "out"
    assert _cli("run", extract, "--out", out, "--policy", policy).exit_code == 0
    (line,) = json.loads(_cli("explain", out, "C1", "--json").output)["lines"]
    by_name = {c["name"]: c for c in line["criteria"]}
    oral = by_name["oral dose within the limit"]
    assert (oral["status"], oral["code"], oral["observed"]) == (
        "pass",
        "ORAL_DOSE_EXCEEDS_LIMIT",
        "25 mg",
    )
    assert oral["requirement"] == "at most 25 mg per unit (policy version 2025.2)"
    assert oral["clause"] == "The requested oral dose does not exceed 25 mg per unit."
    unit = by_name["a unit that fits the route"]
    assert "25 mg per unit" in unit["clause"] and "20 mg" not in unit["clause"]
    intrathecal = by_name["intrathecal concentration within the limit"]
    assert (intrathecal["status"], intrathecal["observed"], intrathecal["finding"]) == (
        "n/a",
        None,
        None,
    )
    (advisory,) = line["advisories"]
    assert advisory["code"] == "PEDIATRIC_ORAL_UNDER_12"  # the code stays; the text says 10
    assert advisory["clause"] == "Safety and efficacy are not established under 10 years (oral)."
    assert line["in_scope_by"] == "ndc" or line["in_scope_by"] in ("name", "both")
    text = _cli("explain", out, "C1").output
    assert (
        "[pass] oral dose within the limit: observed 25 mg; requires at most 25 mg per unit" in text
    )
    assert "[n/a] intrathecal concentration within the limit: not evaluated for this route" in text
    assert "20 mg" not in text and "12 years" not in text and "None" not in text


# --- as given, and why a claim was not decided ------------------------------------------------

AS_WRITTEN = {"service_date": "20240603", "ndc": "51927-1004-00", "line_number": "01",
              "route": " Oral ", "strength": "5.0"}  # fmt: skip
NOT_POWDER = {"claim_id": "TABLET", "drug_name": "BACLOFEN 10 MG TAB", "ndc": "00000-1111-22"}


@pytest.fixture
def messy_run(tmp_path):
    """A powder line written the long way, a tablet claim (out of scope), a malformed record
    carrying its claim id: the extract beside the output directory."""
    out = run_lines(tmp_path, [{**VALID_LINE, "claim_id": "WRITTEN", **AS_WRITTEN},
                               {**VALID_LINE, **NOT_POWDER}])  # fmt: skip
    return out, tmp_path / "claims.csv"


def test_input_as_given_is_the_cell_as_the_file_wrote_it(messy_run):
    out, extract = messy_run
    explained = json.loads(_cli("explain", out, "WRITTEN", "--json").stdout)
    line = explained["lines"][0]
    assert {k: line["input"][k] for k in AS_WRITTEN | {"route_given": ""} if k != "route"} == {
        "service_date": "20240603", "ndc": "51927-1004-00", "line_number": "01",
        "strength": "5.0", "route_given": " Oral ",
    }  # fmt: skip
    assert line["input_source"] == (
        f"as given, re-read from {extract} record 1, unchanged since the run (SHA-256 as in the "
        "run's manifest)"
    )
    assert explained["inputs_searched"] == {
        str(extract): "unchanged since the run (SHA-256 as in the run's manifest)"
    }


@pytest.mark.parametrize("what_happened", ["moved", "changed"])
def test_a_moved_or_changed_input_is_not_quoted_and_the_values_are_labelled(
    messy_run, what_happened
):
    out, extract = messy_run
    if what_happened == "moved":
        extract.rename(extract.with_name("elsewhere.csv"))
        state = "not found at the path the run read"
    else:
        extract.write_text(extract.read_text().replace("20240603", "20240604"))
        state = "changed since the run (SHA-256 not as in the run's manifest)"
    text = _cli("explain", out, "WRITTEN").stdout
    assert (
        "  input as the run kept it, with line_number, service_date and ndc normalized, since "
        f"{extract} is {state}:\n"
    ) in text
    assert "service_date=2024-06-03, ndc=51927100400" in text
    result = _cli("explain", out, "TABLET")
    assert result.exit_code == 1
    assert result.stderr.strip().endswith(
        f"no line of that claim in the run, and no record of it in the run's inputs "
        f"({extract}: {state})"
    )


def test_an_out_of_scope_claim_is_found_in_the_inputs_with_why(messy_run):
    out, extract = messy_run
    result = _cli("explain", out, "TABLET")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2:] == [
        f"Line 1: OUT_OF_SCOPE ({extract}, record 2)",
        f"  input as given, re-read from {extract} record 2:",
        "    claim_id=TABLET, line_number=1, member_id=M1, service_date=2024-05-01, "
        "ndc=00000-1111-22, member_birth_date=1980-01-02, drug_name=BACLOFEN 10 MG TAB, "
        "route=oral, strength=5, strength_unit=mg, diagnosis_codes=G35",
        "  out of scope: NDC 00000-1111-22 is not a listed product (the run's products.csv), "
        "and drug name 'BACLOFEN 10 MG TAB' does not name baclofen powder or bulk",
    ]
    explained = json.loads(_cli("explain", out, "TABLET", "--json").stdout)
    assert explained["lines"][0]["outcome"] == "out_of_scope"


def test_a_malformed_record_carrying_the_claim_id_is_found(tmp_path):
    extract = tmp_path / "claims.csv"
    header = ",".join(VALID_LINE)
    good = ",".join(VALID_LINE.values())
    extract.write_text(f"{header}\n{good}\nBROKEN,1,M1,extra,fields,,,,,,,,,,,,,,,\n")
    out = tmp_path / "out"
    assert _cli("run", extract, "--out", out).exit_code == 0
    text = _cli("explain", out, "BROKEN").stdout
    assert f"Record 2: REJECTED ({extract}, record 2)" in text
    assert "MALFORMED_RECORD: record has 20 fields" in text


def test_a_parquet_input_is_searched_by_its_claim_id_column_across_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = [{**VALID_LINE, "claim_id": f"P{n}"} for n in range(5)]
    lines[3] = {**VALID_LINE, "claim_id": " WRITTEN ", **AS_WRITTEN}
    lines.append({**VALID_LINE, **NOT_POWDER})
    table = pa.table({column: [line[column] for line in lines] for column in VALID_LINE})
    table = table.set_column(1, "line_number", pa.array([1, 1, 1, 1, 1, 1], pa.int64()))
    extract = tmp_path / "claims.parquet"
    pq.write_table(table, extract, row_group_size=2)  # the claim is in the second group
    out = tmp_path / "out"
    assert _cli("run", extract, "--out", out).exit_code == 0
    line = json.loads(_cli("explain", out, "WRITTEN", "--json").stdout)["lines"][0]
    assert line["source"] == {"file": str(extract), "row": 4}
    assert line["input"]["claim_id"] == " WRITTEN " and line["input"]["line_number"] == "1"
    assert line["input"]["service_date"] == "20240603" and line["input"]["ndc"] == "51927-1004-00"
    assert line["input_source"].startswith(f"as given, re-read from {extract} record 4, unchanged")
    tablet = _cli("explain", out, "TABLET")
    assert tablet.exit_code == 0 and "OUT_OF_SCOPE" in tablet.stdout
