"""The contract checks, evaluated from the schema's own parts, report exactly what pandera's
own ``validate(lazy=True)`` reports, on generated batches of both schemas; and a reader bug
(a wrong dtype, a missing column) is raised, never turned into rejects."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from pandera.errors import SchemaErrors

from pa_batch.core import validation
from pa_batch.core.typed import flagged_column
from pa_batch.schemas.claim_extract import (
    INPUT_COLUMNS,
    MISSING_REQUIRED_VALUE,
    POWDER_LINE_SCHEMA,
    RECORD_SCHEMA,
)

PANDERA_NOT_NULLABLE = "not_nullable"  # pandera's own check for a null in a required column


def _frame(schema, cells: list[list[bool]], offset: int) -> pd.DataFrame:
    """Text columns missing where a cell is True, flag columns set where it is True; the
    index starts at ``offset``, as a subset of a batch does."""
    columns = {}
    for position, (name, column) in enumerate(schema.columns.items()):
        marks = [row[position % len(row)] for row in cells]
        if column.checks:  # a parse-failed flag
            columns[name] = pd.Series(marks, dtype=bool)
        else:
            columns[name] = pd.Series([None if m else "x" for m in marks], dtype="str")
    return pd.DataFrame(columns).set_axis(range(offset, offset + len(cells)))


def _pandera_says(schema, frame) -> pd.DataFrame:
    """pandera's own failure cases, in the same shape and order as contract_failures."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return validation.contract_failures_empty()
    column = cases["column"].astype("str").map(flagged_column)
    failures = pd.DataFrame(
        {
            "position": cases["index"].astype("int64").to_numpy(),
            "column": column.to_numpy(),
            "error_code": cases["check"]
            .astype("str")
            .replace({PANDERA_NOT_NULLABLE: MISSING_REQUIRED_VALUE})
            .to_numpy(),
            "_column_order": column.map({n: i for i, n in enumerate(INPUT_COLUMNS)}).to_numpy(),
            "_order": range(len(cases)),
        }
    ).sort_values(["position", "_column_order", "_order"], kind="stable")
    return failures[validation.FAILURE_COLUMNS].drop_duplicates().reset_index(drop=True)


@pytest.mark.parametrize("schema", [RECORD_SCHEMA, POWDER_LINE_SCHEMA], ids=lambda s: s.name)
@settings(max_examples=examples(80), deadline=None)
@given(
    cells=st.lists(st.lists(st.booleans(), min_size=1, max_size=7), max_size=30),
    offset=st.integers(0, 1000),
)
@pytest.mark.slow
def test_failures_are_pandera_s_own(schema, cells, offset):
    frame = _frame(schema, cells, offset)
    found = validation.contract_failures(schema, frame)
    pd.testing.assert_frame_equal(found, _pandera_says(schema, frame), check_dtype=False)


def test_a_batch_with_failures_in_every_column_matches_pandera():
    frame = _frame(RECORD_SCHEMA, [[True], [False], [True, False]], 5)
    found = validation.contract_failures(RECORD_SCHEMA, frame)
    assert len(found) > 5
    pd.testing.assert_frame_equal(found, _pandera_says(RECORD_SCHEMA, frame), check_dtype=False)


@pytest.mark.parametrize("broken", ["dtype", "missing column"])
def test_a_reader_bug_is_raised_not_rejected(broken):
    frame = _frame(RECORD_SCHEMA, [[False]] * 3, 0)
    if broken == "dtype":
        frame["ndc__invalid"] = frame["ndc__invalid"].astype("int64")
    else:
        frame = frame.drop(columns="claim_id")
    with pytest.raises(RuntimeError, match="structural check"):
        validation.contract_failures(RECORD_SCHEMA, frame)
