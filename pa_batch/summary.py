"""The run summary: ``summary.json`` (for schedulers) and ``summary.md`` (for people).

Counts, codes, file paths and checksums only: no member-level data ever goes in here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pa_batch import __version__
from pa_batch.policy import OUTCOMES, POLICY_ID, POLICY_TITLE, POLICY_VERSION
from pa_batch.reference import ReferenceSource
from pa_batch.rules import ADVISORIES, CRITERIA
from pa_batch.schemas.claim_extract import REJECT_CODES
from pa_batch.state import RunCounts

POWDER_LINE_KINDS = ("yes", "no", "unknown")


@dataclass
class InputRecord:
    path: str
    format: str
    sha256: str
    rows: int = 0
    # header names the contract does not know, so a misspelt column is visible
    ignored_columns: list[str] = field(default_factory=list)


@dataclass
class RunReport:
    inputs: list[InputRecord]
    reference: tuple[ReferenceSource, ...]
    counts: RunCounts
    options: dict
    outputs: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    run_id: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # after the commit; the run stands

    @property
    def reject_rate(self) -> float:
        rows = self.counts.rows_read
        return self.counts.outcomes["rejected"] / rows if rows else 0.0

    @property
    def over_reject_threshold(self) -> bool:
        limit = self.options.get("max_reject_rate")
        return limit is not None and self.reject_rate > limit


def summary_json(report: RunReport) -> dict:
    counts = report.counts
    return {
        "policy": {"id": POLICY_ID, "version": POLICY_VERSION, "title": POLICY_TITLE},
        "tool": {"name": "pa_batch", "version": __version__},
        "counts": {"rows_read": counts.rows_read, **{o: counts.outcomes[o] for o in OUTCOMES}},
        "reasons": {c.code: counts.reasons[c.code] for c in CRITERIA},
        "advisories": {a.code: counts.advisories[a.code] for a in ADVISORIES},
        "errors": {code: counts.errors[code] for code in REJECT_CODES},
        # rejected records split by scope: how many policy lines failed validation
        "rejected_by_powder_line": {
            kind: counts.rejected_by_powder_line[kind] for kind in POWDER_LINE_KINDS
        },
        "reject_rate": round(report.reject_rate, 6),
        "max_reject_rate": report.options.get("max_reject_rate"),
        "over_reject_threshold": report.over_reject_threshold,
        "inputs": [
            {
                "path": i.path,
                "format": i.format,
                "rows": i.rows,
                "sha256": i.sha256,
                "ignored_columns": i.ignored_columns,
            }
            for i in report.inputs
        ],
        "reference": [
            {"name": r.name, "origin": r.origin, "rows": r.rows, "sha256": r.sha256}
            for r in report.reference
        ],
        "outputs": report.outputs,
        "options": report.options,
        "run": {
            "id": report.run_id,
            "started_at": report.started_at,
            "seconds": round(report.seconds, 3),
        },
    }


def summary_markdown(report: RunReport) -> str:
    counts = report.counts
    lines = [
        f"# pa_batch run — {POLICY_TITLE}",
        "",
        f"Policy `{POLICY_ID}` version `{POLICY_VERSION}`; pa_batch {__version__}; "
        f"started {report.started_at}, {report.seconds:.1f} s.",
        "",
        "## Outcomes",
        "",
        "| outcome | records |",
        "|---|---:|",
        *[f"| {o} | {counts.outcomes[o]:,} |" for o in OUTCOMES],
        f"| **rows read** | **{counts.rows_read:,}** |",
        "",
        f"Reject rate {report.reject_rate:.2%}"
        + (
            f" (limit {report.options['max_reject_rate']:.2%}: "
            + ("**exceeded**" if report.over_reject_threshold else "within")
            + ")"
            if report.options.get("max_reject_rate") is not None
            else ""
        )
        + ".",
        "",
        "## Reasons (evaluated lines may carry several)",
        "",
        "| reason | lines |",
        "|---|---:|",
        *[f"| {c.code} | {counts.reasons[c.code]:,} |" for c in CRITERIA],
        *[f"| {a.code} (advisory) | {counts.advisories[a.code]:,} |" for a in ADVISORIES],
        "",
        "Rejected records by whether they were baclofen powder lines: "
        + ", ".join(
            f"{kind} {counts.rejected_by_powder_line[kind]:,}" for kind in POWDER_LINE_KINDS
        )
        + " (unknown: the NDC was unreadable, or the record malformed).",
        "",
        "## Reject errors (a rejected record may carry several)",
        "",
        "| error | errors |",
        "|---|---:|",
        *[f"| {code} | {counts.errors[code]:,} |" for code in REJECT_CODES],
        "",
        "## Inputs",
        "",
        "| file | format | records | SHA-256 |",
        "|---|---|---:|---|",
        *[f"| `{i.path}` | {i.format} | {i.rows:,} | `{i.sha256}` |" for i in report.inputs],
        "",
        *_ignored_columns_lines(report.inputs),
        "## Reference data",
        "",
        "| file | source | rows | SHA-256 |",
        "|---|---|---:|---|",
        *[f"| {r.name} | `{r.origin}` | {r.rows:,} | `{r.sha256}` |" for r in report.reference],
        "",
    ]
    return "\n".join(lines)


def _ignored_columns_lines(inputs: list[InputRecord]) -> list[str]:
    """Columns of the inputs that the contract does not know: a misspelt name shows here."""
    ignored = [i for i in inputs if i.ignored_columns]
    if not ignored:
        return ["No columns ignored: every header name is a contract column.", ""]
    return [
        "Columns ignored (not in the contract; a misspelt contract column would show here):",
        "",
        *[
            f"- `{i.path}`: " + ", ".join(f"`{name}`" for name in i.ignored_columns)
            for i in ignored
        ],
        "",
    ]
