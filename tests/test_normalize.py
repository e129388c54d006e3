"""Normalization tables of SPEC §2–3: raw text in, normalized value out, side by side."""

from __future__ import annotations

import calendar
import datetime
import math
import re

import numpy as np
import pandas as pd
import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from pa_batch.core import normalize


def _one(function, raw):
    return function(pd.Series([raw], dtype="str")).iloc[0]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("oral", "oral"), ("PO", "oral"), ("By  Mouth", "oral"), ("26643006", "oral"),
        ("intrathecal", "intrathecal"), ("IT", "intrathecal"), ("ith", "intrathecal"),
        ("72607000", "intrathecal"), ("Topical", "topical"), ("top", "topical"),
        ("transdermal", "topical"), ("cutaneous", "topical"), ("6064005", "topical"),
        ("45890007", "topical"), ("rectal", "other"), ("oral tablet", "other"),
        (None, None),
    ],
)  # fmt: skip
def test_route(raw, expected):
    got = _one(normalize.route, raw)
    assert (None if pd.isna(got) else got) == expected


@pytest.mark.parametrize(
    ("unit", "kind", "factor"),
    [
        ("mg", "mass", 1), ("MG/unit", "mass", 1), ("mg/cap", "mass", 1), ("mg / capsule", "mass", 1),
        ("mg/tab", "mass", 1), ("mg/tablet", "mass", 1), ("mg/dose", "mass", 1),
        ("mcg", "mass", 0.001), ("ug", "mass", 0.001), ("\u00b5g", "mass", 0.001),
        ("\u03bcg", "mass", 0.001), ("g", "mass", 1000),
        ("mg/mL", "concentration", 1), ("mcg/ml", "concentration", 0.001),
        ("ug/ml", "concentration", 0.001), ("\u00b5g/mL", "concentration", 0.001),
        ("\u03bcg/ml", "concentration", 0.001), ("mg/5 mL", "concentration", 0.2),
        ("mg/L", "concentration", 0.001), ("%", "percent", None),
        ("tsp", None, None), ("mg/kg", None, None),
    ],
)  # fmt: skip
def test_strength_unit(unit, kind, factor):
    got = normalize.strength_unit(pd.Series([unit], dtype="str")).iloc[0]
    assert (None if pd.isna(got["kind"]) else got["kind"]) == kind
    if factor is None:
        assert math.isnan(got["factor"])
    else:
        assert got["factor"] == factor


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12345678901", "12345678901"), ("12345-6789-01", "12345678901"),
        ("1234-5678-90", "01234567890"), ("12345-678-90", "12345067890"),
        ("12345-6789-0", "12345678900"), ("1234567890", None), ("123-4567-89", None),
        ("12345-67890-1", None), ("1234567890A", None), ("123456789012", None),
    ],
)  # fmt: skip
def test_ndc(raw, expected):
    got = _one(normalize.ndc, raw)
    assert (None if pd.isna(got) else got) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-01", "2024-05-01"), ("20240501", "2024-05-01"), ("2024-02-29", "2024-02-29"),
        ("2023-02-29", None), ("2024-13-01", None), ("2024-00-10", None), ("2024-04-31", None),
        ("2024-5-1", None), ("2024/05/01", None), ("2024-0501", None), ("05/01/2024", None),
        ("0000-01-01", None), ("2400-02-29", "2400-02-29"), ("2100-02-29", None),
    ],
)  # fmt: skip
def test_dates(raw, expected):
    got = _one(normalize.dates, raw)
    assert (None if pd.isna(got) else str(got.date())) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("3", 3), ("3.0", 3), ("03", 3), ("1.5", None), ("0", None), ("-1", None), ("x", None),
     ("1e3", None), ("99999999999999999999", None),
     # past 2**53 a float cannot hold them: read as integers, exactly
     ("9007199254740993", 9007199254740993), ("999999999999999999", 999999999999999999)],
)  # fmt: skip
def test_line_number(raw, expected):
    got = _one(normalize.line_number, raw)
    assert (None if pd.isna(got) else int(got)) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("5", 5.0), ("0.015", 0.015), (".5", 0.5), ("1e3", 1000.0), ("+2", 2.0), ("0", None),
     ("-5", None), ("abc", None), ("inf", None), ("nan", None), ("1,000", None)],
)  # fmt: skip
def test_strength(raw, expected):
    got = _one(normalize.strength, raw)
    assert (None if pd.isna(got) else got) == expected


@pytest.mark.parametrize(
    ("amount", "factor", "expected"),
    [(0.015, 1000, 15.0), (20000, 0.001, 20.0), (25, 0.2, 5.0), (0.5000004, 1, 0.5),
     (1.23456789, 1, 1.234568)],
)  # fmt: skip
def test_normalized_strength_rounds_to_six_decimals(amount, factor, expected):
    got = normalize.normalized_strength(pd.Series([amount]), pd.Series([factor])).iloc[0]
    assert got == expected


@pytest.mark.parametrize(
    ("raw", "codes"),
    [
        ("G35", ["G35"]), ("g35.a", ["G35A"]), ("G35, R25.2", ["G35", "R252"]),
        ("G35;R25.2|G80.1 S14.101S", ["G35", "R252", "G801", "S14101S"]),
        (" ,G35,, ", ["G35"]), (None, []),
    ],
)  # fmt: skip
def test_diagnosis_tokens(raw, codes):
    tokens = normalize.diagnosis_tokens(pd.Series([raw], dtype="str"))
    assert tokens["code"].tolist() == codes


@pytest.mark.parametrize(
    ("code", "valid"),
    [("G35", True), ("G35A", True), ("S14101S", True), ("R252", True), ("G3", False),
     ("123", False), ("G351234", True), ("G3512345", False), ("GG35", False)],
)  # fmt: skip
def test_diagnosis_code_form(code, valid):
    assert normalize.valid_diagnosis_code(pd.Series([code], dtype="str")).iloc[0] == valid


@pytest.mark.parametrize(
    ("start", "end"),
    [("2024-05-01", "2025-04-30"), ("2024-02-29", "2025-02-27"), ("2024-01-31", "2025-01-30"),
     ("2023-03-01", "2024-02-29"), ("2024-12-31", "2025-12-30")],
)  # fmt: skip
def test_approval_window(start, end):
    got = normalize.add_calendar_months_minus_one_day(
        pd.Series(pd.to_datetime([start])).astype("datetime64[s]"), 12
    )
    assert str(got.iloc[0].date()) == end


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [("2012-05-01", "2024-05-01", 12), ("2012-05-02", "2024-05-01", 11),
     ("2020-02-29", "2024-02-28", 3), ("2020-02-29", "2024-02-29", 4)],
)  # fmt: skip
def test_age_in_years(birth, on, age):
    to_dates = lambda d: pd.Series(pd.to_datetime([d])).astype("datetime64[s]")  # noqa: E731
    assert normalize.age_in_years(to_dates(birth), to_dates(on)).iloc[0] == age


def test_on_distinct_evaluates_each_value_once():
    seen = []

    def evaluate(distinct):
        seen.append(len(distinct))
        return distinct.str.upper()

    values = pd.Series(["a", "b", None, "a", "b", "a"], dtype="str")
    got = normalize.on_distinct(values, evaluate)
    assert seen == [2]
    assert got.tolist()[:2] == ["A", "B"] and pd.isna(got.iloc[2]) and got.iloc[5] == "A"


def _window_oracle(start: datetime.date, months: int) -> datetime.date:
    """Calendar arithmetic, one date at a time: the day clipped to the target month's end."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return datetime.date(year, month, day) - datetime.timedelta(days=1)


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.dates(datetime.date(1900, 1, 1), datetime.date(2100, 1, 1))),
            st.integers(1, 600),
        ),
        max_size=40,
    )
)
def test_approval_window_equals_calendar_arithmetic(lines):
    """Evaluated once per distinct (start, months) pair, yet every line as if alone."""
    starts = pd.Series(pd.to_datetime([d for d, _ in lines]), dtype="datetime64[s]")
    months = np.array([m for _, m in lines], dtype=np.int64)
    got = normalize.add_calendar_months_minus_one_day(starts, months)
    expected = [None if d is None else _window_oracle(d, m) for d, m in lines]
    assert [None if pd.isna(v) else v.date() for v in got] == expected


def _ndc_oracle(value: str | None) -> str | None:
    """The contract's NDC forms, one value at a time, by regular expression."""
    if value is None:
        return None
    if re.fullmatch(r"[0-9]{11}", value):
        return value
    found = re.fullmatch(r"([0-9]{4,5})-([0-9]{3,4})-([0-9]{1,2})", value)
    if found and tuple(len(part) for part in found.groups()) in normalize.NDC_SEGMENTS:
        return found[1].zfill(5) + found[2].zfill(4) + found[3].zfill(2)
    return None


ndc_like = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from(list("0123456789-")), max_size=14),
    st.text(alphabet=st.sampled_from(list("0123456789-x \u0663\u00e9")), max_size=14),
    st.builds(
        lambda a, b, c: f"{a}-{b}-{c}",
        st.text(alphabet="0123456789", min_size=3, max_size=6),
        st.text(alphabet="0123456789", min_size=2, max_size=5),
        st.text(alphabet="0123456789", min_size=0, max_size=3),
    ),
)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(ndc_like, max_size=30), st.integers(0, 2))
def test_ndc_equals_the_contracts_regular_expressions(values, offset):
    """Read from the bytes of every value at once, yet as a regex reads each one; a batch's
    text may start part-way into its Arrow buffers (offset)."""
    series = pd.Series(["99999999999"] * offset + values, dtype="str").iloc[offset:]
    got = normalize.ndc(series)
    assert [None if pd.isna(v) else v for v in got] == [_ndc_oracle(v) for v in values]


_calendar_days = st.one_of(
    st.none(), st.dates(min_value=datetime.date(1, 1, 1), max_value=datetime.date(9999, 12, 31))
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_calendar_days, _calendar_days), min_size=1, max_size=40))
def test_age_in_years_is_the_calendar_reading(pairs):
    """Whole years by the calendar, read from each date's year, month and day: NA where a date
    is missing; one less than the difference of years before the birthday (29 February's
    birthday falls on 1 March in other years)."""
    births = pd.Series([b for b, _ in pairs], dtype="datetime64[s]")
    ons = pd.Series([o for _, o in pairs], dtype="datetime64[s]")
    got = normalize.age_in_years(births, ons)
    for (birth, on), age in zip(pairs, got, strict=True):
        if birth is None or on is None:
            assert pd.isna(age)
        else:
            assert age == on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _date_as_read(text: str | None) -> datetime.date | None:
    """The contract's date forms read one value at a time: four digits of year, two of
    month, two of day, with both dashes or none; a real calendar date."""
    if text is None:
        return None
    found = re.fullmatch(r"([0-9]{4})-?([0-9]{2})-?([0-9]{2})", text)
    if not found or text.count("-") not in (0, 2):
        return None
    try:
        return datetime.date(*map(int, found.groups()))
    except ValueError:  # no such day, month or year (year 0)
        return None


_date_texts = st.one_of(
    st.none(),
    st.dates(datetime.date(1, 1, 1), datetime.date(9999, 12, 31))
    .flatmap(lambda d: st.sampled_from([d.strftime("%Y-%m-%d"), d.strftime("%Y%m%d")]))
    .map(lambda t: t.rjust(8 if "-" not in t else 10, "0")),
    st.text(alphabet="0123456789-/ x\u0663", min_size=6, max_size=11),
    st.from_regex(r"\A[0-9]{4}-?[0-9]{2}-?[0-9]{2}\Z"),
)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(_date_texts, max_size=50))
def test_dates_are_each_value_read_alone(texts):
    """The dates read from the bytes of all values at once are those each value gives
    alone, for valid dates in both forms, near-misses and noise."""
    got = normalize.dates(pd.Series(texts, dtype="str"))
    assert [None if pd.isna(v) else v.date() for v in got] == [_date_as_read(t) for t in texts]
