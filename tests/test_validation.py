"""pandera sees only the rows that can fail: the failures are those of the whole batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pa_batch import validation
from pa_batch.schemas.claim_extract import POWDER_LINE_SCHEMA, RECORD_SCHEMA


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


def _whole_batch(schema, frame) -> pd.DataFrame:
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(validation, "_rows_that_can_fail", lambda s, f: np.ones(len(f), bool))
        return validation.contract_failures(schema, frame)


@pytest.mark.parametrize("schema", [RECORD_SCHEMA, POWDER_LINE_SCHEMA], ids=lambda s: s.name)
@settings(max_examples=60, deadline=None)
@given(
    cells=st.lists(st.lists(st.booleans(), min_size=1, max_size=7), max_size=30),
    offset=st.integers(0, 1000),
)
def test_failures_are_those_of_the_whole_batch(schema, cells, offset):
    frame = _frame(schema, cells, offset)
    expected = _whole_batch(schema, frame)
    found = validation.contract_failures(schema, frame)
    pd.testing.assert_frame_equal(found, expected, check_dtype=False)


def test_a_clean_batch_never_reaches_pandera(monkeypatch):
    frame = _frame(RECORD_SCHEMA, [[False]] * 50, 0)

    def refuse(*args, **kwargs):
        raise AssertionError("pandera ran on a batch with nothing to report")

    monkeypatch.setattr(RECORD_SCHEMA.__class__, "validate", refuse)
    assert validation.contract_failures(RECORD_SCHEMA, frame).empty
