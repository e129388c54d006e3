"""Decision cases, one per row of tests/fixtures/decision_cases.csv: a baclofen powder line's
route, strength, diagnoses and dates beside the decision, reasons and advisories it must get.

Reference data: the shipped defaults plus tests/fixtures/reference/shortages.csv (oral 10 mg
from 2024-03-01 to 2024-06-30; intrathecal 0.05 mg/mL ongoing since 2023-10-01).
"""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import FIXTURES, VALID_LINE, read_table, run_lines

CASES = pd.read_csv(FIXTURES / "decision_cases.csv", dtype="str", keep_default_na=False)


@pytest.fixture(scope="module")
def decided(tmp_path_factory, module_engine) -> pd.DataFrame:
    columns = ["service_date", "route", "strength", "strength_unit", "diagnosis_codes",
               "member_birth_date"]  # fmt: skip
    lines = [
        {**VALID_LINE, "claim_id": case["case"], **{c: case[c] for c in columns}}
        for case in CASES.to_dict("records")
    ]
    folder = tmp_path_factory.mktemp("decision_cases")
    out = run_lines(folder, lines, "--reference-dir", str(FIXTURES / "reference"), *module_engine)
    results = read_table(out, "results")
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
