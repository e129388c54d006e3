"""`pa-batch explain RUN CLAIM_ID`: why each line of a claim got its outcome, criterion by
criterion, for an auditor who must justify it.

Reads what the run wrote and kept: its results and rejects, the policy definition and the
reference files it was decided under (copies in the run's own directory), never today's
files, and never re-decides. The claim's records are looked up again in the run's inputs
(``sources.py``), where each is unchanged since the run, to show cells exactly as given and
to say why a record the run read was not decided.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from pa_batch.audit.history import read_claim_rows, read_summary, reading_run
from pa_batch.audit.sources import FoundRecord, Search, out_of_scope_because, search_inputs
from pa_batch.core.model import PolicyDefinition
from pa_batch.core.rules import (
    ADVISORIES,
    CRITERIA,
    DIAGNOSES,
    ROUTE,
    STRENGTH,
    STRENGTH_GIVEN,
    number_text,
)
from pa_batch.errors import RunError
from pa_batch.io.storage import Location
from pa_batch.policy.definition import load_policy
from pa_batch.policy.reference import POLICY_ORIGIN, read_reference_rows

# a line's input columns, re-read from its source file; where that cannot be, the results'
# own (trimmed; line_number, dates and the NDC as the run normalized them)
INPUT_AS_GIVEN = (
    "claim_id", "line_number", "member_id", "service_date", "ndc", "drug_name", "route_given",
    "strength", "strength_unit", "diagnosis_codes", "member_birth_date",
)  # fmt: skip


def explain(run_dir: Location, claim_id: str, line: int | None = None) -> dict:
    """Every line of ``claim_id`` in the run (or only line ``line``), explained."""
    with reading_run(run_dir):
        summary = read_summary(run_dir)
        # the inputs are searched while the run's own files are read (Arrow decodes and
        # hashes without the GIL: the two overlap on two cores)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pa-batch-search") as pool:
            searching = pool.submit(search_inputs, summary, claim_id)
            results = read_claim_rows(run_dir, "results", claim_id)
            rejects = read_claim_rows(run_dir, "rejects", claim_id)
            search = searching.result()
        try:
            return _explain(run_dir, summary, results, rejects, search, claim_id, line)
        except (KeyError, TypeError, ValueError, IndexError, StopIteration):
            # a run directory edited by hand (a column dropped, a row of the wrong type)
            raise RunError(
                "damaged: the run's files do not agree with what pa-batch writes",
                file=str(run_dir),
            ) from None


def _explain(
    run_dir: Location,
    summary: dict,
    results: pd.DataFrame,
    rejects: pd.DataFrame,
    search: Search,
    claim_id: str,
    line: int | None,
) -> dict:
    decided = results[results["claim_id"].astype("str") == claim_id]
    rejected = pd.concat(
        [rejects[rejects["claim_id"].astype("str") == claim_id], _malformed(rejects, claim_id)]
    )
    if line is not None:
        decided = decided[decided["line_number"].astype("int64") == line]
        rejected = rejected[_whole_number(rejected["line_number"]) == line]
    lines = []
    if not decided.empty:
        policy = load_policy(run_dir / "policy.toml")
        references = _ReferenceRows(run_dir, policy, summary)
        lines = [
            _decided_line(row, policy, references, search) for row in decided.to_dict("records")
        ]
    # a record is a (file, record number): two files may each have a record 1
    for (_, source_row), errors in rejected.groupby(
        ["source_file", "source_row"], sort=True, dropna=False
    ):
        lines.append(_rejected_line(int(source_row), errors))
    if not lines:
        lines = _not_decided(run_dir, search, claim_id, line)
    lines.sort(key=lambda entry: (entry["source"]["file"], entry["source"]["row"]))
    return {
        "run": {"id": str(summary["run"].get("id", run_dir.name)), "directory": str(run_dir)},
        "claim_id": claim_id,
        "inputs_searched": search.files,
        "lines": lines,
    }


def _malformed(rejects: pd.DataFrame, claim_id: str) -> pd.DataFrame:
    """Malformed records (no fields to trust) whose text carries the claim id as a field."""
    malformed = rejects[rejects["error_code"] == "MALFORMED_RECORD"]
    malformed = malformed[malformed["value"].astype("str").str.contains(claim_id, regex=False)]
    fields = (
        malformed["value"]
        .astype("str")
        .map(lambda text: {field.strip().strip('"').strip() for field in text.split(",")})
    )
    return malformed[fields.map(lambda found: claim_id in found).astype(bool)]


def _not_decided(run_dir: Location, search: Search, claim_id: str, line: int | None) -> list[dict]:
    """A claim the run neither decided nor rejected: its records in the inputs (out of
    scope), or an error saying it is not in them, and how far that could be checked."""
    found = [
        record
        for record in search.records
        if line is None or _whole_number(pd.Series([record.cells["line_number"]])).iloc[0] == line
    ]
    if found:
        return [_out_of_scope_line(record, run_dir) for record in found]
    where = "that claim and line" if line is not None else "that claim"
    if search.complete:
        searched = f"{len(search.files)} input(s) searched, unchanged since the run"
    else:
        searched = "; ".join(f"{path}: {state}" for path, state in search.files.items())
    raise RunError(
        f"no line of {where} in the run, and no record of it in the run's inputs ({searched})",
        file=str(run_dir),
    )


def _out_of_scope_line(record: FoundRecord, run_dir: Location) -> dict:
    return {
        "outcome": "out_of_scope",
        "source": {"file": record.file, "row": record.row},
        "input": record.cells,
        "input_source": f"as given, re-read from {record.file} record {record.row}",
        "out_of_scope_because": out_of_scope_because(record, run_dir),
    }


def _whole_number(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce")


class _ReferenceRows:
    """The data rows of the reference data the run was decided under, for quoting a matched
    row: the run's own copy of a reference file (checked against the SHA-256 its summary
    recorded, and read the way the loader reads it), or the policy definition's own list
    when the run took the list from there. Never another table."""

    def __init__(self, run_dir: Location, policy: PolicyDefinition, summary: dict):
        self.run_dir = run_dir
        self.policy = policy
        recorded = summary.get("reference")
        self.sources = {
            entry["name"]: entry
            for entry in (recorded if isinstance(recorded, list) else [])
            if isinstance(entry, dict) and "name" in entry
        }
        self._frames: dict[str, pd.DataFrame | str] = {}

    def row(self, name: str, number: int, version: int) -> dict:
        source = self.sources.get(name, {})
        if source.get("origin") == POLICY_ORIGIN:
            return self._policy_row(number, version)
        frame = self._frame(name, source)
        if isinstance(frame, str):  # why the row cannot be quoted
            return {"file": name, "row": number, "content": None, "unavailable": frame}
        if not 1 <= number <= len(frame):
            problem = f"the run's copy of {name} has no data row {number}"
            return {"file": name, "row": number, "content": None, "unavailable": problem}
        content = {k: v if isinstance(v, str) else "" for k, v in frame.iloc[number - 1].items()}
        return {"file": name, "row": number, "content": content}

    def _frame(self, name: str, source: dict) -> pd.DataFrame | str:
        if name not in self._frames:
            self._frames[name] = self._read(name, source)
        return self._frames[name]

    def _read(self, name: str, source: dict) -> pd.DataFrame | str:
        kept = self.run_dir / f"reference.{name}"
        try:
            payload = kept.read_bytes()
        except FileNotFoundError:
            return f"the run's copy of {name} is missing: its row cannot be quoted"
        if source.get("sha256") and hashlib.sha256(payload).hexdigest() != source["sha256"]:
            return (
                f"the run's copy of {name} was changed since the run (its SHA-256 differs "
                "from summary.json): its row cannot be quoted"
            )
        try:
            return read_reference_rows(payload, name)
        except RunError:
            return f"the run's copy of {name} is not readable: its row cannot be quoted"

    def _policy_row(self, number: int, version: int) -> dict:
        listed = self.policy.versions[version].commercial_strengths[number - 1]
        return {
            "file": f"policy.toml, version {self.policy.versions[version].version}",
            "row": number,
            "content": {
                "route": listed.route,
                "strength": float(listed.strength),
                "strength_unit": listed.strength_unit,
            },
        }


def _text(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat().split("T")[0]
    return str(value)


def _decided_line(
    row: dict, policy: PolicyDefinition, references: _ReferenceRows, search: Search
) -> dict:
    version_index = next(
        i for i, v in enumerate(policy.versions) if v.version == row["policy_version"]
    )
    version = policy.versions[version_index]
    reasons = [code for code in (_text(row["reasons"]) or "").split("|") if code]
    advisories = [code for code in (_text(row["advisories"]) or "").split("|") if code]
    strength = _text(row["normalized_strength"])
    unit = _text(row["normalized_unit"])
    observed_strength = f"{number_text(float(strength))} {unit}" if strength and unit else None
    commercial = shortage = None
    if _text(row["commercial_strength_row"]):
        commercial = references.row(
            "commercial_strengths.csv", int(row["commercial_strength_row"]), version_index
        )
    if _text(row["shortage_row"]):
        shortage = references.row("shortages.csv", int(row["shortage_row"]), version_index)
    # what each kind of criterion looks at (the registry's ``observes``), as shown
    observed = {
        DIAGNOSES: _text(row["diagnosis_codes"]),
        ROUTE: _route(row),
        STRENGTH_GIVEN: _strength_given(row),
        STRENGTH: observed_strength,
    }
    findings = {
        "INDICATION_NOT_COVERED": (
            f"{row['spasticity_code_given']} meets value-set entry "
            f"{row['spasticity_value_set_entry']}"
            if _text(row["spasticity_code_given"])
            else "no code in the value set"
        ),
        "COMMERCIALLY_AVAILABLE": _availability(commercial, shortage),
    }
    route = _text(row["route"])
    criteria = []
    for criterion in CRITERIA:
        applies = criterion.routes is None or route in criterion.routes
        failed = criterion.code in reasons
        status = "fail" if failed else "pass" if applies else "n/a"
        criteria.append(
            {
                "name": criterion.name,
                "status": status,
                "code": criterion.code,
                "forces": criterion.forces,
                # an n/a criterion states no finding
                "observed": _shown(observed[criterion.observes]) if status != "n/a" else None,
                "finding": findings.get(criterion.code) if status != "n/a" else None,
                "requirement": criterion.requirement_under(version),
                "limit": criterion.limit_under(version),
                "clause": criterion.clause_under(version),
            }
        )
    return {
        "outcome": row["decision"],
        "source": {"file": row["source_file"], "row": int(row["source_row"])},
        **_input(row, search),
        "normalized": {
            "route": _text(row["route"]),
            "strength": observed_strength,
            "strength_value": float(strength) if strength else None,
            "strength_unit": unit,
            "spasticity_code": _text(row["spasticity_code_given"]),
            "spasticity_value_set_entry": _text(row["spasticity_value_set_entry"]),
        },
        "in_scope_by": row["in_scope_by"],
        "in_scope_because": IN_SCOPE_BECAUSE[row["in_scope_by"]],
        "policy_version": version.version,
        "criteria": criteria,
        "commercial_strength": commercial,
        "shortage": shortage,
        "decision": row["decision"],
        "reasons": reasons,
        "advisories": [
            {"code": a.code, "clause": a.clause_under(version)}
            for a in ADVISORIES
            if a.code in advisories
        ],
        "approval": {
            "start": _text(row["approval_start"]),
            "end": _text(row["approval_end"]),
        },
    }


def _input(row: dict, search: Search) -> dict:
    """The line's cells exactly as its source file gave them, re-read; where the file is gone
    or changed, the results' own (some normalized), and labelled so."""
    source_file, source_row = str(row["source_file"]), int(row["source_row"])
    found = search.record(source_file, source_row)
    if found is not None:
        cells = {
            name: found.cells.get("route" if name == "route_given" else name)
            for name in INPUT_AS_GIVEN
        }
        return {
            "input": cells,
            "input_source": f"as given, re-read from {source_file} record {source_row}, "
            f"{search.files[source_file]}",
        }
    state = search.files.get(source_file, NOT_SEARCHED)
    return {
        "input": {name: _text(row[name]) for name in INPUT_AS_GIVEN},
        "input_source": "as the run kept it, with line_number, service_date and ndc "
        f"normalized, since {source_file} is {state}",
    }


NOT_SEARCHED = "not among the run's inputs"


IN_SCOPE_BECAUSE = {
    "ndc": "its NDC is a listed product (products.csv)",
    "name": "its drug name names baclofen and powder or bulk",
    "both": "its NDC is a listed product and its drug name names baclofen powder",
}
MISSING = "missing"


def _shown(value: str | None) -> str:
    """A value as explain shows it: never None."""
    return MISSING if value is None else value


def _route(row: dict) -> str | None:
    given, route = _text(row["route_given"]), _text(row["route"])
    return None if given is None else f"{given} (normalized: {_shown(route)})"


def _strength_given(row: dict) -> str | None:
    parts = [_text(row["strength"]), _text(row["strength_unit"])]
    return " ".join(p for p in parts if p) or None


def _availability(commercial: dict | None, shortage: dict | None) -> str:
    if commercial is None:
        return "not in the commercial list on the service date: may be compounded"
    listed = f"listed as commercially available by {commercial['file']} row {commercial['row']}"
    if commercial.get("unavailable"):
        listed += f" ({commercial['unavailable']})"
    if shortage is None:
        return listed + ", and no shortage of it is active on the service date"
    window = shortage["content"]
    if window is None:
        return (
            f"{listed}, but in shortage on the service date by {shortage['file']} row "
            f"{shortage['row']} ({shortage['unavailable']})"
        )
    return (
        f"{listed}, but in shortage on the service date by {shortage['file']} row "
        f"{shortage['row']} ({window.get('start_date') or 'open'} to "
        f"{window.get('end_date') or 'ongoing'})"
    )


def _rejected_line(source_row: int, errors: pd.DataFrame) -> dict:
    first = errors.iloc[0]
    return {
        "outcome": "rejected",
        "source": {"file": first["source_file"], "row": source_row},
        "input": {"claim_id": _text(first["claim_id"]), "line_number": _text(first["line_number"])},
        "errors": [
            {
                "column": _text(error["column"]),
                "code": error["error_code"],
                "message": error["message"],
                "value": _text(error["value"]),
            }
            for error in errors.to_dict("records")
        ],
    }


_MARKS = {"pass": "[pass]", "n/a": "[n/a]"}


def _criterion_lines(criterion: dict) -> list[str]:
    """``[pass] name``, ``[FAIL → CODE] name`` or ``[n/a] name``; a criterion that applied
    shows what it observed, what it requires, and what it found; its clause below."""
    status = criterion["status"]
    mark = _MARKS.get(status) or f"[FAIL \u2192 {criterion['code']}]"
    if status == "n/a":
        head = f"    {mark} {criterion['name']}: not evaluated for this route"
    else:
        finding = f"; {criterion['finding']}" if criterion["finding"] else ""
        head = (
            f"    {mark} {criterion['name']}: observed {criterion['observed']}; requires "
            f"{criterion['requirement']}{finding}"
        )
    return [head, f'        "{criterion["clause"]}"']


def render_text(explained: dict) -> str:
    out = [f"Claim {explained['claim_id']} in run {explained['run']['id']}"]
    for line in explained["lines"]:
        source = line["source"]
        out.append("")
        number = line["input"].get("line_number")
        out.append(
            (f"Line {number}" if number is not None else f"Record {source['row']}")
            + f": {line['outcome'].upper()} ({source['file']}, record {source['row']})"
        )
        if line["outcome"] == "out_of_scope":
            given = ", ".join(f"{k}={v}" for k, v in line["input"].items() if v is not None)
            out.append(f"  input {line['input_source']}:")
            out.append(f"    {given}")
            out.append(f"  {line['out_of_scope_because']}")
            continue
        if line["outcome"] == "rejected":
            for error in line["errors"]:
                out.append(
                    f"  {error['code']}: {error['message']}"
                    + (f" — column {error['column']}" if error["column"] else "")
                    + (f", value {error['value']!r}" if error["value"] is not None else "")
                )
            continue
        given = ", ".join(f"{k}={v}" for k, v in line["input"].items() if v is not None)
        out.append(f"  input {line['input_source']}:")
        out.append(f"    {given}")
        normalized = line["normalized"]
        out.append(
            f"  normalized: route {_shown(normalized['route'])}, "
            f"strength {_shown(normalized['strength'])}"
            + (
                f", spasticity code {normalized['spasticity_code']} (value-set entry "
                f"{normalized['spasticity_value_set_entry']})"
                if normalized["spasticity_code"]
                else ""
            )
        )
        out.append(f"  in scope: {line['in_scope_because']}")
        out.append(f"  policy version {line['policy_version']}; criteria in policy order:")
        for criterion in line["criteria"]:
            out.extend(_criterion_lines(criterion))
        out.append(
            f"  decision: {line['decision']}"
            + (f" ({', '.join(line['reasons'])})" if line["reasons"] else "")
        )
        for advisory in line["advisories"]:
            out.append(f"  advisory {advisory['code']}: {advisory['clause']}")
        if line["approval"]["start"]:
            out.append(f"  approved from {line['approval']['start']} to {line['approval']['end']}")
    return "\n".join(out)
