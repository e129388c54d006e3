"""The output contract (docs/contract.md §6): explicit Arrow schemas, so an all-null batch or
an empty run writes the same column types as any other."""

from __future__ import annotations

from typing import Final

import pyarrow as pa

_text = pa.string()
_date = pa.date32()

RESULTS_SCHEMA: Final = pa.schema(
    [
        ("claim_id", _text),
        ("line_number", pa.int64()),
        ("member_id", _text),
        ("service_date", _date),
        ("ndc", _text),
        ("drug_name", _text),
        ("route", _text),
        ("route_given", _text),
        ("in_scope_by", _text),
        ("strength", _text),
        ("strength_unit", _text),
        ("normalized_strength", pa.float64()),
        ("normalized_unit", _text),
        ("diagnosis_codes", _text),
        ("spasticity_code", _text),
        ("spasticity_code_given", _text),
        ("spasticity_value_set_entry", _text),
        ("member_birth_date", _date),
        ("age_years", pa.int64()),
        ("decision", _text),
        ("reasons", _text),
        ("advisories", _text),
        ("approval_start", _date),
        ("approval_end", _date),
        ("commercial_strength_row", pa.int64()),
        ("shortage_row", pa.int64()),
        ("policy_id", _text),
        ("policy_version", _text),
        ("policy_sha256", _text),
        ("source_file", _text),
        ("source_row", pa.int64()),
        ("quantity", _text),
        ("days_supply", _text),
        ("prescriber_npi", _text),
        ("pharmacy_npi", _text),
        ("prior_auth_number", _text),
    ]
)

REJECTS_SCHEMA: Final = pa.schema(
    [
        ("source_file", _text),
        ("source_row", pa.int64()),
        ("claim_id", _text),
        ("line_number", _text),
        ("column", _text),
        ("error_code", _text),
        ("message", _text),
        ("value", _text),
        ("powder_line", _text),
    ]
)
