"""The policy's worked examples (tests/fixtures/spec_examples: an extract, a reference
directory and the required outcome of every record): outcome, reasons or reject codes,
advisories and approval end, on each engine."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import SPEC_EXAMPLES, Run

EXPECTED = pd.read_csv(SPEC_EXAMPLES / "expected.csv", dtype="str", keep_default_na=False)


@pytest.fixture(scope="module")
def example_run(tmp_path_factory, module_engine):
    from typer.testing import CliRunner

    from pa_batch.cli import app

    out = tmp_path_factory.mktemp("examples") / "out"
    args = ["run", str(SPEC_EXAMPLES / "claims.csv"), "--out", str(out)]
    reference = ["--reference-dir", str(SPEC_EXAMPLES / "reference")]
    result = CliRunner().invoke(app, [*args, *reference, *module_engine])
    assert result.exit_code == 0, result.output
    return Run(out, result.exit_code, result.output, result.stdout, result.stderr)


def _observed(run) -> pd.DataFrame:
    results = run.results.assign(
        outcome=lambda r: r["decision"],
        codes=lambda r: r["reasons"],
        approval_end=lambda r: r["approval_end"].map(lambda d: "" if pd.isna(d) else str(d)),
    )[["source_row", "outcome", "codes", "advisories", "approval_end"]]
    rejects = (
        run.rejects.groupby("source_row", sort=True)["error_code"]
        .agg("|".join)
        .rename("codes")
        .reset_index()
        .assign(outcome="rejected", advisories="", approval_end="")
    )
    observed = pd.concat([results, rejects]).set_index("source_row").sort_index()
    return observed


@pytest.mark.parametrize(
    "row", EXPECTED.to_dict("records"), ids=lambda r: f"row{r['source_row']}-{r['claim_id']}"
)
def test_spec_example_outcome(example_run, row):
    observed = _observed(example_run)
    source_row = int(row["source_row"])
    if row["outcome"] == "out_of_scope":
        assert source_row not in observed.index, row["note"]
        return
    got = observed.loc[source_row]
    assert (got["outcome"], got["codes"], got["advisories"], got["approval_end"]) == (
        row["outcome"],
        row["codes"],
        row["advisories"],
        row["approval_end"],
    ), row["note"]


def test_spec_example_counts_add_up(example_run):
    counts = example_run.summary["counts"]
    expected = EXPECTED["outcome"].value_counts()
    for outcome in ("approved", "denied", "investigational", "out_of_scope", "rejected"):
        assert counts[outcome] == expected.get(outcome, 0)
    assert counts["rows_read"] == len(EXPECTED)
