"""A Parquet column already typed (integer line numbers, date or timestamp service dates) is
checked as itself, without the round trip through text, and every value comes out as its text
would have: the same line number or date, the same NA, whatever the integer width, the
extremes, the nulls or the timestamp's unit and zone."""

from __future__ import annotations

import datetime as dt

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


def test_a_typed_parquet_extract_decides_as_its_text_copy(tmp_path):
    lines = [
        {**VALID_LINE, "claim_id": f"C{n}", "line_number": str(number), "service_date": day}
        for n, (number, day) in enumerate(
            [(1, "2024-05-01"), (2, "2024-05-02"), (0, "2024-06-30"), (-3, "2024-07-01"),
             (None, "2024-05-03"), (7, None), (10**18, "2024-05-04")]
        )
    ]  # fmt: skip
    text = pa.table(
        {c: [line[c] if line[c] != "None" else None for line in lines] for c in VALID_LINE}
    )
    typed_table = text.set_column(
        text.schema.get_field_index("line_number"), "line_number",
        pa.array([None if v in (None, "None") else int(v) for v in text["line_number"].to_pylist()], pa.int64()),
    ).set_column(
        text.schema.get_field_index("service_date"), "service_date",
        pa.array([None if v is None else dt.date.fromisoformat(v) for v in text["service_date"].to_pylist()], pa.date32()),
    )  # fmt: skip
    outputs = {}
    for name, table in (("text", text), ("typed", typed_table)):
        pq.write_table(table, tmp_path / f"{name}.parquet")
        out = tmp_path / f"out_{name}"
        result = CliRunner().invoke(
            app, ["run", str(tmp_path / f"{name}.parquet"), "--out", str(out), "--format", "csv"]
        )
        assert result.exit_code == 0, result.output
        outputs[name] = [
            (out / f).read_text().replace(f"{name}.parquet", "X")
            for f in ("results.csv", "rejects.csv")
        ]
    assert outputs["typed"] == outputs["text"]
    assert (
        "INVALID_LINE_NUMBER" in outputs["typed"][1]
        and "MISSING_REQUIRED_VALUE" in outputs["typed"][1]
    )
