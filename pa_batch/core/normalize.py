"""Normalization (docs/contract.md §2): raw text cells in, typed values out, invalid values as NA.

Every function takes a pandas ``str`` Series (trimmed; missing already NA) and is
vectorized. Columns that repeat (routes, units, dates, NDCs, diagnosis lists) are evaluated
once per distinct value and gathered back with an integer take, so the cost follows the
number of distinct values, not the number of claim lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pa_batch.core.arrow_text import offsets_and_bytes, one_array

ROUTE_SYNONYMS: Final[dict[str, str]] = {
    **dict.fromkeys(["oral", "orally", "po", "p.o.", "per os", "by mouth", "26643006"], "oral"),
    **dict.fromkeys(
        [
            "intrathecal",
            "it",
            "ith",
            "intrathecal injection",
            "intrathecal infusion",
            "72607000",
        ],
        "intrathecal",
    ),
    **dict.fromkeys(
        ["topical", "top", "transdermal", "cutaneous", "6064005", "45890007"], "topical"
    ),
}
ROUTE_OTHER: Final = "other"

MASS: Final = "mass"  # mg per dosage unit
CONCENTRATION: Final = "concentration"  # mg per mL
PERCENT: Final = "percent"  # cannot be checked against a limit

# unit (lower-cased, whitespace removed) -> (kind, factor to mg or mg/mL)
STRENGTH_UNITS: Final[dict[str, tuple[str, float]]] = {
    **dict.fromkeys(
        ["mg", "mg/unit", "mg/cap", "mg/capsule", "mg/tab", "mg/tablet", "mg/dose"], (MASS, 1.0)
    ),
    # the micro sign (U+00B5) and the Greek small mu (U+03BC) are both accepted
    **dict.fromkeys(["mcg", "ug", "\u00b5g", "\u03bcg"], (MASS, 0.001)),
    "g": (MASS, 1000.0),
    "mg/ml": (CONCENTRATION, 1.0),
    **dict.fromkeys(["mcg/ml", "ug/ml", "\u00b5g/ml", "\u03bcg/ml"], (CONCENTRATION, 0.001)),
    "mg/5ml": (CONCENTRATION, 0.2),
    "mg/l": (CONCENTRATION, 0.001),
    "%": (PERCENT, float("nan")),
}
STRENGTH_DECIMALS: Final = 6

DIAGNOSIS_SEPARATORS: Final = r"[,;|\s]+"
DIAGNOSIS_CODE_PATTERN: Final = r"[A-Z][0-9][0-9A-Z]{1,5}"

NDC_SEGMENTS: Final = {(5, 4, 2), (4, 4, 2), (5, 3, 2), (5, 4, 1)}
_NDC_PADDED_WIDTHS: Final = (5, 4, 2)


def on_distinct(values: pd.Series, evaluate: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Evaluate ``evaluate`` once per distinct non-missing value, then gather to every row.

    Missing cells come back as the result's NA. ``evaluate`` receives the distinct values
    as a Series with a fresh RangeIndex and must return a Series of the same length.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    per_unique = evaluate(pd.Series(uniques, dtype=values.dtype)).reset_index(drop=True)
    # append one NA slot so the -1 sentinel of a missing cell gathers NA
    with_na = pd.concat([per_unique, pd.Series([None], dtype=per_unique.dtype)], ignore_index=True)
    gathered = with_na.take(np.where(codes < 0, len(per_unique), codes))
    gathered.index = values.index
    return gathered


def on_distinct_categories(
    values: pd.Series, evaluate: Callable[[pd.Series], pd.Series]
) -> pd.Series:
    """``on_distinct`` for an ``evaluate`` with few outcomes (a route, a unit kind): the
    result is a categorical, so comparing it is comparing small integers."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    outcome_codes, outcomes = pd.factorize(
        evaluate(pd.Series(uniques, dtype=values.dtype)).reset_index(drop=True)
    )
    line_codes = np.append(outcome_codes, -1)[codes]  # a missing cell (-1) gathers -1: NA
    return pd.Series(
        pd.Categorical.from_codes(line_codes, pd.Index(outcomes, dtype="str")), index=values.index
    )


def text(values: pd.Series) -> pd.Series:
    """Trimmed text; a value that is empty after trimming is missing (contract §2)."""
    trimmed = values.astype("str").str.strip()
    return trimmed.where(trimmed != "")


def line_number(values: pd.Series) -> pd.Series:
    """Whole number >= 1: ``3``, ``3.0`` and ``03`` are 3; ``1.5``, ``0``, ``-1``, ``x`` are NA."""

    def parse(distinct: pd.Series) -> pd.Series:
        whole = distinct.str.fullmatch(r"\+?[0-9]+(\.0*)?")
        digits = distinct.str.replace(r"^\+", "", regex=True).str.replace(r"\.0*$", "", regex=True)
        # more than 18 digits would overflow int64; no real line number is that long
        usable = whole & (digits.str.len() <= 18)
        # parsed as integers, never through a float: 9007199254740993 stays itself
        number = digits.where(usable).astype("Int64")
        return number.where(number >= 1)

    return on_distinct(values, parse).astype("Int64")


def dates(values: pd.Series) -> pd.Series:
    """``YYYY-MM-DD`` or ``YYYYMMDD`` (NCPDP CCYYMMDD) naming a real calendar date, else NaT."""

    def parse(distinct: pd.Series) -> pd.Series:
        # Arrow's RE2 kernels: birth dates are nearly all distinct, so no Python per value
        text = pa.array(distinct, type=pa.string(), from_pandas=True)
        parts = pc.extract_regex(text, r"^(?P<y>[0-9]{4})-?(?P<m>[0-9]{2})-?(?P<d>[0-9]{2})$")
        # the dash form needs both dashes, the compact form none
        dashes = pc.count_substring(text, "-")
        matched = pc.fill_null(
            pc.and_(pc.is_valid(parts), pc.is_in(dashes, value_set=pa.array([0, 2]))), False
        )
        shape_ok = pd.Series(matched.to_numpy(zero_copy_only=False))
        year, month, day = (
            pd.Series(
                pc.fill_null(pc.cast(pc.struct_field(parts, name), pa.int64()), 0).to_numpy(),
                dtype="int64",
            ).where(shape_ok, 0)
            for name in ("y", "m", "d")
        )
        plausible = shape_ok & (year >= 1) & month.between(1, 12) & (day >= 1)
        first_of_month = _first_of_month(year.where(plausible, 1970), month.where(plausible, 1))
        month_length = (_add_months(first_of_month, 1) - first_of_month).astype("timedelta64[D]")
        real = plausible & (day.to_numpy() <= month_length.astype(int))
        days = first_of_month + (day.where(real, 1).to_numpy() - 1).astype("timedelta64[D]")
        return pd.Series(days, dtype="datetime64[s]").where(real)

    return on_distinct(values, parse).astype("datetime64[s]")


def names_baclofen_powder(names: pd.Series) -> pd.Series:
    """A drug name naming baclofen and powder or bulk, in any case (contract §3: scope)."""
    lower = names.str.lower()
    return lower.str.contains("baclofen", regex=False) & (
        lower.str.contains("powder", regex=False) | lower.str.contains("bulk", regex=False)
    )


def ndc(values: pd.Series) -> pd.Series:
    """NDC as 11 digits: 11 digits as given, or hyphenated 5-4-2, 4-4-2, 5-3-2, 5-4-1 padded.

    An unhyphenated 10-digit NDC is ambiguous (which segment is short?) and so invalid.
    NDCs are nearly all distinct, so this reads every value at once from the Arrow text's
    bytes: a valid NDC is 11, 12 or 13 bytes, so the values of each length are one byte
    matrix whose digits and hyphens are checked, and whose 11 digits are picked, by column.
    """
    text = one_array(pa.array(values, type=pa.string(), from_pandas=True))
    offsets, data = offsets_and_bytes(text)
    present = text.is_valid().to_numpy(zero_copy_only=False)
    lengths = np.diff(offsets)
    digits = np.zeros((len(text), 11), dtype=np.uint8)
    valid = np.zeros(len(text), dtype=bool)
    for length, shapes in _NDC_SHAPES.items():
        rows = np.flatnonzero(present & (lengths == length))
        if not len(rows):
            continue
        cells = data[offsets[rows, None] + np.arange(length)]
        is_digit = (cells >= ord("0")) & (cells <= ord("9"))
        for hyphens, picked in shapes:
            fits = is_digit[:, [i for i in range(length) if i not in hyphens]].all(axis=1)
            if hyphens:
                fits &= (cells[:, list(hyphens)] == ord("-")).all(axis=1)
            fits &= ~valid[rows]  # the first shape that fits decides
            digits[rows[fits]] = np.where(
                np.asarray(picked) < 0, ord("0"), cells[fits][:, np.maximum(picked, 0)]
            )
            valid[rows[fits]] = True
    normalized = pa.StringArray.from_buffers(
        len(text),
        pa.py_buffer(np.concatenate([[0], np.cumsum(valid * 11)]).astype(np.int32)),
        pa.py_buffer(digits[valid].tobytes()),
        pa.array(valid).buffers()[1],
    )
    return pd.Series(normalized, index=values.index, dtype="str")


def _ndc_shape(segments: tuple[int, int, int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Where a hyphenated shape has its hyphens, and which byte gives each of the 11 digits
    (-1: a padding zero, each segment padded on the left to 5, 4 and 2 digits)."""
    picked: list[int] = []
    position = 0
    for width, padded in zip(segments, _NDC_PADDED_WIDTHS, strict=True):
        picked += [-1] * (padded - width) + list(range(position, position + width))
        position += width + 1
    hyphens = (segments[0], segments[0] + 1 + segments[1])
    return hyphens, tuple(picked)


# by the value's length in bytes: (hyphen positions, the byte of each digit), shape by shape
_NDC_SHAPES: Final[dict[int, list[tuple[tuple[int, ...], tuple[int, ...]]]]] = {
    11: [((), tuple(range(11)))],
    12: [_ndc_shape(shape) for shape in sorted(NDC_SEGMENTS) if sum(shape) == 10],
    13: [_ndc_shape(shape) for shape in sorted(NDC_SEGMENTS) if sum(shape) == 11],
}


def route(values: pd.Series) -> pd.Series:
    """``oral``, ``intrathecal``, ``topical``, ``other``; NA when the route is missing."""

    def parse(distinct: pd.Series) -> pd.Series:
        key = distinct.str.lower().str.replace(r"\s+", " ", regex=True)
        return key.map(ROUTE_SYNONYMS).fillna(ROUTE_OTHER).astype("str")

    return on_distinct_categories(values, parse)


def strength(values: pd.Series) -> pd.Series:
    """A finite number > 0, else NaN (and missing stays NaN: callers tell the two apart)."""

    def parse(distinct: pd.Series) -> pd.Series:
        decimal = distinct.str.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
        number = pd.to_numeric(distinct.where(decimal), errors="coerce").astype("float64")
        return number.where(np.isfinite(number) & (number > 0))

    return on_distinct(values, parse).astype("float64")


def unit_key(values: pd.Series) -> pd.Series:
    """The lookup key of a strength unit: lower-cased, all whitespace removed."""
    return values.str.lower().str.replace(r"\s+", "", regex=True)


def strength_unit(values: pd.Series) -> pd.DataFrame:
    """Columns ``kind`` (mass, concentration, percent; NA if invalid or missing), ``factor``."""
    codes, units = pd.factorize(values, use_na_sentinel=True)
    keys = unit_key(pd.Series(units, dtype=values.dtype))
    kind_codes, kinds = pd.factorize(keys.map(_UNIT_KIND))  # an unknown unit: -1, NA
    factor = np.append(keys.map(_UNIT_FACTOR).to_numpy(dtype=float), np.nan)[codes]
    kind = pd.Categorical.from_codes(np.append(kind_codes, -1)[codes], pd.Index(kinds, dtype="str"))
    return pd.DataFrame({"kind": kind, "factor": factor}, index=values.index)


_UNIT_KIND: Final = {unit: kind for unit, (kind, _) in STRENGTH_UNITS.items()}
_UNIT_FACTOR: Final = {unit: factor for unit, (_, factor) in STRENGTH_UNITS.items()}


def normalized_strength(amount: pd.Series, factor: pd.Series) -> pd.Series:
    """Strength in mg or mg/mL, rounded to 6 decimals before any comparison (contract §2)."""
    return (amount * factor).round(STRENGTH_DECIMALS)


def diagnosis_tokens(values: pd.Series) -> pd.DataFrame:
    """One row per diagnosis token, in line order: ``row`` (position in ``values``), the
    normalized ``code`` and the token as ``given`` on the claim (both categoricals: a batch
    holds few distinct tokens).

    Tokens are split on ``, ; |`` and whitespace; codes are upper-cased with dots removed.
    Each distinct diagnosis list is split once; its tokens are gathered to every line
    carrying it by position arithmetic, not a join.
    """
    list_of_line, lists = pd.factorize(values, use_na_sentinel=True)
    # split by Arrow's RE2 kernels: distinct lists can still be many thousands a batch
    split = pc.split_pattern_regex(
        pc.utf8_trim(pa.array(lists, type=pa.string()), ",;| \t\r\n"), DIAGNOSIS_SEPARATORS
    )
    given = pc.list_flatten(split)
    code = pc.replace_substring(pc.utf8_upper(given), ".", "")
    kept = pc.not_equal(code, "")
    # ascending: the tokens of each list, lists in order
    token_list = pc.list_parent_indices(split).filter(kept).to_numpy()
    given_codes, given_tokens = pd.factorize(pd.Series(given.filter(kept), dtype="str"))
    code_codes, codes = pd.factorize(pd.Series(code.filter(kept), dtype="str"))
    # each line's tokens are its list's tokens: [first, first + count) of the kept tokens;
    # a missing list (-1) is the empty list in the last slot
    slot = np.where(list_of_line >= 0, list_of_line, len(lists))
    per_list = np.bincount(token_list, minlength=len(lists) + 1).astype(np.int64)
    first_of_list = np.cumsum(per_list) - per_list
    line_count = per_list[slot]
    row = np.repeat(np.arange(len(values), dtype=np.int64), line_count)
    line_first = np.cumsum(line_count) - line_count  # each line's first token row
    token = np.repeat(first_of_list[slot] - line_first, line_count) + np.arange(len(row))
    return pd.DataFrame(
        {
            "row": row,
            "code": pd.Categorical.from_codes(code_codes[token], pd.Index(codes, dtype="str")),
            "given": pd.Categorical.from_codes(
                given_codes[token], pd.Index(given_tokens, dtype="str")
            ),
        }
    )


def valid_diagnosis_code(codes: pd.Series) -> pd.Series:
    return codes.str.fullmatch(DIAGNOSIS_CODE_PATTERN).fillna(False).astype(bool)


def _first_of_month(year: pd.Series, month: pd.Series) -> np.ndarray:
    months_since_epoch = (year.to_numpy() - 1970) * 12 + (month.to_numpy() - 1)
    return months_since_epoch.astype("datetime64[M]").astype("datetime64[D]")


def _add_months(first_of_month: np.ndarray, months: int) -> np.ndarray:
    return (first_of_month.astype("datetime64[M]") + months).astype("datetime64[D]")


def add_calendar_months_minus_one_day(start: pd.Series, months: int | np.ndarray) -> pd.Series:
    """``start`` plus ``months`` calendar months (day clipped to the month's end), less a day.

    This is the policy's approval window: 2024-05-01 -> 2025-04-30, 2024-02-29 -> 2025-02-27.
    A window that would end after 9999-12-31 ends on 9999-12-31.
    """
    present = start.notna().to_numpy()
    lengths = np.broadcast_to(np.asarray(months, dtype=np.int64), present.shape)[present]
    # evaluated once per distinct (start, months): start dates repeat, lengths are few
    start_days = start.to_numpy()[present].astype("datetime64[D]").astype(np.int64)
    span = int(lengths.max()) + 1 if len(lengths) else 1
    codes, pairs = pd.factorize(start_days * span + lengths)
    end = np.full(len(start), np.datetime64("NaT"), dtype="datetime64[D]")
    end[present] = _months_later_less_a_day((pairs // span).astype("datetime64[D]"), pairs % span)[
        codes
    ]
    return pd.Series(end, index=start.index, dtype="datetime64[s]")


def _months_later_less_a_day(days: np.ndarray, months: np.ndarray) -> np.ndarray:
    month_start = days.astype("datetime64[M]")
    day_offset = days - month_start.astype("datetime64[D]")
    target_month = month_start + months
    target_length = (target_month + 1).astype("datetime64[D]") - target_month.astype(
        "datetime64[D]"
    )
    clipped = np.minimum(day_offset, target_length - np.timedelta64(1, "D"))
    end = target_month.astype("datetime64[D]") + clipped - np.timedelta64(1, "D")
    # a window running past the last date the contract writes (YYYY-MM-DD) ends on it
    return np.minimum(end, LAST_DATE)


LAST_DATE = np.datetime64("9999-12-31", "D")


def age_in_years(birth: pd.Series, on: pd.Series) -> pd.Series:
    """Whole years on ``on``: difference of years, less one if (month, day) comes before birth's."""
    # as numbers yyyymmdd, the difference's whole ten-thousands are the whole years (the
    # (month, day) part, under 10000 either way, takes one off before the birthday)
    before = _yyyymmdd(on.reindex(birth.index)) - _yyyymmdd(birth)
    years = np.floor_divide(before, 10_000)
    missing = np.isnan(years)
    return pd.Series(
        pd.arrays.IntegerArray(np.where(missing, 0, years).astype(np.int64), missing), birth.index
    )


def _yyyymmdd(dates: pd.Series) -> np.ndarray:
    """Each date as the number yyyymmdd (float, NaN where missing)."""
    fields = dates.dt
    return (
        fields.year.to_numpy(dtype=float) * 10_000
        + fields.month.to_numpy(dtype=float) * 100
        + fields.day.to_numpy(dtype=float)
    )
