"""summary.html: the run at a glance for managers and auditors, one self-contained page.

Rendered from summary.json's content through a Jinja2 template with autoescape; charts are
inline SVG drawn by the template (no script, no remote font or style), so the file opens
offline anywhere. Counts, codes, paths and checksums only: never member-level data.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape

from pa_batch.core.outcomes import OUTCOMES

DECISION_COLORS = (("approved", "#1a7f37"), ("denied", "#b42318"), ("investigational", "#9a6700"))


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
        outcome_items=[(o, counts[o]) for o in OUTCOMES],
        outcome_total=sum(counts[o] for o in OUTCOMES),
        reconciled=sum(counts[o] for o in OUTCOMES) == counts["rows_read"],
        reason_items=list(summary["reasons"].items()),
        route_items=list(summary["routes"].items()),
        error_items=list(summary["errors"].items()),
        advisory_items=list(summary["advisories"].items()),
        decision_colors=DECISION_COLORS,
        month_peak=max((sum(m.values()) for m in months.values()), default=0),
    )
