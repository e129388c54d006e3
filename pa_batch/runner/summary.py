"""The run summary: ``summary.json`` (for schedulers) and ``summary.md`` (for people).

Counts, codes, file paths and checksums only: no member-level data ever goes in here.
"""

from __future__ import annotations

import platform
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

from pa_batch.core.counts import Counts
from pa_batch.core.model import PolicyDefinition, ReferenceSource
from pa_batch.core.outcomes import OUTCOMES
from pa_batch.core.rules import ADVISORIES, CRITERIA
from pa_batch.policy import icd10cm
from pa_batch.schemas.claim_extract import REJECT_CODES
from pa_batch.version import __version__

POWDER_LINE_KINDS = ("yes", "no", "unknown")
DECISIONS = OUTCOMES[:3]  # approved, denied, investigational


@dataclass
class InputRecord:
    path: str
    format: str
    sha256: str
    rows: int = 0
    # header names the contract does not know, so a misspelt column is visible
    ignored_columns: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)  # this file's five outcomes


@dataclass
class RunReport:
    policy: PolicyDefinition
    inputs: list[InputRecord]
    reference: tuple[ReferenceSource, ...]
    counts: Counts
    options: dict
    outputs: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    run_id: str = ""
    seconds: float = 0.0
    output_sha256: dict[str, str] = field(default_factory=dict)  # the files beside summary.json
    warnings: list[str] = field(default_factory=list)  # after the commit; the run stands
    notices: list[str] = field(default_factory=list)  # worth a look, in the summary: same files

    @property
    def reject_rate(self) -> float:
        rows = self.counts.rows_read
        return self.counts.outcomes["rejected"] / rows if rows else 0.0

    @property
    def over_reject_threshold(self) -> bool:
        limit = self.options.get("max_reject_rate")
        return limit is not None and self.reject_rate > limit


SUMMARY_FORMAT_VERSION = 2
LIBRARIES = ("pandas", "pyarrow", "pandera", "numpy", "typer")


def library_versions() -> dict[str, str]:
    return dict(_library_versions())


@cache  # installed versions do not change under a running process
def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def summary_json(report: RunReport) -> dict:
    """The run's summary and manifest: enough to reproduce it (inputs, reference files and
    outputs by SHA-256, options, versions)."""
    counts = report.counts
    return {
        "format_version": SUMMARY_FORMAT_VERSION,
        "policy": {
            "id": report.policy.policy_id,
            "title": report.policy.title,
            "version": report.policy.versions_label,
            "versions": [
                {
                    "version": v.version,
                    "effective_from": v.effective_from.isoformat() if v.effective_from else None,
                    "effective_to": v.effective_to.isoformat() if v.effective_to else None,
                }
                for v in report.policy.versions
            ],
            "origin": report.policy.origin,
            "sha256": report.policy.sha256,
        },
        "tool": {"name": "pa_batch", "version": __version__, "libraries": library_versions()},
        "counts": {"rows_read": counts.rows_read, **{o: counts.outcomes[o] for o in OUTCOMES}},
        "reasons": {c.code: counts.reasons[c.code] for c in CRITERIA},
        "advisories": {a.code: counts.advisories[a.code] for a in ADVISORIES},
        "errors": {code: counts.errors[code] for code in REJECT_CODES},
        # rejected records split by scope: how many policy lines failed validation
        "rejected_by_powder_line": {
            kind: counts.rejected_by_powder_line[kind] for kind in POWDER_LINE_KINDS
        },
        "decisions_by_service_month": {
            month: {d: counts.by_month[month, d] for d in DECISIONS}
            for month in sorted({month for month, _ in counts.by_month})
        },
        "routes": dict(sorted(counts.routes.items())),
        "unmapped_spellings": {
            "route": _spellings(counts.unmapped_routes),
            "strength_unit": _spellings(counts.unknown_units),
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
                "counts": {o: i.outcomes[o] for o in OUTCOMES},
                "ignored_columns": i.ignored_columns,
            }
            for i in report.inputs
        ],
        "reference": [
            {"name": r.name, "origin": r.origin, "rows": r.rows, "sha256": r.sha256}
            for r in report.reference
        ],
        "icd10cm": icd10cm.edition(),
        "notices": report.notices,
        "outputs": {
            **report.outputs,
            "sha256": report.output_sha256,
        },
        "options": report.options,
        "run": {
            "id": report.run_id,
            "status": "committed_over_threshold" if report.over_reject_threshold else "committed",
            "started_at": report.started_at,
            "finished_at": report.finished_at,
            "seconds": round(report.seconds, 3),
        },
    }


def summary_markdown(report: RunReport) -> str:
    counts = report.counts
    lines = [
        f"# pa_batch run — {md_text(report.policy.title)}",
        "",
        f"Policy {md_code(report.policy.policy_id)} version "
        f"{md_code(report.policy.versions_label)} "
        f"(definition SHA-256 `{report.policy.sha256}`); pa_batch {__version__}; "
        f"started {report.started_at}, {report.seconds:.1f} s.",
        "",
        f"Run {md_code(report.run_id)}: "
        + ("committed, reject rate over the limit" if report.over_reject_threshold else "committed")
        + f"; finished {report.finished_at}.",
        "",
        "Policy definition: "
        + (
            "the shipped one"
            if report.policy.origin == "shipped"
            else md_code(report.policy.origin)
        )
        + "; versions "
        + ", ".join(
            f"{md_code(v.version)} ({v.effective_from or 'open'} to {v.effective_to or 'open'})"
            for v in report.policy.versions
        )
        + ".",
        "",
        "Options: "
        + "; ".join(
            f"{name} {md_code(str(value)) if value is not None else '—'}"
            for name, value in report.options.items()
        )
        + ".",
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
        f"`DX_NOT_BILLABLE` uses {icd10cm.EDITION} ({icd10cm.PACKAGE} "
        f"{icd10cm.PACKAGE_VERSION}), for service dates from {icd10cm.APPLIES_FROM}.",
        "",
        "## Decisions by service month",
        "",
        "| month | " + " | ".join(DECISIONS) + " |",
        "|---|" + "---:|" * len(DECISIONS),
        *[
            f"| {month} | " + " | ".join(f"{counts.by_month[month, d]:,}" for d in DECISIONS) + " |"
            for month in sorted({month for month, _ in counts.by_month})
        ],
        "",
        "## Unmapped spellings",
        "",
        *_spelling_lines(counts),
        "## Reject errors (a rejected record may carry several)",
        "",
        "| error | errors |",
        "|---|---:|",
        *[f"| {code} | {counts.errors[code]:,} |" for code in REJECT_CODES],
        "",
        "## Inputs",
        "",
        "| file | format | records | approved | denied | investigational | out of scope "
        "| rejected | SHA-256 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        *[
            f"| {md_code(i.path)} | {i.format} | {i.rows:,} | "
            + " | ".join(f"{i.outcomes[o]:,}" for o in OUTCOMES)
            + f" | `{i.sha256}` |"
            for i in report.inputs
        ],
        "",
        *[f"**Notice:** {md_text(notice)}" for notice in report.notices],
        *([""] if report.notices else []),
        *_ignored_columns_lines(report.inputs),
        "## Reference data",
        "",
        "| file | source | rows | SHA-256 |",
        "|---|---|---:|---|",
        *[
            f"| {r.name} | {md_code(r.origin)} | {r.rows:,} | `{r.sha256}` |"
            for r in report.reference
        ],
        "",
    ]
    return "\n".join(lines)


# Spellings the contract does not map are shown so that an extract writing "Oral Tablet"
# does not pass for a wave of investigational claims. They are cell values, so only what
# reads as a route or unit word is shown, and only when at least SPELLING_MIN_LINES lines
# carry it: a rarer or odder cell (a shifted column could hold anything) is counted, unshown.
SPELLING_SHAPE = re.compile(r"[A-Za-z0-9 ./%()\-]{1,40}")
SPELLING_MIN_LINES = 5
UNSHOWN_SPELLINGS = "(other spellings, not shown)"
SPELLING_NOTICE_SHARE = 0.01


def _spellings(counter: Counter[str]) -> dict:
    shown: dict[str, int] = {}
    unshown = 0
    for spelling, lines in sorted(counter.items(), key=lambda item: (-item[1], item[0])):
        if lines >= SPELLING_MIN_LINES and SPELLING_SHAPE.fullmatch(spelling):
            shown[spelling] = int(lines)
        else:
            unshown += int(lines)
    if unshown:
        shown[UNSHOWN_SPELLINGS] = unshown
    return {"lines": int(sum(counter.values())), "spellings": shown}


def spelling_notices(counts: Counts) -> list[str]:
    """A notice when the lines with an unmapped spelling exceed 1% of the decided lines."""
    decided = counts.decided
    notices = []
    routes, units = sum(counts.unmapped_routes.values()), sum(counts.unknown_units.values())
    if decided and routes / decided > SPELLING_NOTICE_SHARE:
        notices.append(
            f"{_lines(routes, 'decided line')} ({routes / decided:.1%}) "
            + ("gives" if routes == 1 else "give")
            + " a route spelling "
            "outside the contract's route table, decided as route 'other' (investigational): "
            "see the unmapped spellings"
        )
    if decided and units / decided > SPELLING_NOTICE_SHARE:
        notices.append(
            f"{_lines(units, 'baclofen powder line')} ({units / decided:.1%} of the decided "
            "lines) rejected for a strength_unit outside the contract's unit table: see the "
            "unmapped spellings"
        )
    return notices


def _lines(count: int, what: str) -> str:
    return f"{count:,} {what}" + ("" if count == 1 else "s")


def _spelling_lines(counts: Counts) -> list[str]:
    rows = [
        f"| {column} | {md_code(spelling)} | {lines:,} |"
        for column, counter in (
            ("route", counts.unmapped_routes),
            ("strength_unit", counts.unknown_units),
        )
        for spelling, lines in _spellings(counter)["spellings"].items()
    ]
    if not rows:
        return ["Every route and strength_unit spelling was one the contract maps.", ""]
    return [
        "| column | spelling | lines |",
        "|---|---|---:|",
        *rows,
        "",
        f"Spellings on fewer than {SPELLING_MIN_LINES} lines, or not shaped like a route or "
        "unit, are counted but not shown.",
        "",
    ]


def md_code(text: str) -> str:
    """``text`` as a Markdown code span that nothing in it can break out of: a fence longer
    than any run of backticks inside, line breaks folded, and the table's | escaped (GFM
    reads a | inside a code span in a table cell as a cell border)."""
    text = " ".join(str(text).splitlines()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_text(text: str) -> str:
    """``text`` as plain Markdown text: every ASCII punctuation mark escaped, so no markup or
    HTML in a file name or a policy title is read as such; line breaks folded."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", " ".join(str(text).splitlines()))


def _ignored_columns_lines(inputs: list[InputRecord]) -> list[str]:
    """Columns of the inputs that the contract does not know: a misspelt name shows here."""
    ignored = [i for i in inputs if i.ignored_columns]
    if not ignored:
        return ["No columns ignored: every header name is a contract column.", ""]
    return [
        "Columns ignored (not in the contract; a misspelt contract column would show here):",
        "",
        *[
            f"- {md_code(i.path)}: " + ", ".join(md_code(name) for name in i.ignored_columns)
            for i in ignored
        ],
        "",
    ]
