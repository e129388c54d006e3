"""`pa-batch diff` at any size: the DuckDB query that streams the differing lines equals the
plain reading — both runs whole in pandas, outer-merged on (claim_id, line_number) — on
generated pairs of runs that differ in every way (decision, reasons, approval window, lines
only in one run, claim ids a spreadsheet would read as formulas), written as Parquet or CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import VALID_LINE, examples, run_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pa_batch.audit.diff import COMPARED, KEY, diff_frame
from pa_batch.audit.history import read_run_table, resolve_run
from pa_batch.errors import RunError

STRENGTHS = ["5", "25", "10", "", "abc"]  # approved, over the limit, commercial, missing, bad
ROUTES = ["oral", "intrathecal", "topical", "rectal"]
DATES = ["2024-05-01", "2024-07-15", "2025-01-02"]
IDS = ["C1", "C2", "=C3", "-C4", "C 5"]


def _read_results(run_dir: Path) -> pd.DataFrame:
    """A committed run's results, whichever format it wrote, typed for comparing."""
    frame = read_run_table(run_dir, "results", [*KEY, "service_date", *COMPARED])
    try:
        frame["line_number"] = frame["line_number"].astype("int64")
        for column in ("service_date", "approval_start", "approval_end"):
            frame[column] = _dates(frame[column])
    except (ValueError, TypeError, OverflowError, KeyError):
        raise RunError(
            "damaged: results hold a value of the wrong type", file=str(run_dir)
        ) from None
    frame["reasons"] = frame["reasons"].fillna("")
    # plain Python keys: pandas cannot merge an Arrow string column of no chunks (a run of
    # no lines, read from Parquet) with another
    frame["claim_id"] = frame["claim_id"].astype(object)
    return frame


def _dates(values: pd.Series) -> pd.Series:
    """Dates as datetime64[s] (years up to 9999, and past it in runs written before approval
    windows stopped at 9999-12-31), from Parquet dates or CSV text."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.astype("datetime64[s]")
    days = np.array(values.to_numpy(dtype=object, na_value=None), dtype="datetime64[D]")
    return pd.Series(days.astype("datetime64[s]"), index=values.index)


def _diff_runs(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    both = old.merge(new, on=KEY, how="outer", suffixes=("_old", "_new"), indicator=True)
    only_old = both["_merge"] == "left_only"
    only_new = both["_merge"] == "right_only"
    changes = pd.Series("", index=both.index, dtype="str")
    for column, label in (
        ("decision", "decision"),
        ("reasons", "reasons"),
        ("approval_start", "approval window"),
        ("approval_end", "approval window"),
    ):
        differs = ~(
            (both[f"{column}_old"] == both[f"{column}_new"]).fillna(False)
            | (both[f"{column}_old"].isna() & both[f"{column}_new"].isna())
        )
        differs &= ~(only_old | only_new)
        mark = differs & ~changes.str.contains(label, regex=False)
        changes = changes.where(~mark, changes.where(changes == "", changes + ", ") + label)
    changes = changes.where(~only_old, "only in old").where(~only_new, "only in new")
    changed = both[changes != ""].assign(change=changes[changes != ""])
    return (
        pd.DataFrame(
            {
                "claim_id": changed["claim_id"],
                "line_number": changed["line_number"],
                "service_date": changed["service_date_new"].fillna(changed["service_date_old"]),
                "change": changed["change"],
                "old_decision": changed["decision_old"],
                "new_decision": changed["decision_new"],
                "old_reasons": changed["reasons_old"],
                "new_reasons": changed["reasons_new"],
                "old_approval_start": changed["approval_start_old"],
                "new_approval_start": changed["approval_start_new"],
                "old_approval_end": changed["approval_end_old"],
                "new_approval_end": changed["approval_end_new"],
            }
        )
        .sort_values(KEY, kind="stable")
        .reset_index(drop=True)
    )


def _run(folder, picks, output_format):
    lines = [
        {**VALID_LINE, "claim_id": IDS[claim], "line_number": str(line),
         "strength": STRENGTHS[strength], "route": ROUTES[route], "service_date": DATES[date]}
        for claim, line, strength, route, date in picks
    ]  # fmt: skip
    folder.mkdir()
    return resolve_run(str(run_lines(folder, lines, "--format", output_format)))


line = st.tuples(
    st.integers(0, len(IDS) - 1), st.integers(1, 3), st.integers(0, len(STRENGTHS) - 1),
    st.integers(0, len(ROUTES) - 1), st.integers(0, len(DATES) - 1),
)  # fmt: skip
unique_lines = st.lists(line, max_size=12, unique_by=lambda picked: picked[:2])


@pytest.mark.slow  # two runs an example
@pytest.mark.parametrize("formats", [("parquet", "parquet"), ("csv", "parquet"), ("csv", "csv")])
@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(old=unique_lines, new=unique_lines)
def test_the_streamed_diff_equals_the_plain_reading(tmp_path_factory, formats, old, new):
    folder = tmp_path_factory.mktemp("diff")
    old_run = _run(folder / "old", old, formats[0])
    new_run = _run(folder / "new", new, formats[1])
    found = diff_frame(old_run, new_run)
    if not old and not new:  # the plain reading cannot merge two empty frames
        assert found.empty and list(found.columns)[:2] == KEY
        return
    expected = _diff_runs(_read_results(old_run), _read_results(new_run))
    for column in ("service_date", "old_approval_start", "new_approval_start",
                   "old_approval_end", "new_approval_end"):  # fmt: skip
        found[column] = found[column].astype("datetime64[s]")
    pd.testing.assert_frame_equal(found, expected, check_dtype=False)


def test_a_results_file_that_is_not_one_fails_naming_it(tmp_path):
    old_run = _run(tmp_path / "old", [(0, 1, 0, 0, 0)], "csv")
    new_run = _run(tmp_path / "new", [(0, 1, 1, 0, 0)], "parquet")
    (old_run / "results.csv").write_text("not,a,results,file\n")
    with pytest.raises(RunError, match="damaged: not the results file of a run"):
        diff_frame(old_run, new_run)
