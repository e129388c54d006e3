"""Each column of a batch parsed once: typed values, and a flag beside each parsed column that
is True where a value was present but did not parse.

Data flows down once: the contract (``schemas/claim_extract.py``) checks the flags, and scope,
facts and results read the typed values. Nothing downstream parses a column again.

Flag columns are named ``<column>__<what>`` (``ndc__invalid``); a failed check on a flag is
reported against ``<column>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from pa_batch.core import normalize

# the contract names the flag columns; re-exported here, where the flags are made
from pa_batch.schemas.claim_extract import FLAG as FLAG
from pa_batch.schemas.claim_extract import flag as flag
from pa_batch.schemas.claim_extract import flagged_column as flagged_column


def record_columns(
    records: pd.DataFrame, given_typed: dict[str, pa.Array] | None = None
) -> pd.DataFrame:
    """The columns checked on every record, parsed: ``line_number`` (Int64), ``service_date``
    (datetime64[s]), ``ndc`` (11 digits), NA where missing or invalid, and their flags.

    ``given_typed``: a Parquet file's columns that were already integers or dates
    (``Batch.typed``), checked as such instead of parsed back from their text; the outcome is
    the text's, value for value (``tests/test_typed_columns.py``)."""
    given_typed = given_typed or {}
    line_number = (
        whole_numbers(given_typed["line_number"])
        if "line_number" in given_typed
        else normalize.line_number(records["line_number"])
    )
    service_date = (
        calendar_dates(given_typed["service_date"])
        if "service_date" in given_typed
        else normalize.dates(records["service_date"])
    )
    ndc = normalize.ndc(records["ndc"])
    return pd.DataFrame(
        {
            "line_number": line_number,
            "service_date": service_date,
            "ndc": ndc,
            flag("line_number"): _failed(records["line_number"], line_number),
            flag("service_date"): _failed(records["service_date"], service_date),
            flag("ndc"): _failed(records["ndc"], ndc),
        },
        index=records.index,
    )


# what the text of a typed value parses to (normalize.line_number, normalize.dates): a whole
# number of at most 18 digits, >= 1; a date whose year has four digits
LINE_NUMBER_BOUND = 10**18
FIRST_DAY, LAST_DAY = np.datetime64("0001-01-01", "D"), np.datetime64("9999-12-31", "D")


def whole_numbers(given: pa.Array) -> pd.Series:
    """An integer column's line numbers: itself where 1 <= n < 10**18, else NA."""
    values = given.fill_null(0).to_numpy(zero_copy_only=False)
    valid = given.is_valid().to_numpy(zero_copy_only=False)
    valid &= (values >= 1) & (values < LINE_NUMBER_BOUND)
    return pd.Series(pd.arrays.IntegerArray(np.where(valid, values, 0).astype(np.int64), ~valid))


def calendar_dates(given: pa.Array) -> pd.Series:
    """A date or timestamp column's dates (a timestamp's calendar date, as its text gives),
    NaT outside the four-digit years."""
    days = given.cast(pa.date32())
    day_numbers = days.fill_null(0).to_numpy(zero_copy_only=False).astype("datetime64[D]")
    valid = days.is_valid().to_numpy(zero_copy_only=False)
    valid &= (day_numbers >= FIRST_DAY) & (day_numbers <= LAST_DAY)
    as_seconds = np.where(valid, day_numbers, FIRST_DAY).astype("datetime64[s]")
    return pd.Series(as_seconds).where(valid)


@dataclass
class PowderColumns:
    """The columns checked and used on baclofen powder lines, parsed."""

    values: pd.DataFrame  # typed values and flags, indexed like the lines
    diagnosis_tokens: pd.DataFrame  # one row per token: row (position in lines), code

    def subset(self, keep: np.ndarray) -> PowderColumns:
        """The lines where ``keep`` is True, token rows renumbered to match."""
        new_row = np.cumsum(keep) - 1
        tokens = self.diagnosis_tokens
        kept_tokens = tokens[keep[tokens["row"].to_numpy()]]
        kept_tokens = kept_tokens.assign(row=new_row[kept_tokens["row"].to_numpy()])
        return PowderColumns(self.values[keep], kept_tokens.reset_index(drop=True))


def powder_columns(
    lines: pd.DataFrame,
    service_date: pd.Series,
    policy_version: np.ndarray,
    given_birth_date: pa.Array | None = None,
) -> PowderColumns:
    """Parse strength, unit, birth date, route and diagnosis codes of baclofen powder lines.

    ``policy_version`` is the index of the policy version in force on each line's service
    date, -1 where none is. ``given_birth_date``: a Parquet file's birth dates of these
    lines when stored as dates, checked as such (as ``record_columns`` checks a service
    date), not parsed back from their text."""
    amount = normalize.strength(lines["strength"])
    unit = normalize.strength_unit(lines["strength_unit"])
    birth_date = (
        calendar_dates(given_birth_date).set_axis(lines.index)
        if given_birth_date is not None
        else normalize.dates(lines["member_birth_date"])
    )
    tokens = normalize.diagnosis_tokens(lines["diagnosis_codes"])
    code = tokens["code"].cat  # each distinct code checked once
    valid_code = normalize.valid_diagnosis_code(pd.Series(code.categories, dtype="str"))
    bad_token_rows = tokens["row"].to_numpy()[~valid_code.to_numpy()[code.codes]]
    bad_diagnosis = np.zeros(len(lines), dtype=bool)
    bad_diagnosis[bad_token_rows] = True
    values = pd.DataFrame(
        {
            "route": normalize.route(lines["route"]),
            "amount": amount,
            "unit_kind": unit["kind"],
            "unit_factor": unit["factor"],
            "birth_date": birth_date,
            "policy_version": policy_version,
            flag("service_date", "no_policy"): policy_version < 0,
            flag("member_birth_date"): _failed(lines["member_birth_date"], birth_date),
            flag("member_birth_date", "after_service"): (birth_date > service_date)
            .fillna(False)
            .astype(bool),
            flag("strength"): _failed(lines["strength"], amount),
            flag("strength_unit"): _failed(lines["strength_unit"], unit["kind"]),
            flag("diagnosis_codes"): bad_diagnosis,
        },
        index=lines.index,
    )
    return PowderColumns(values, tokens)


def _failed(given: pd.Series, parsed: pd.Series) -> pd.Series:
    return (given.notna() & parsed.isna()).astype(bool)
