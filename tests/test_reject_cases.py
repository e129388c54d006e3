"""Reject cases, one per row of tests/fixtures/reject_cases.csv: a valid baclofen powder line
with one column changed, beside the reject codes that change must produce."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from helpers import FIXTURES, VALID_LINE

CASES = pd.read_csv(FIXTURES / "reject_cases.csv", dtype="str", keep_default_na=False)


@pytest.fixture(scope="module")
def rejected(tmp_path_factory) -> pd.DataFrame:
    from typer.testing import CliRunner

    from pa_batch.cli import app

    folder = tmp_path_factory.mktemp("reject_cases")
    extract = folder / "claims.csv"
    with extract.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(VALID_LINE))
        writer.writeheader()
        for number, case in enumerate(CASES.itertuples(), start=1):
            writer.writerow({**VALID_LINE, "claim_id": f"C{number}", case.column: case.value})
        writer.writerow({**VALID_LINE, "claim_id": "CONTROL"})
    out = folder / "out"
    result = CliRunner().invoke(app, ["run", str(extract), "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = pd.read_parquet(out / "results.parquet")
    assert results["claim_id"].tolist() == ["CONTROL"], "only the unchanged line is evaluated"
    return pd.read_parquet(out / "rejects.parquet")


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
