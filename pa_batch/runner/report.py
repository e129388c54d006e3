"""summary.html: the run at a glance for managers and auditors, one self-contained page.

Rendered from summary.json's content through a Jinja2 template with autoescape; charts are
inline SVG drawn by the template (no script, no remote font or style), so the file opens
offline anywhere. Counts, codes, paths and checksums only: never member-level data.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape

from pa_batch.core.outcomes import OUTCOMES
from pa_batch.core.rules import CRITERIA

FORCES = {criterion.code: criterion.forces for criterion in CRITERIA}

# one colour per outcome, wherever it shows: the outcome bars, the month chart, and each
# reason in the colour of the decision it forces
OUTCOME_COLORS = {
    "approved": "#1a7f37",
    "denied": "#b42318",
    "investigational": "#9a6700",
    "out_of_scope": "#6e7781",
    "rejected": "#8250df",
}
DECISION_COLORS = tuple((d, OUTCOME_COLORS[d]) for d in ("approved", "denied", "investigational"))
ADVISORY_COLOR = "#3b6ea5"  # advisories never change a decision: no outcome's colour


@cache
def _template() -> Template:
    """Compiled once per process (compiling costs more than rendering a small run)."""
    environment = Environment(
        loader=PackageLoader("pa_batch.runner", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    return environment.get_template("summary.html.j2")


def summary_html(summary: dict) -> str:
    counts = summary["counts"]
    months = summary["decisions_by_service_month"]
    return _template().render(
        s=summary,
        outcomes=OUTCOMES,
        outcome_items=[(o, counts[o], OUTCOME_COLORS[o]) for o in OUTCOMES],
        outcome_total=sum(counts[o] for o in OUTCOMES),
        reconciled=sum(counts[o] for o in OUTCOMES) == counts["rows_read"],
        reason_items=[
            (code, n, OUTCOME_COLORS[FORCES[code]]) for code, n in summary["reasons"].items()
        ],
        route_items=list(summary["routes"].items()),
        error_items=[(c, n, OUTCOME_COLORS["rejected"]) for c, n in summary["errors"].items()],
        advisory_items=[(c, n, ADVISORY_COLOR) for c, n in summary["advisories"].items()],
        spelling_items=[
            (column, spelling, n)
            for column, found in summary["unmapped_spellings"].items()
            for spelling, n in found["spellings"].items()
        ],
        decision_colors=DECISION_COLORS,
        month_peak=max((sum(m.values()) for m in months.values()), default=0),
    )
