"""The input contract (SPEC §2 and §4): columns, text dtypes and the record checks.

Every column arrives as trimmed text (``str``; empty means missing): codes and IDs are
never numbers. Each check is named by the reject code it raises, so a pandera failure case
maps straight to a reject row. Two stages, because SPEC §4 checks some fields only on
baclofen powder lines:

* ``RECORD_SCHEMA`` runs on every record;
* ``POWDER_LINE_SCHEMA`` runs on baclofen powder lines that passed the record checks.
"""

from __future__ import annotations

from typing import Final

import pandas as pd
import pandera.pandas as pa

from pa_batch import normalize

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

# Reject codes, each with the message written to the rejects file. Messages describe the
# rule, never the value (the value has its own column in the rejects file).
REJECT_CODES: Final[dict[str, str]] = {
    "MALFORMED_RECORD": "record does not have as many fields as the header",
    "MISSING_REQUIRED_VALUE": "required value is missing",
    "INVALID_LINE_NUMBER": "line_number must be a whole number >= 1",
    "INVALID_DATE": "not a real calendar date in YYYY-MM-DD or YYYYMMDD form",
    "INVALID_NDC": "NDC must be 11 digits or hyphenated 5-4-2, 4-4-2, 5-3-2 or 5-4-1",
    "INVALID_STRENGTH": "strength must be a finite number > 0",
    "INVALID_STRENGTH_UNIT": "strength_unit is not a recognized unit",
    "INVALID_DIAGNOSIS_CODE": "a diagnosis code is not of the ICD-10-CM form",
    "BIRTH_AFTER_SERVICE": "member_birth_date is after service_date",
    "DUPLICATE_KEY": "claim_id and line_number repeat an earlier baclofen powder line",
}
# pandera's own check for a null in a non-nullable column
PANDERA_NOT_NULLABLE: Final = "not_nullable"
MISSING_REQUIRED_VALUE: Final = "MISSING_REQUIRED_VALUE"


def _valid_where_present(parse):
    """A check passing missing cells (their absence is a separate matter) and parsable ones."""

    def check(values: pd.Series) -> pd.Series:
        return values.isna() | parse(values).notna()

    return check


def _recognized_unit(values: pd.Series) -> pd.Series:
    return values.isna() | normalize.strength_unit(values)["kind"].notna()


def _diagnosis_codes_valid(values: pd.Series) -> pd.Series:
    tokens = normalize.diagnosis_tokens(values)
    bad_rows = tokens.loc[~normalize.valid_diagnosis_code(tokens["code"]), "row"].unique()
    valid = pd.Series(True, index=values.index)
    valid.iloc[bad_rows] = False
    return valid


def _born_by_service_date(frame: pd.DataFrame) -> pd.Series:
    birth = normalize.dates(frame["member_birth_date"])
    service = normalize.dates(frame["service_date"])
    return ~(birth > service).fillna(False).astype(bool)


def _check(code: str, function) -> pa.Check:
    return pa.Check(function, name=code)


def _text(*checks: pa.Check, required: bool = False) -> pa.Column:
    return pa.Column(str, nullable=not required, checks=list(checks))


RECORD_SCHEMA: Final = pa.DataFrameSchema(
    {
        "claim_id": _text(required=True),
        "line_number": _text(
            _check("INVALID_LINE_NUMBER", _valid_where_present(normalize.line_number)),
            required=True,
        ),
        "member_id": _text(required=True),
        "service_date": _text(
            _check("INVALID_DATE", _valid_where_present(normalize.dates)), required=True
        ),
        "ndc": _text(_check("INVALID_NDC", _valid_where_present(normalize.ndc)), required=True),
        **{column: _text() for column in POLICY_COLUMNS + CONTEXT_COLUMNS},
    },
    name="claim extract record",
    strict=False,
    coerce=False,
)

POWDER_LINE_SCHEMA: Final = pa.DataFrameSchema(
    {
        "strength": _text(_check("INVALID_STRENGTH", _valid_where_present(normalize.strength))),
        "strength_unit": _text(_check("INVALID_STRENGTH_UNIT", _recognized_unit)),
        "diagnosis_codes": _text(_check("INVALID_DIAGNOSIS_CODE", _diagnosis_codes_valid)),
        "member_birth_date": _text(_check("INVALID_DATE", _valid_where_present(normalize.dates))),
    },
    # cross-column: reported against member_birth_date (see CROSS_COLUMN_CHECKS)
    checks=[_check("BIRTH_AFTER_SERVICE", _born_by_service_date)],
    name="baclofen powder line",
    strict=False,
    coerce=False,
)

# the column a dataframe-level check's rejects are reported against
CROSS_COLUMN_CHECKS: Final = {"BIRTH_AFTER_SERVICE": "member_birth_date"}
