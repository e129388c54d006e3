"""Decision cases, one per row of tests/fixtures/decision_cases.csv: a baclofen powder line's
route, strength, diagnoses and dates beside the decision, reasons and advisories it must get.

Reference data: the shipped defaults plus tests/fixtures/reference/shortages.csv (oral 10 mg
from 2024-03-01 to 2024-06-30; intrathecal 0.05 mg/mL ongoing since 2023-10-01).
"""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from helpers import FIXTURES

CASES = pd.read_csv(FIXTURES / "decision_cases.csv", dtype="str", keep_default_na=False)


@pytest.fixture(scope="module")
def decided(tmp_path_factory) -> pd.DataFrame:
    from typer.testing import CliRunner

    from pa_batch.cli import app

    folder = tmp_path_factory.mktemp("decision_cases")
    extract = folder / "claims.csv"
    with extract.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["claim_id", "line_number", "member_id", "service_date", "ndc", "drug_name"]
            + ["route", "strength", "strength_unit", "diagnosis_codes", "member_birth_date"]
        )
        for case in CASES.itertuples():
            writer.writerow(
                [case.case, 1, "M1", case.service_date, "00000-0000-00", "BACLOFEN POWDER"]
                + [case.route, case.strength, case.strength_unit, case.diagnosis_codes]
                + [case.member_birth_date]
            )
    out = folder / "out"
    result = CliRunner().invoke(
        app,
        ["run", str(extract), "--out", str(out), "--reference-dir", str(FIXTURES / "reference")],
    )
    assert result.exit_code == 0, result.output
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == len(CASES), "every case must be evaluated, none rejected"
    return results.set_index("claim_id")


@pytest.mark.parametrize("case", CASES.to_dict("records"), ids=lambda case: case["case"])
def test_decision_case(decided, case):
    line = decided.loc[case["case"]]
    end = "" if pd.isna(line["approval_end"]) else str(line["approval_end"])
    assert {
        "decision": line["decision"],
        "reasons": line["reasons"],
        "advisories": line["advisories"],
        "approval_end": end,
    } == {k: case[k] for k in ("decision", "reasons", "advisories", "approval_end")}
    if case["decision"] == "approved":
        assert str(line["approval_start"]) == case["service_date"].replace("/", "-")
    else:
        assert pd.isna(line["approval_start"])
