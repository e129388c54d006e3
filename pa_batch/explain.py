"""`pa-batch explain RUN CLAIM_ID`: why each line of a claim got its outcome, criterion by
criterion, for an auditor who must justify it.

Reads only what the run wrote and kept: its results and rejects, the policy definition and
the reference files it was decided under (copies in the run's own directory), never today's
files, and never re-decides.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from pa_batch.errors import RunError
from pa_batch.history import read_run_table
from pa_batch.policy import PolicyDefinition, load_policy
from pa_batch.rules import ADVISORIES, CRITERIA

# the line's columns as the claim gave them (trimmed); line_number, dates and the NDC are
# shown as the run normalized them (the rejects file keeps cells exactly as given)
INPUT_AS_GIVEN = (
    "claim_id", "line_number", "member_id", "service_date", "ndc", "drug_name", "route_given",
    "strength", "strength_unit", "diagnosis_codes", "member_birth_date",
)  # fmt: skip


def explain(run_dir: Path, claim_id: str, line: int | None = None) -> dict:
    """Every line of ``claim_id`` in the run (or only line ``line``), explained."""
    results = read_run_table(run_dir, "results")
    rejects = read_run_table(run_dir, "rejects")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    decided = results[results["claim_id"].astype("str") == claim_id]
    rejected = rejects[rejects["claim_id"].astype("str") == claim_id]
    if line is not None:
        decided = decided[decided["line_number"].astype("int64") == line]
        rejected = rejected[_whole_number(rejected["line_number"]) == line]
    if decided.empty and rejected.empty:
        where = "that claim and line" if line is not None else "that claim"
        raise RunError(f"no line of {where} in the run", file=str(run_dir))
    policy = load_policy(run_dir / "policy.toml")
    references = _ReferenceRows(run_dir, policy)
    lines = [_decided_line(row, policy, references) for row in decided.to_dict("records")]
    for source_row, errors in rejected.groupby("source_row", sort=True):
        lines.append(_rejected_line(int(source_row), errors))
    lines.sort(key=lambda entry: (entry["source"]["file"], entry["source"]["row"]))
    return {
        "run": {"id": summary["run"]["id"], "directory": str(run_dir)},
        "claim_id": claim_id,
        "lines": lines,
    }


def _whole_number(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce")


class _ReferenceRows:
    """The data rows of the reference files the run kept, for quoting a matched row."""

    def __init__(self, run_dir: Path, policy: PolicyDefinition):
        self.run_dir = run_dir
        self.policy = policy

    def row(self, name: str, number: int, version: int) -> dict:
        kept = self.run_dir / f"reference.{name}"
        if kept.exists():
            rows = list(csv.DictReader(io.StringIO(kept.read_text(encoding="utf-8-sig"))))
            return {"file": name, "row": number, "content": dict(rows[number - 1])}
        listed = self.policy.versions[version].commercial_strengths[number - 1]
        return {
            "file": f"policy.toml, version {self.policy.versions[version].version}",
            "row": number,
            "content": {
                "route": listed.route,
                "strength": f"{listed.strength:g}",
                "strength_unit": listed.strength_unit,
            },
        }


def _text(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()[:10]
    return str(value)


def _decided_line(row: dict, policy: PolicyDefinition, references: _ReferenceRows) -> dict:
    version_index = next(
        i for i, v in enumerate(policy.versions) if v.version == row["policy_version"]
    )
    version = policy.versions[version_index]
    reasons = [code for code in (_text(row["reasons"]) or "").split("|") if code]
    advisories = [code for code in (_text(row["advisories"]) or "").split("|") if code]
    strength = _text(row["normalized_strength"])
    unit = _text(row["normalized_unit"])
    observed_strength = f"{float(strength):g} {unit}" if strength and unit else None
    commercial = shortage = None
    if _text(row["commercial_strength_row"]):
        commercial = references.row(
            "commercial_strengths.csv", int(row["commercial_strength_row"]), version_index
        )
    if _text(row["shortage_row"]):
        shortage = references.row("shortages.csv", int(row["shortage_row"]), version_index)
    details = {
        "INDICATION_NOT_COVERED": (
            _text(row["diagnosis_codes"]),
            f"{row['spasticity_code_given']} meets value-set entry "
            f"{row['spasticity_value_set_entry']} (policy version {version.version})"
            if _text(row["spasticity_code_given"])
            else f"no code in the spasticity value set of policy version {version.version}",
        ),
        "TOPICAL_ROUTE": (_route(row), "topical routes are investigational"),
        "ROUTE_NOT_COVERED": (_route(row), "oral and intrathecal are covered; topical apart"),
        "DX_MISSING": (_text(row["diagnosis_codes"]), "at least one diagnosis code"),
        "ROUTE_MISSING": (_route(row), "a route"),
        "STRENGTH_MISSING": (
            _strength_given(row),
            "oral or intrathecal lines need a strength and its unit",
        ),
        "STRENGTH_UNIT_INVALID": (
            _strength_given(row),
            "oral: a mass or a concentration; intrathecal: a concentration",
        ),
        "ORAL_DOSE_EXCEEDS_LIMIT": (
            observed_strength,
            f"at most {version.oral_max_mg_per_unit:g} mg per unit "
            f"(policy version {version.version})",
        ),
        "INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT": (
            observed_strength,
            f"at most {version.intrathecal_max_mg_per_ml:g} mg/mL "
            f"(policy version {version.version})",
        ),
        "COMMERCIALLY_AVAILABLE": (
            observed_strength,
            _availability(commercial, shortage),
        ),
    }
    route = _text(row["route"])
    dosed = route in ("oral", "intrathecal")
    applies = {
        "ORAL_DOSE_EXCEEDS_LIMIT": route == "oral",
        "INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT": route == "intrathecal",
        "STRENGTH_MISSING": dosed,
        "STRENGTH_UNIT_INVALID": dosed,
        "COMMERCIALLY_AVAILABLE": dosed,
    }
    criteria = [
        {
            "code": criterion.code,
            "applies": applies.get(criterion.code, True),
            "met": criterion.code not in reasons,
            "forces": criterion.forces,
            "observed": details[criterion.code][0],
            "requirement": details[criterion.code][1],
            "clause": criterion.clause,
        }
        for criterion in CRITERIA
    ]
    return {
        "outcome": row["decision"],
        "source": {"file": row["source_file"], "row": int(row["source_row"])},
        "input": {name: _text(row[name]) for name in INPUT_AS_GIVEN},
        "normalized": {
            "route": _text(row["route"]),
            "strength": observed_strength,
            "spasticity_code": _text(row["spasticity_code_given"]),
            "spasticity_value_set_entry": _text(row["spasticity_value_set_entry"]),
        },
        "in_scope_by": {
            "ndc": "its NDC is a listed product (products.csv)",
            "name": "its drug name names baclofen and powder or bulk",
            "both": "its NDC is a listed product and its drug name names baclofen powder",
        }[row["in_scope_by"]],
        "policy_version": version.version,
        "criteria": criteria,
        "commercial_strength": commercial,
        "shortage": shortage,
        "decision": row["decision"],
        "reasons": reasons,
        "advisories": [
            {"code": a.code, "clause": a.clause} for a in ADVISORIES if a.code in advisories
        ],
        "approval": {
            "start": _text(row["approval_start"]),
            "end": _text(row["approval_end"]),
        },
    }


def _route(row: dict) -> str | None:
    given, route = _text(row["route_given"]), _text(row["route"])
    return None if given is None else f"{given} (normalized: {route})"


def _strength_given(row: dict) -> str | None:
    parts = [_text(row["strength"]), _text(row["strength_unit"])]
    return " ".join(p for p in parts if p) or None


def _availability(commercial: dict | None, shortage: dict | None) -> str:
    if commercial is None:
        return "not in the commercial list on the service date: may be compounded"
    listed = f"listed as commercially available by {commercial['file']} row {commercial['row']}"
    if shortage is None:
        return listed + ", and no shortage of it is active on the service date"
    window = shortage["content"]
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


def render_text(explained: dict) -> str:
    out = [f"Claim {explained['claim_id']} in run {explained['run']['id']}"]
    for line in explained["lines"]:
        source = line["source"]
        out.append("")
        out.append(
            f"Line {line['input']['line_number']}: {line['outcome'].upper()} "
            f"({source['file']}, record {source['row']})"
        )
        if line["outcome"] == "rejected":
            for error in line["errors"]:
                out.append(
                    f"  {error['code']}: {error['message']}"
                    + (f" — column {error['column']}" if error["column"] else "")
                    + (f", value {error['value']!r}" if error["value"] is not None else "")
                )
            continue
        given = ", ".join(f"{k}={v}" for k, v in line["input"].items() if v is not None)
        out.append(f"  input as given: {given}")
        normalized = line["normalized"]
        out.append(
            f"  normalized: route {normalized['route']}, strength {normalized['strength']}"
            + (
                f", spasticity code {normalized['spasticity_code']} (value-set entry "
                f"{normalized['spasticity_value_set_entry']})"
                if normalized["spasticity_code"]
                else ""
            )
        )
        out.append(f"  in scope: {line['in_scope_by']}")
        out.append(f"  policy version {line['policy_version']}; criteria in policy order:")
        for criterion in line["criteria"]:
            mark = (
                "NOT MET"
                if not criterion["met"]
                else "met    "
                if criterion["applies"]
                else "n/a    "
            )
            out.append(
                f"    [{mark}] {criterion['code']}: observed {criterion['observed']}; "
                f"{criterion['requirement']}"
            )
            out.append(f'              "{criterion["clause"]}"')
        out.append(
            f"  decision: {line['decision']}"
            + (f" ({', '.join(line['reasons'])})" if line["reasons"] else "")
        )
        for advisory in line["advisories"]:
            out.append(f"  advisory {advisory['code']}: {advisory['clause']}")
        if line["approval"]["start"]:
            out.append(f"  approved from {line['approval']['start']} to {line['approval']['end']}")
    return "\n".join(out)
