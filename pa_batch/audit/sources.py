"""A run's inputs, looked at again for an auditor: one claim's records exactly as the files
gave them, and why a record the run read was not decided.

A file is searched only where it is still at the path the run read and its SHA-256 is the
one the run's manifest recorded (hashed while it is read, in the same pass): otherwise what
it holds now is not what was decided, and the search says so instead of answering.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from pa_batch.core import normalize
from pa_batch.core.normalize import names_baclofen_powder
from pa_batch.errors import RunError
from pa_batch.io.inputs import claim_records, input_file, open_extract
from pa_batch.io.storage import Location, locate
from pa_batch.policy.reference import read_reference_rows

UNCHANGED = "unchanged since the run (SHA-256 as in the run's manifest)"
NOT_FOUND = "not found at the path the run read"
CHANGED = "changed since the run (SHA-256 not as in the run's manifest)"
UNREADABLE = "not readable now"


@dataclass
class FoundRecord:
    file: str  # the input as the run named it
    row: int  # its record number, as the results and rejects count it
    cells: dict[str, str | None]  # the contract columns as given; None: empty or absent


@dataclass
class Search:
    """What a search of the run's inputs found, and the state of each file searched."""

    records: list[FoundRecord] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # input -> one of the states above

    @property
    def complete(self) -> bool:
        """Every input was searched as the run read it."""
        return all(state == UNCHANGED for state in self.files.values())

    def record(self, file: str, row: int) -> FoundRecord | None:
        return next((r for r in self.records if r.file == file and r.row == row), None)


def search_inputs(summary: dict, claim_id: str) -> Search:
    """The records of ``claim_id`` in the run's inputs (paths as the run was given them)."""
    search = Search()
    encoding = str((summary.get("options") or {}).get("encoding") or "utf-8")
    for entry in summary.get("inputs") or []:
        label = str(entry.get("path", ""))
        try:
            extract = open_extract(input_file(locate(label)), encoding=encoding)
            records, sha256 = claim_records(extract, claim_id)
        except RunError as error:
            search.files[label] = NOT_FOUND if error.message == "file not found" else UNREADABLE
            continue
        if sha256 != entry.get("sha256"):
            search.files[label] = CHANGED
            continue
        search.files[label] = UNCHANGED
        search.records.extend(FoundRecord(label, row, cells) for row, cells in records)
    return search


def out_of_scope_because(record: FoundRecord, run_dir: Location) -> str:
    """Why the run did not decide a record it read: the two ways into scope, each not met."""
    ndc_given = (record.cells.get("ndc") or "").strip()
    name_given = (record.cells.get("drug_name") or "").strip()
    ndc = normalize.ndc(pd.Series([ndc_given or None], dtype="str")).iloc[0]
    if not ndc_given:
        by_ndc = "no NDC"
    elif pd.isna(ndc):
        by_ndc = f"NDC {ndc_given} is not of a valid NDC form"
    elif ndc in _listed_products(run_dir):
        by_ndc = f"NDC {ndc_given} is a listed product"  # not reached for an out-of-scope line
    else:
        by_ndc = f"NDC {ndc_given} is not a listed product (the run's products.csv)"
    named = bool(names_baclofen_powder(pd.Series([name_given], dtype="str")).iloc[0])
    by_name = (
        "no drug name"
        if not name_given
        else f"drug name '{name_given}' "
        + ("names baclofen powder" if named else "does not name baclofen powder or bulk")
    )
    return f"out of scope: {by_ndc}, and {by_name}"


def _listed_products(run_dir: Location) -> frozenset[str]:
    try:
        payload = (run_dir / "reference.products.csv").read_bytes()
    except OSError:
        return frozenset()
    ndcs = normalize.ndc(read_reference_rows(payload, "products.csv")["ndc"])
    return frozenset(ndcs.dropna().tolist())
