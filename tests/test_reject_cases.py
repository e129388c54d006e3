"""Reject cases, one per row of tests/fixtures/reject_cases.csv: a valid baclofen powder line
with one column changed, beside the reject codes that change must produce."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import FIXTURES, VALID_LINE, read_table, run_lines

CASES = pd.read_csv(FIXTURES / "reject_cases.csv", dtype="str", keep_default_na=False)


@pytest.fixture(scope="module")
def rejected(tmp_path_factory, module_engine) -> pd.DataFrame:
    changed = [
        {**VALID_LINE, "claim_id": f"C{number}", case.column: case.value}
        for number, case in enumerate(CASES.itertuples(), start=1)
    ]
    control = {**VALID_LINE, "claim_id": "CONTROL"}
    out = run_lines(tmp_path_factory.mktemp("reject_cases"), [*changed, control], *module_engine)
    results = read_table(out, "results")
    assert results["claim_id"].tolist() == ["CONTROL"], "only the unchanged line is evaluated"
    return read_table(out, "rejects")


@pytest.mark.parametrize(
    ("number", "case"),
    list(enumerate(CASES.to_dict("records"), start=1)),
    ids=CASES["case"].tolist(),
)
def test_reject_case(rejected, number, case):
    mine = rejected[rejected["source_row"] == number]
    assert "|".join(mine["error_code"]) == case["error_codes"]
    assert set(mine["column"]) == {case["column"]}
    assert mine["message"].str.len().gt(0).all()
