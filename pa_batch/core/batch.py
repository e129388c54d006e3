"""Decide one batch of records: pure functions from text records to outcomes.

    records ──typed (each column parsed once)──RECORD_SCHEMA──► rejects
       │ passed
       ├── not baclofen powder ──► out of scope (counted)
       │ baclofen powder
       ├──typed powder columns──POWDER_LINE_SCHEMA──► rejects
       │ valid
       ▼
    facts ──rules──► decision, reasons, advisories, approval window
       │
       └── key seen before in the run (run state) ──► DUPLICATE_KEY reject instead

Two steps. ``decide_batch`` is pure: it needs nothing from other batches, so engines may run
it anywhere, in any order (the Dask engine runs it on workers). It is itself two pure steps,
``scope_batch`` (record checks and scope, on every record) and ``decide_scoped`` (the powder
lines of one or more consecutive scoped batches: the local engine groups a nightly mix's few
lines a batch). ``finish_batch`` applies the run state, the claim-key registry, and must see
the batches in input order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa

from pa_batch.core import normalize, screen, typed
from pa_batch.core.arrow_text import TextCells, joined, text_records
from pa_batch.core.counts import Counts
from pa_batch.core.decide import CODE_SEPARATOR, decide
from pa_batch.core.facts import line_facts
from pa_batch.core.model import ReferenceData
from pa_batch.core.validation import contract_failures
from pa_batch.schemas.claim_extract import POWDER_LINE_SCHEMA, RECORD_SCHEMA, REJECT_CODES
from pa_batch.schemas.outputs import REJECTS_SCHEMA, RESULTS_SCHEMA

YES, NO, UNKNOWN = "yes", "no", "unknown"  # rejects: was the record a baclofen powder line?
MISSING_ROUTE = "(missing)"
# the input columns the powder line checks parse, and those the results carry as given
POWDER_INPUTS = ("route", "strength", "strength_unit", "member_birth_date", "diagnosis_codes")
CARRIED = (
    "claim_id",
    "line_number",
    "member_id",
    "drug_name",
    "route",
    "strength",
    "strength_unit",
    "diagnosis_codes",
    "quantity",
    "days_supply",
    "prescriber_npi",
    "pharmacy_npi",
    "prior_auth_number",
)
KEY_SEPARATOR = "\x1f"  # cannot occur in a trimmed claim_id from a CSV or Parquet text cell


class Batch:
    """One batch of records of one input file, in file order: what a reader hands the core.

    A reader hands over the columns as Arrow arrays (``raw``); the pandas records are made
    from them only when first asked for, and only for the records that need them: most of
    a nightly mix never becomes a pandas object (``core/screen.py``).
    """

    def __init__(
        self,
        records: pd.DataFrame | None,
        source_rows: np.ndarray,
        raw: TextCells | dict[str, pa.Array] | None = None,
        malformed: pd.DataFrame | None = None,
        typed: dict[str, pa.Array] | None = None,
    ):
        # INPUT_COLUMNS as trimmed text, NA = missing, RangeIndex; None: made from ``raw``
        self._records = records
        self.source_rows = source_rows  # 1-based record number of each record, header excluded
        # each contract column present in the file, as given (untrimmed): the rejects file
        # shows a bad cell exactly as the claim carried it
        self.raw = raw if isinstance(raw, TextCells) else TextCells(raw or {})
        # CSV records with the wrong field count: source_row, fields, raw text
        self.malformed = malformed if malformed is not None else malformed_frame([])
        # a Parquet file's line_number, service_date and member_birth_date when they were
        # stored as integers and dates: checked as such (typed.record_columns,
        # typed.powder_columns), not parsed back from their text
        self.typed = typed if typed is not None else {}

    @property
    def records(self) -> pd.DataFrame:
        if self._records is None:
            self._records = text_records(self.raw, len(self.source_rows))
        return self._records

    @property
    def rows_read(self) -> int:
        return len(self.source_rows) + len(self.malformed)

    def take(self, positions: np.ndarray) -> Batch:
        """The records at ``positions`` (in order), and the batch's malformed records."""
        at = pa.array(positions, type=pa.int64())
        return Batch(
            self._records.take(positions).reset_index(drop=True)
            if self._records is not None
            else None,
            self.source_rows[positions],
            raw=self.raw.take(at),
            malformed=self.malformed,
            typed={name: cells.take(at) for name, cells in self.typed.items()},
        )

    @staticmethod
    def concat(batches: list[Batch]) -> Batch:
        """Consecutive batches of one file as one batch, records in order."""
        if len(batches) == 1:
            return batches[0]
        # a batch without records adds none (the last batch of a CSV may hold only
        # malformed records, and no columns)
        holding = [b for b in batches if len(b.source_rows)] or batches[:1]
        malformed = [b.malformed for b in batches if len(b.malformed)]
        return Batch(
            None
            if all(b._records is None for b in holding)
            else pd.concat([b.records for b in holding], ignore_index=True),
            np.concatenate([b.source_rows for b in holding]),
            raw=TextCells.concat([b.raw for b in holding]),
            malformed=pd.concat(malformed, ignore_index=True) if malformed else None,
            typed={name: joined([b.typed[name] for b in holding]) for name in holding[0].typed},
        )


def malformed_frame(rows: list[tuple[int, int, str]], expected: int = 0) -> pd.DataFrame:
    """Malformed records (source_row, fields, text) of a batch, against ``expected`` fields."""
    return pd.DataFrame(
        {
            "source_row": pd.Series([r for r, _, _ in rows], dtype="int64"),
            "fields": pd.Series([f for _, f, _ in rows], dtype="int64"),
            "expected_fields": pd.Series([expected] * len(rows), dtype="int64"),
            "text": pd.Series([t for _, _, t in rows], dtype="str"),
        }
    )


@dataclass
class DecidedBatch:
    """A batch decided without run state: every valid baclofen powder line has a result,
    including lines a later step may find to repeat an earlier key."""

    source_file: str
    rows_read: int
    results: pd.DataFrame  # RESULTS_SCHEMA columns, input order
    keys: pd.Series  # (claim_id, line_number) of each result row
    line_numbers_given: pa.Array  # each result row's line_number cell as given (untrimmed)
    rejects: pd.DataFrame  # REJECTS_SCHEMA columns, by source_row then check order
    out_of_scope: int
    counts: Counts  # of every result row (decisions, reasons, advisories, months, routes)


def line_counts(results: pd.DataFrame) -> Counts:
    """Counts over decided result rows."""
    return Counts(
        outcomes=Counter(results["decision"].value_counts().to_dict()),
        reasons=_code_counts(results["reasons"]),
        advisories=_code_counts(results["advisories"]),
        by_month=_by_month(results),
        routes=Counter(
            {
                MISSING_ROUTE if pd.isna(route) else str(route): int(n)
                for route, n in results["route"].value_counts(dropna=False).items()
                if n  # a categorical counts its unused categories too
            }
        ),
        unmapped_routes=Counter(
            results.loc[results["route"] == normalize.ROUTE_OTHER, "route_given"]
            .str.strip()
            .value_counts()
            .to_dict()
        ),
    )


def decide_batch(batch: Batch, source_file: str, reference: ReferenceData) -> DecidedBatch:
    """Validate, scope and decide every record of ``batch``; needs no run state."""
    return decide_scoped([scope_batch(batch, source_file, reference)], source_file, reference)


@dataclass
class ScopedBatch:
    """A batch whose records are checked and scoped: its record-level rejects, how many
    records are out of scope, and its in-scope lines, not yet decided."""

    rows_read: int
    rejects: pd.DataFrame  # REJECTS_SCHEMA: record checks and malformed records
    out_of_scope: int
    lines: Batch  # the records holding the in-scope lines (maybe more: see ``positions``)
    parsed: pd.DataFrame  # typed.record_columns of ``lines.records``
    in_scope_by: pd.Series  # of ``lines.records``
    positions: np.ndarray  # the in-scope lines: positions in ``lines``

    @property
    def line_count(self) -> int:
        return len(self.positions)

    def compact(self) -> ScopedBatch:
        """The same, holding only the in-scope lines (to be kept while later batches are
        scoped, and decided with them)."""
        if len(self.positions) == len(self.lines.records):
            return self
        at = self.positions
        taken = pa.array(at)
        lines = Batch(
            self.lines.records.take(at).reset_index(drop=True),
            self.lines.source_rows[at],
            raw=self.lines.raw.take(taken),
            typed={name: cells.take(taken) for name, cells in self.lines.typed.items()},
        )
        return ScopedBatch(
            self.rows_read,
            self.rejects,
            self.out_of_scope,
            lines,
            self.parsed.take(at).reset_index(drop=True),
            self.in_scope_by.take(at).reset_index(drop=True),
            np.arange(len(at)),
        )


@dataclass
class ScreenedBatch:
    """A batch once the screen has counted its records that are certainly valid and out of
    scope: the records left for the full path, and the batch's counts."""

    rest: Batch  # the records the screen left (and the batch's malformed records)
    rows_read: int
    screened_out: int  # records counted out of scope by the screen


def screen_batch(batch: Batch, reference: ReferenceData) -> ScreenedBatch:
    """Count the records of ``batch`` the screen finds certainly valid and out of scope
    (``core/screen.py``); keep the rest."""
    screened = screen.certainly_out_of_scope(batch.raw, batch.typed, reference)
    if screened is None or not screened.any():
        return ScreenedBatch(batch, batch.rows_read, 0)
    return ScreenedBatch(
        batch.take(np.flatnonzero(~screened)), batch.rows_read, int(screened.sum())
    )


def scope_screened(
    screened: list[ScreenedBatch], source_file: str, reference: ReferenceData
) -> ScopedBatch:
    """Check and scope what the screen left of consecutive batches of one file, together:
    the full path's fixed cost is paid once for a nightly mix's few records of many batches.
    Each record's outcome is its own, so they are the ones each batch alone would give."""
    scoped = _scope_every_record(Batch.concat([s.rest for s in screened]), source_file, reference)
    return replace(
        scoped,
        rows_read=sum(s.rows_read for s in screened),
        out_of_scope=scoped.out_of_scope + sum(s.screened_out for s in screened),
    )


def scope_batch(batch: Batch, source_file: str, reference: ReferenceData) -> ScopedBatch:
    """Check every record of ``batch`` and find its baclofen powder lines. The records the
    screen finds certainly valid and out of scope are only counted: the rest take the full
    path, which gives them exactly the outcomes it would give them in the whole batch."""
    return scope_screened([screen_batch(batch, reference)], source_file, reference)


def _scope_every_record(batch: Batch, source_file: str, reference: ReferenceData) -> ScopedBatch:
    """Check every record of ``batch`` and find its baclofen powder lines."""
    records = batch.records
    parsed = typed.record_columns(records, batch.typed)  # each record column parsed once, here
    record_failures = contract_failures(
        RECORD_SCHEMA, pd.concat([records, parsed.filter(like=typed.FLAG)], axis=1)
    )
    passed = ~records.index.isin(record_failures["position"])
    powder_line, in_scope_by = scope(records["drug_name"], parsed["ndc"], reference)
    in_scope = np.flatnonzero(passed & (powder_line == YES))
    return ScopedBatch(
        rows_read=batch.rows_read,
        rejects=_in_record_order(
            [
                _rejects(batch, source_file, powder_line, [record_failures]),
                _malformed_rejects(batch, source_file),
            ]
        ),
        out_of_scope=int(passed.sum()) - len(in_scope),
        lines=batch,
        parsed=parsed,
        in_scope_by=in_scope_by,
        positions=in_scope,
    )


def decide_scoped(
    scoped: list[ScopedBatch], source_file: str, reference: ReferenceData
) -> DecidedBatch:
    """Decide the in-scope lines of consecutive scoped batches of one file together: one
    decided batch, the same rows in the same order as deciding them one by one."""
    if len(scoped) == 1:
        only = scoped[0]
        batch, parsed, in_scope_by, in_scope = (
            only.lines,
            only.parsed,
            only.in_scope_by,
            only.positions,
        )
    else:
        # a batch without lines adds none (the last batch of a CSV may hold only
        # malformed records, and no columns)
        parts = [s.compact() for s in scoped if s.line_count] or [scoped[0].compact()]
        batch = Batch.concat([p.lines for p in parts])
        parsed = pd.concat([p.parsed for p in parts], ignore_index=True)
        in_scope_by = pd.concat([p.in_scope_by for p in parts], ignore_index=True)
        in_scope = np.arange(len(batch.records))
    records = batch.records
    # the powder columns are parsed on the in-scope lines; what the results carry as given
    # is gathered once, from the valid ones
    service_date = parsed["service_date"].take(in_scope)
    given_birth_date = batch.typed.get("member_birth_date")
    powder = typed.powder_columns(
        records[list(POWDER_INPUTS)].take(in_scope),
        service_date,
        reference.policy.version_index(service_date),
        given_birth_date.take(pa.array(in_scope)) if given_birth_date is not None else None,
    )
    line_failures = contract_failures(POWDER_LINE_SCHEMA, powder.values)
    valid = ~powder.values.index.isin(line_failures["position"])
    if not valid.all():
        powder = powder.subset(valid)
    lines = records[list(CARRIED)].take(in_scope[valid])  # index: position in the batch

    line_parsed = parsed.take(lines.index.to_numpy())
    facts = line_facts(
        powder.values.assign(service_date=line_parsed["service_date"]),
        powder.diagnosis_tokens,
        reference,
    )
    decisions = decide(facts)
    results = _results(
        lines,
        line_parsed,
        facts,
        decisions,
        batch.source_rows,
        source_file,
        reference,
        in_scope_by.take(lines.index.to_numpy()),
    )
    positions = pa.array(lines.index.to_numpy())
    given = batch.raw.get("line_number")
    powder_line = np.full(len(records), YES, dtype=object)
    line_rejects = _rejects(batch, source_file, powder_line, [line_failures])
    return DecidedBatch(
        source_file=source_file,
        rows_read=sum(s.rows_read for s in scoped),
        results=results,
        keys=(
            lines["claim_id"] + KEY_SEPARATOR + line_parsed["line_number"].astype("str")
        ).reset_index(drop=True),
        line_numbers_given=(
            given.take(positions)
            if given is not None
            else pa.array(lines["line_number"], type=pa.string(), from_pandas=True)
        ),
        rejects=_in_record_order([*(s.rejects for s in scoped), line_rejects]),
        out_of_scope=sum(s.out_of_scope for s in scoped),
        counts=line_counts(results),
    )


def _in_record_order(rejects: list[pd.DataFrame]) -> pd.DataFrame:
    """Reject frames of consecutive records as one, by source_row (each frame's own order
    kept within a record: a record's checks are all in one frame)."""
    present = [frame for frame in rejects if len(frame)]
    if len(present) <= 1:
        return present[0] if present else rejects[0]
    return (
        pd.concat(present, ignore_index=True)
        .sort_values("source_row", kind="stable")
        .reset_index(drop=True)
    )


def scope(
    drug_name: pd.Series, ndc: pd.Series, reference: ReferenceData
) -> tuple[np.ndarray, pd.Series]:
    """Scope of every record, and how it got there.

    The first array is ``yes`` (a listed product NDC, or a drug name naming baclofen and
    powder or bulk), ``no``, or ``unknown`` when the NDC is unreadable, the record is not
    named baclofen powder, and a product list exists that it might have been on. The second
    says by which way a powder line is in scope: ``ndc``, ``name`` or ``both``.
    ``ndc`` is the normalized NDC (NA where missing or invalid).
    """
    listed = ndc.isin(reference.product_ndcs).to_numpy()
    named = normalize.on_distinct(drug_name, normalize.names_baclofen_powder)
    named = named.fillna(False).astype(bool).to_numpy()
    ndc_decides_nothing = not reference.product_ndcs
    knowable = ndc.notna().to_numpy() | ndc_decides_nothing
    status = np.where(listed | named, YES, np.where(knowable, NO, UNKNOWN))
    by = np.where(listed & named, 2, np.where(listed, 1, 0))
    in_scope_by = pd.Categorical.from_codes(by, ["name", "ndc", "both"])
    return status, pd.Series(in_scope_by, index=drug_name.index)


def _results(
    lines: pd.DataFrame,
    parsed: pd.DataFrame,
    facts: pd.DataFrame,
    decisions: pd.DataFrame,
    source_rows: np.ndarray,
    source_file: str,
    reference: ReferenceData,
    in_scope_by: pd.Series,
) -> pd.DataFrame:
    policy = reference.policy
    version_names = [v.version for v in policy.versions]
    columns = {
        "claim_id": lines["claim_id"],
        "line_number": parsed["line_number"],
        "member_id": lines["member_id"],
        "service_date": facts["service_date"],
        "ndc": parsed["ndc"],
        "drug_name": lines["drug_name"],
        "route": facts["route"],
        "route_given": lines["route"],
        "in_scope_by": in_scope_by,
        "strength": lines["strength"],
        "strength_unit": lines["strength_unit"],
        "normalized_strength": facts["strength"],
        "normalized_unit": facts["strength_unit"].where(facts["strength_given"]),
        "diagnosis_codes": lines["diagnosis_codes"],
        "spasticity_code": facts["spasticity_code"],
        "spasticity_code_given": facts["spasticity_code_given"],
        "spasticity_value_set_entry": facts["spasticity_value_set_entry"],
        "member_birth_date": facts["birth_date"],
        "age_years": facts["age_years"],
        **{
            name: decisions[name]
            for name in ("decision", "reasons", "advisories", "approval_start", "approval_end")
        },
        "commercial_strength_row": facts["commercial_strength_row"],
        "shortage_row": facts["shortage_row"],
        "policy_id": _repeated(policy.policy_id, lines.index),
        "policy_version": pd.Series(
            pd.Categorical.from_codes(facts["policy_version"].to_numpy(), version_names),
            index=lines.index,
        ),
        "policy_sha256": _repeated(policy.sha256, lines.index),
        "source_file": _repeated(source_file, lines.index),
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


def _repeated(value: str, index: pd.Index) -> pd.Series:
    """One value on every line, held once (categorical): Parquet writes it as a dictionary,
    and no batch carries a copy per line."""
    return pd.Series(pd.Categorical.from_codes(np.zeros(len(index), np.int8), [value]), index=index)


def _rejects(
    batch: Batch,
    source_file: str,
    powder_line: np.ndarray,
    failures: list[pd.DataFrame],
) -> pd.DataFrame:
    """Reject rows of ``failures`` (position, column, error code), ordered by source_row."""
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
            else records[column].take(positions[mine]).to_numpy(dtype=object)
        )
        value[mine] = as_given
    return reject_rows(
        source_file=source_file,
        source_row=batch.source_rows[positions] if len(positions) else np.empty(0, np.int64),
        claim_id=records["claim_id"].take(positions).to_numpy(dtype=object),
        line_number=records["line_number"].take(positions).to_numpy(dtype=object),
        column=found["column"].to_numpy(dtype=object),
        error_code=found["error_code"].to_numpy(dtype=object),
        message=message.to_numpy(dtype=object),
        value=value,
        powder_line=powder_line[positions],
    )


def _malformed_rejects(batch: Batch, source_file: str) -> pd.DataFrame:
    """Reject rows of the batch's malformed records (CSV records of the wrong field count)."""
    malformed = batch.malformed
    return reject_rows(
        source_file=source_file,
        source_row=malformed["source_row"].to_numpy(dtype=np.int64),
        claim_id=None,
        line_number=None,
        column=None,
        error_code="MALFORMED_RECORD",
        message=(
            "record has "
            + malformed["fields"].astype("str")
            + " fields, the header has "
            + malformed["expected_fields"].astype("str")
        ).to_numpy(dtype=object),
        value=malformed["text"].to_numpy(dtype=object),
        powder_line=UNKNOWN,  # its fields cannot be trusted to say
    )


def reject_rows(*, source_row: np.ndarray, **columns) -> pd.DataFrame:
    """Rows of the rejects file, one per failed check, in ``source_row`` order (each
    record's own checks kept in the order given). The one builder of reject rows: record
    checks, powder-line checks, malformed records and duplicate keys all come through here.

    ``columns`` are the other REJECTS_SCHEMA columns, each an array or one value for all.
    """
    frame = pd.DataFrame({"source_row": np.asarray(source_row, dtype=np.int64), **columns})
    frame = frame.sort_values("source_row", kind="stable").reset_index(drop=True)
    return frame[REJECTS_SCHEMA.names]


def _by_month(results: pd.DataFrame) -> Counter[tuple[str, str]]:
    """Decided lines by (service month, decision), counted on integer codes: each distinct
    service day is turned into its month once."""
    days = results["service_date"].to_numpy().astype("datetime64[D]")
    day_codes, distinct_days = pd.factorize(days.astype(np.int64))
    month_of_day = distinct_days.astype("datetime64[D]").astype("datetime64[M]")
    months, month_codes = np.unique(month_of_day, return_inverse=True)
    decision = pd.Categorical(results["decision"])
    pairs = month_codes.reshape(-1)[day_codes] * len(decision.categories) + decision.codes
    counted = np.bincount(pairs, minlength=len(months) * len(decision.categories))
    return Counter(
        {
            (
                str(months[k // len(decision.categories)]),
                decision.categories[k % len(decision.categories)],
            ): int(n)
            for k, n in enumerate(counted.tolist())
            if n
        }
    )


def _code_counts(joined: pd.Series) -> Counter[str]:
    counts: Counter[str] = Counter()
    for combination, n in joined[joined != ""].value_counts().items():
        if not n:  # a categorical counts its unused categories too
            continue
        for code in str(combination).split(CODE_SEPARATOR):
            counts[code] += int(n)
    return counts
