"""A Parquet column already typed (integer line numbers, date or timestamp service dates) is
checked as itself, without the round trip through text, and every value comes out as its text
would have: the same line number or date, the same NA, whatever the integer width, the
extremes, the nulls or the timestamp's unit and zone."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import VALID_LINE, examples
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pa_batch.cli import app
from pa_batch.core import normalize, typed
from pa_batch.core.arrow_text import TextCells, text_records

INTEGER_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32(),
                 pa.uint64()]  # fmt: skip


def _as_its_text(column: pa.Array, name: str) -> pd.Series:
    """The column as the reader's text records give it (what the text path parses): a typed
    column held as read, turned into text when the records are made."""
    return text_records(TextCells({}, {name: column}), len(column))[name]


@pytest.mark.parametrize("kind", INTEGER_TYPES, ids=str)
@settings(max_examples=examples(60), deadline=None)
@given(data=st.data())
def test_integer_line_numbers_are_their_text_s(kind, data):
    low = 0 if pa.types.is_unsigned_integer(kind) else -(2 ** (kind.bit_width - 1))
    high = 2**kind.bit_width - 1 if low == 0 else 2 ** (kind.bit_width - 1) - 1
    interesting = st.sampled_from([low, high, 0, 1, 2, 10**18 - 1, 10**18, -1])
    values = data.draw(
        st.lists(
            st.one_of(
                st.none(), st.integers(low, high), interesting.filter(lambda v: low <= v <= high)
            ),
            max_size=40,
        )
    )
    column = pa.array(values, kind)
    pd.testing.assert_series_equal(
        typed.whole_numbers(column),
        normalize.line_number(_as_its_text(column, "line_number")).reset_index(drop=True),
        check_names=False,
    )


DAY = st.integers(-800_000, 3_000_000)  # about year -220 to 10183, as date32 days


@pytest.mark.parametrize(
    "kind",
    [pa.date32(), pa.date64(), pa.timestamp("s"), pa.timestamp("ms"), pa.timestamp("us"),
     pa.timestamp("s", tz="UTC"), pa.timestamp("ms", tz="America/New_York")],
    ids=str,
)  # fmt: skip
@settings(max_examples=examples(60), deadline=None)
@given(
    days=st.lists(
        st.one_of(st.none(), DAY, st.sampled_from([-719162, -719163, 2932896, 2932897])),
        max_size=40,
    ),
    seconds=st.integers(0, 86_399),
)
def test_dates_and_timestamps_are_their_text_s(kind, days, seconds):
    dates = pa.array(days, pa.int32()).cast(pa.date32())
    if pa.types.is_timestamp(kind):
        unit_per_second = {"s": 1, "ms": 1_000, "us": 1_000_000}[kind.unit]
        ticks = [None if d is None else (d * 86_400 + seconds) * unit_per_second for d in days]
        column = pa.array(ticks, pa.int64()).cast(kind)
    else:
        column = dates.cast(kind)
    pd.testing.assert_series_equal(
        typed.calendar_dates(column),
        normalize.dates(_as_its_text(column, "service_date")).reset_index(drop=True),
        check_names=False,
    )


@pytest.mark.parametrize("batch_rows", [None, 2], ids=["one batch", "batches of 2"])
def test_a_typed_parquet_extract_decides_as_its_text_copy(tmp_path, batch_rows):
    """Typed line numbers, service dates and birth dates (valid, missing, invalid, after the
    service, under age) decide as their text does, in one batch and over batches scoped
    apart and decided together."""
    lines = [
        {**VALID_LINE, "claim_id": f"C{n}", "line_number": str(number), "service_date": day,
         "member_birth_date": born}
        for n, (number, day, born) in enumerate(
            [(1, "2024-05-01", "1980-01-02"), (2, "2024-05-02", None),
             (0, "2024-06-30", "1980-01-02"), (-3, "2024-07-01", "2024-07-02"),
             (None, "2024-05-03", "1980-01-02"), (7, None, "1980-01-02"),
             (10**18, "2024-05-04", "1980-01-02"), (8, "2024-05-05", "2024-05-06"),
             (9, "2024-05-06", "2020-02-29"), (10, "2024-05-07", "0001-01-01")]
        )
    ]  # fmt: skip
    text = pa.table(
        {c: [line[c] if line[c] != "None" else None for line in lines] for c in VALID_LINE}
    )
    typed_table = text.set_column(
        text.schema.get_field_index("line_number"),
        "line_number",
        pa.array(
            [None if v in (None, "None") else int(v) for v in text["line_number"].to_pylist()],
            pa.int64(),
        ),
    )
    for name in ("service_date", "member_birth_date"):
        typed_table = typed_table.set_column(
            text.schema.get_field_index(name), name,
            pa.array([None if v is None else dt.date.fromisoformat(v) for v in text[name].to_pylist()], pa.date32()),
        )  # fmt: skip
    outputs = {}
    for name, table in (("text", text), ("typed", typed_table)):
        pq.write_table(table, tmp_path / f"{name}.parquet")
        out = tmp_path / f"out_{name}"
        batching = ["--batch-rows", str(batch_rows)] if batch_rows else []
        result = CliRunner().invoke(
            app,
            ["run", str(tmp_path / f"{name}.parquet"), "--out", str(out), "--format", "csv",
             *batching],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        outputs[name] = [
            (out / f).read_text().replace(f"{name}.parquet", "X")
            for f in ("results.csv", "rejects.csv")
        ]
    assert outputs["typed"] == outputs["text"]
    assert (
        "INVALID_LINE_NUMBER" in outputs["typed"][1]
        and "MISSING_REQUIRED_VALUE" in outputs["typed"][1]
        and "BIRTH_AFTER_SERVICE" in outputs["typed"][1]
    )
    assert "PEDIATRIC_ORAL_UNDER_12" in outputs["typed"][0]


@settings(max_examples=examples(60), deadline=None)
@given(
    days=st.lists(st.one_of(st.none(), DAY), min_size=1, max_size=30),
    gaps=st.lists(st.integers(1, 5), min_size=30, max_size=30),
)
def test_typed_birth_dates_are_their_text_s_on_lines_anywhere_in_a_batch(days, gaps):
    """The powder lines are a subset of a batch, labelled by their positions in it: typed
    birth dates give each line the birth date, flags and age its text gives it."""
    column = pa.array(days, pa.int32()).cast(pa.date32())
    positions = np.cumsum(gaps[: len(days)])  # the lines' positions in their batch
    text = _as_its_text(column, "member_birth_date").set_axis(positions)
    lines = pd.DataFrame(
        {"route": "oral", "strength": "5", "strength_unit": "mg", "member_birth_date": text,
         "diagnosis_codes": "G35"},
        index=positions,
    )  # fmt: skip
    service_date = pd.Series(pd.Timestamp("2024-05-01"), index=positions, dtype="datetime64[s]")
    version = np.zeros(len(days), dtype=np.int64)
    as_typed = typed.powder_columns(lines, service_date, version, column).values
    as_text = typed.powder_columns(lines, service_date, version).values
    pd.testing.assert_frame_equal(as_typed, as_text)
