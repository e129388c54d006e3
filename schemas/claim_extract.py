"""The input contract (docs/contract.md §2 and §3): columns, text dtypes and the record checks.

Every column arrives as trimmed text (``str``; empty means missing): codes and IDs are
never numbers. Each column is parsed once per batch (``pa_batch/core/typed.py``), with a flag
beside it where a present value did not parse; the checks here read those flags, so they
are cheap. Each check is named by the reject code it raises, so a pandera failure case maps
straight to a reject row. Two stages, because the contract (§3) checks some fields only on
baclofen powder lines:

* ``RECORD_SCHEMA`` runs on every record;
* ``POWDER_LINE_SCHEMA`` runs on baclofen powder lines that passed the record checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pandera.pandas as pa

# A parsed column's flag beside it (``core/typed.py``) is named ``<column>__<what>``
# (``ndc__invalid``): True where a value was present but did not parse. The checks below
# read the flags, and a failed check on a flag is reported against ``<column>``.
FLAG = "__"


def flag(column: str, what: str = "invalid") -> str:
    return f"{column}{FLAG}{what}"


def flagged_column(name: str) -> str:
    """The input column a flag column reports against."""
    return name.split(FLAG, 1)[0]


REQUIRED_COLUMNS: Final = ("claim_id", "line_number", "member_id", "service_date", "ndc")
POLICY_COLUMNS: Final = (
    "member_birth_date",
    "drug_name",
    "route",
    "strength",
    "strength_unit",
    "diagnosis_codes",
)
CONTEXT_COLUMNS: Final = (
    "quantity",
    "days_supply",
    "prescriber_npi",
    "pharmacy_npi",
    "prior_auth_number",
)
INPUT_COLUMNS: Final = REQUIRED_COLUMNS + POLICY_COLUMNS + CONTEXT_COLUMNS

# What each input column means and the forms it accepts (docs/contract.md is generated
# from this table).
COLUMN_MEANINGS: Final[dict[str, str]] = {
    "claim_id": "claim identifier; text, never a number",
    "line_number": "claim line: a whole number >= 1 (`3`, `3.0`, `03`)",
    "member_id": "member identifier; text",
    "service_date": "date of service: `YYYY-MM-DD` or `YYYYMMDD`, a real calendar date",
    "ndc": "National Drug Code: 11 digits, or hyphenated 5-4-2, 4-4-2, 5-3-2, 5-4-1",
    "member_birth_date": "same date forms as service_date",
    "drug_name": "product description; decides scope with the NDC",
    "route": "route of administration (synonyms below)",
    "strength": "a number > 0",
    "strength_unit": "a unit of the table below",
    "diagnosis_codes": "ICD-10-CM codes, with or without the dot, separated by `,` `;` `|` "
    "or spaces",
    "quantity": "carried to results for context",
    "days_supply": "carried to results for context",
    "prescriber_npi": "carried to results for context",
    "pharmacy_npi": "carried to results for context",
    "prior_auth_number": "carried to results for context",
}


@dataclass(frozen=True)
class RejectCode:
    """A record-level error: its code, which records it is checked on, and its message.

    Messages describe the rule, never the value (the value has its own column in the
    rejects file).
    """

    code: str
    checked_on: str
    message: str


EVERY_RECORD: Final = "every record"
POWDER_LINES: Final = "baclofen powder lines that passed the record checks"

REJECT_RULES: Final[tuple[RejectCode, ...]] = (
    RejectCode(
        "MALFORMED_RECORD",
        "every CSV record",
        "record has N fields, the header has M (the counts of the record and the header)",
    ),
    RejectCode(
        "MISSING_REQUIRED_VALUE",
        EVERY_RECORD,
        "required value is missing",
    ),
    RejectCode(
        "INVALID_LINE_NUMBER",
        EVERY_RECORD,
        "line_number must be a whole number >= 1",
    ),
    RejectCode(
        "INVALID_DATE",
        "every record (service_date); baclofen powder lines (member_birth_date)",
        "not a real calendar date in YYYY-MM-DD or YYYYMMDD form",
    ),
    RejectCode(
        "INVALID_NDC",
        EVERY_RECORD,
        "NDC must be 11 digits or hyphenated 5-4-2, 4-4-2, 5-3-2 or 5-4-1",
    ),
    RejectCode("INVALID_STRENGTH", POWDER_LINES, "strength must be a finite number > 0"),
    RejectCode("INVALID_STRENGTH_UNIT", POWDER_LINES, "strength_unit is not a recognized unit"),
    RejectCode(
        "INVALID_DIAGNOSIS_CODE", POWDER_LINES, "a diagnosis code is not of the ICD-10-CM form"
    ),
    RejectCode("BIRTH_AFTER_SERVICE", POWDER_LINES, "member_birth_date is after service_date"),
    RejectCode(
        "NO_POLICY_IN_FORCE",
        POWDER_LINES,
        "no version of the policy definition is in force on the service date",
    ),
    RejectCode(
        "DUPLICATE_KEY",
        "valid baclofen powder lines, across every batch and file of the run",
        "claim_id and line_number repeat an earlier baclofen powder line",
    ),
)
REJECT_CODES: Final[dict[str, str]] = {rule.code: rule.message for rule in REJECT_RULES}
MISSING_REQUIRED_VALUE: Final = "MISSING_REQUIRED_VALUE"


def _passes(code: str) -> pa.Column:
    """A parse-failed flag column (``typed.py``): the check ``code`` fails where it is True."""
    return pa.Column(bool, checks=[pa.Check(lambda failed: ~failed, name=code)])


def _text(*, required: bool = False) -> pa.Column:
    return pa.Column(str, nullable=not required)


# Checked on every record: required values present (text columns, not nullable), and the
# parse-failed flags of the columns every record is checked on.
RECORD_SCHEMA: Final = pa.DataFrameSchema(
    {
        **{column: _text(required=True) for column in REQUIRED_COLUMNS},
        **{column: _text() for column in POLICY_COLUMNS + CONTEXT_COLUMNS},
        flag("line_number"): _passes("INVALID_LINE_NUMBER"),
        flag("service_date"): _passes("INVALID_DATE"),
        flag("ndc"): _passes("INVALID_NDC"),
    },
    name="claim extract record",
    strict=False,
    coerce=False,
)

# Checked on baclofen powder lines that passed the record checks.
POWDER_LINE_SCHEMA: Final = pa.DataFrameSchema(
    {
        flag("service_date", "no_policy"): _passes("NO_POLICY_IN_FORCE"),
        flag("member_birth_date"): _passes("INVALID_DATE"),
        flag("member_birth_date", "after_service"): _passes("BIRTH_AFTER_SERVICE"),
        flag("strength"): _passes("INVALID_STRENGTH"),
        flag("strength_unit"): _passes("INVALID_STRENGTH_UNIT"),
        flag("diagnosis_codes"): _passes("INVALID_DIAGNOSIS_CODE"),
    },
    name="baclofen powder line",
    strict=False,
    coerce=False,
)
