"""Decide one batch of records: pure functions from text records to outcomes.

    records ──typed (each column parsed once)──RECORD_SCHEMA──► rejects
       │ passed
       ├── not baclofen powder ──► out of scope (counted)
       │ baclofen powder
       ├──typed powder columns──POWDER_LINE_SCHEMA──► rejects
       │ valid
       ├── key seen before in the run (run state) ──► DUPLICATE_KEY reject
       ▼
    facts ──rules──► decision, reasons, advisories, approval window

The only cross-batch input is the claim-key registry, passed in by the caller.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from pa_batch import normalize, typed
from pa_batch.decide import CODE_SEPARATOR, decide
from pa_batch.errors import RunError
from pa_batch.facts import line_facts
from pa_batch.policy import (
    APPROVED,
    DENIED,
    INVESTIGATIONAL,
    OUT_OF_SCOPE,
    POLICY_ID,
    POLICY_VERSION,
    REJECTED,
)
from pa_batch.readers import Batch
from pa_batch.reference import ReferenceData
from pa_batch.schemas.claim_extract import POWDER_LINE_SCHEMA, RECORD_SCHEMA, REJECT_CODES
from pa_batch.schemas.outputs import REJECTS_SCHEMA, RESULTS_SCHEMA
from pa_batch.state import ClaimKeyRegistry
from pa_batch.validation import contract_failures

YES, NO, UNKNOWN = "yes", "no", "unknown"  # rejects: was the record a baclofen powder line?
KEY_SEPARATOR = "\x1f"  # cannot occur in a trimmed claim_id from a CSV or Parquet text cell


@dataclass
class BatchOutcome:
    results: pd.DataFrame  # RESULTS_SCHEMA columns, input order
    rejects: pd.DataFrame  # REJECTS_SCHEMA columns, by source_row then check order
    outcomes: Counter[str]
    reasons: Counter[str]
    advisories: Counter[str]
    errors: Counter[str]
    rejected_by_powder_line: Counter[str]  # rejected records: yes / no / unknown

    @property
    def rows_read(self) -> int:
        return sum(self.outcomes.values())


def process_batch(
    batch: Batch, source_file: str, reference: ReferenceData, claim_keys: ClaimKeyRegistry
) -> BatchOutcome:
    """Every record of ``batch`` to exactly one outcome."""
    records = batch.records
    parsed = typed.record_columns(records)  # each record column parsed once, here
    record_failures = contract_failures(
        RECORD_SCHEMA, pd.concat([records, parsed.filter(like=typed.FLAG)], axis=1)
    )
    passed = ~records.index.isin(record_failures["position"])

    powder_line = powder_line_status(records["drug_name"], parsed["ndc"], reference)
    in_scope = passed & (powder_line == YES)
    lines = records.loc[in_scope]  # index: position in the batch
    powder = typed.powder_columns(lines, parsed.loc[in_scope, "service_date"])
    line_failures = contract_failures(POWDER_LINE_SCHEMA, powder.values)
    valid = ~lines.index.isin(line_failures["position"])
    lines, powder = lines.loc[valid], powder.subset(valid)

    line_number = parsed.loc[lines.index, "line_number"]
    keys = lines["claim_id"] + KEY_SEPARATOR + line_number.astype("str")
    where = (
        source_file
        + " row "
        + pd.Series(batch.source_rows[lines.index], index=lines.index).astype("str")
    )
    first_seen = claim_keys.claim(keys, where)
    repeated = first_seen.notna().to_numpy()
    duplicates = pd.DataFrame(
        {
            "position": lines.index[repeated],
            "column": "line_number",
            "error_code": "DUPLICATE_KEY",
            "message": (
                REJECT_CODES["DUPLICATE_KEY"] + " (first at " + first_seen[repeated] + ")"
            ).to_numpy(),
        }
    )
    lines, powder = lines.loc[~repeated], powder.subset(~repeated)

    line_parsed = parsed.loc[lines.index]
    facts = line_facts(
        powder.values.assign(service_date=line_parsed["service_date"]),
        powder.diagnosis_tokens,
        reference,
    )
    decisions = decide(facts)
    results = _results(lines, line_parsed, facts, decisions, batch.source_rows, source_file)
    rejects = _rejects(
        batch, source_file, powder_line, [record_failures, line_failures, duplicates]
    )
    rejected = rejects.drop_duplicates("source_row")  # one row per rejected record
    rejected_records = int((rejected["error_code"] != "MALFORMED_RECORD").sum())
    outcomes = Counter(
        {outcome: 0 for outcome in (APPROVED, DENIED, INVESTIGATIONAL, OUT_OF_SCOPE, REJECTED)}
    )
    outcomes.update(decisions["decision"].value_counts().to_dict())
    outcomes[OUT_OF_SCOPE] = int((passed & ~in_scope).sum())
    outcomes[REJECTED] = rejected_records + len(batch.malformed)
    outcome = BatchOutcome(
        results=results,
        rejects=rejects,
        outcomes=outcomes,
        reasons=_code_counts(results["reasons"]),
        advisories=_code_counts(results["advisories"]),
        errors=Counter(rejects["error_code"].value_counts().to_dict()),
        rejected_by_powder_line=Counter(rejected["powder_line"].value_counts().to_dict()),
    )
    if outcome.rows_read != batch.rows_read:
        raise RunError(
            f"reconciliation failed: {outcome.rows_read} outcomes for {batch.rows_read} records",
            file=source_file,
        )
    return outcome


def powder_line_status(
    drug_name: pd.Series, ndc: pd.Series, reference: ReferenceData
) -> np.ndarray:
    """Scope of every record: ``yes`` (a listed product NDC, or a drug name naming baclofen
    and powder or bulk), ``no``, or ``unknown`` when the NDC is unreadable, is not named
    baclofen powder, and a product list exists that it might have been on.

    ``ndc`` is the normalized NDC (NA where missing or invalid)."""
    listed = ndc.isin(reference.product_ndcs).to_numpy()
    named = normalize.on_distinct(drug_name, _names_baclofen_powder)
    powder = listed | named.fillna(False).astype(bool).to_numpy()
    ndc_decides_nothing = not reference.product_ndcs
    knowable = ndc.notna().to_numpy() | ndc_decides_nothing
    return np.where(powder, YES, np.where(knowable, NO, UNKNOWN))


def _names_baclofen_powder(names: pd.Series) -> pd.Series:
    lower = names.str.lower()
    return lower.str.contains("baclofen", regex=False) & (
        lower.str.contains("powder", regex=False) | lower.str.contains("bulk", regex=False)
    )


def _results(
    lines: pd.DataFrame,
    parsed: pd.DataFrame,
    facts: pd.DataFrame,
    decisions: pd.DataFrame,
    source_rows: np.ndarray,
    source_file: str,
) -> pd.DataFrame:
    n = len(lines)
    columns = {
        "claim_id": lines["claim_id"],
        "line_number": parsed["line_number"],
        "member_id": lines["member_id"],
        "service_date": facts["service_date"],
        "ndc": parsed["ndc"],
        "drug_name": lines["drug_name"],
        "route": facts["route"],
        "route_given": lines["route"],
        "strength": lines["strength"],
        "strength_unit": lines["strength_unit"],
        "normalized_strength": facts["strength"],
        "normalized_unit": facts["strength_unit"].where(facts["strength_given"]),
        "diagnosis_codes": lines["diagnosis_codes"],
        "spasticity_code": facts["spasticity_code"],
        "member_birth_date": facts["birth_date"],
        "age_years": facts["age_years"],
        **{
            name: decisions[name]
            for name in ("decision", "reasons", "advisories", "approval_start", "approval_end")
        },
        "commercial_strength_row": facts["commercial_strength_row"],
        "shortage_row": facts["shortage_row"],
        "policy_id": pd.Series([POLICY_ID] * n, index=lines.index, dtype="str"),
        "policy_version": pd.Series([POLICY_VERSION] * n, index=lines.index, dtype="str"),
        "source_file": pd.Series([source_file] * n, index=lines.index, dtype="str"),
        "source_row": pd.Series(
            source_rows[lines.index.to_numpy()], index=lines.index, dtype="int64"
        ),
        **{
            name: lines[name]
            for name in (
                "quantity",
                "days_supply",
                "prescriber_npi",
                "pharmacy_npi",
                "prior_auth_number",
            )
        },
    }
    frame = pd.DataFrame(columns, index=lines.index)
    return frame[RESULTS_SCHEMA.names].reset_index(drop=True)


def _rejects(
    batch: Batch, source_file: str, powder_line: np.ndarray, failures: list[pd.DataFrame]
) -> pd.DataFrame:
    found = pd.concat([f for f in failures if len(f)] or [failures[0]], ignore_index=True)
    positions = found["position"].to_numpy(dtype=np.int64)
    message = found["error_code"].map(REJECT_CODES)
    if "message" in found:
        message = found["message"].fillna(message)
    records = batch.records
    value = np.full(len(found), None, dtype=object)
    for column in found["column"].dropna().unique():
        # the cell as the claim carried it, surrounding spaces included
        mine = (found["column"] == column).to_numpy()
        cells = batch.raw.get(column)
        as_given = (
            cells.take(pa.array(positions[mine])).to_numpy(zero_copy_only=False)
            if cells is not None
            else records[column].to_numpy(dtype=object)[positions[mine]]
        )
        value[mine] = as_given
    checked = pd.DataFrame(
        {
            "source_file": source_file,
            "source_row": batch.source_rows[positions] if len(positions) else np.empty(0, np.int64),
            "claim_id": records["claim_id"].to_numpy(dtype=object)[positions],
            "line_number": records["line_number"].to_numpy(dtype=object)[positions],
            "column": found["column"].to_numpy(dtype=object),
            "error_code": found["error_code"].to_numpy(dtype=object),
            "message": message.to_numpy(dtype=object),
            "value": value,
            "powder_line": powder_line[positions],
        }
    )
    malformed = batch.malformed
    broken = pd.DataFrame(
        {
            "source_file": source_file,
            "source_row": malformed["source_row"].to_numpy(),
            "claim_id": None,
            "line_number": None,
            "column": None,
            "error_code": "MALFORMED_RECORD",
            "message": "record has "
            + malformed["fields"].astype("str")
            + " fields, the header has "
            + malformed["expected_fields"].astype("str"),
            "value": malformed["text"].to_numpy(dtype=object),
            "powder_line": UNKNOWN,  # its fields cannot be trusted to say
        }
    )
    both = pd.concat([f for f in (checked, broken) if len(f)] or [checked], ignore_index=True)
    both = both.astype({"source_row": "int64"})
    both = both.sort_values("source_row", kind="stable").reset_index(drop=True)
    return both[REJECTS_SCHEMA.names]


def _code_counts(joined: pd.Series) -> Counter[str]:
    counts: Counter[str] = Counter()
    for combination, n in joined[joined != ""].value_counts().items():
        for code in str(combination).split(CODE_SEPARATOR):
            counts[code] += int(n)
    return counts
