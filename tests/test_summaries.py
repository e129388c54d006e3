"""The summaries say everything a person needs: summary.md holds what summary.json holds
(run id, status, policy origin and versions, options, inputs with counts, decisions by
service month), and spellings the contract does not map are visible, with counts, in all
three summaries, and noticed when they pass 1% of the decided lines."""

from __future__ import annotations

import json
import re

from helpers import VALID_LINE, run_lines

ORAL_TABLET = 12  # an extract that writes "Oral Tablet": investigational, route other
RECTAL = 2  # too few lines to show a spelling (it is counted)
ODD = 5  # not shaped like a route word: counted, never shown
TABS = 6  # an unknown strength_unit: rejected INVALID_STRENGTH_UNIT


def _lines() -> list[dict[str, str]]:
    lines = []
    for n in range(100):
        line = {**VALID_LINE, "claim_id": f"C{n}"}
        if n < ORAL_TABLET:
            line["route"] = "Oral Tablet"
        elif n < ORAL_TABLET + RECTAL:
            line["route"] = "rectal"
        elif n < ORAL_TABLET + RECTAL + ODD:
            line["route"] = "per J. Smith @ 555-0100"
        elif n < ORAL_TABLET + RECTAL + ODD + TABS:
            line["strength_unit"] = " tabs "
        lines.append(line)
    return lines


def test_unmapped_spellings_are_counted_shown_and_noticed(tmp_path):
    out = run_lines(tmp_path, _lines(), "--run-id", "spellings")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unmapped_spellings"] == {
        "route": {
            "lines": ORAL_TABLET + RECTAL + ODD,
            "spellings": {"Oral Tablet": ORAL_TABLET, "(other spellings, not shown)": RECTAL + ODD},
        },
        "strength_unit": {"lines": TABS, "spellings": {"tabs": TABS}},
    }
    decided = 100 - TABS
    share = (ORAL_TABLET + RECTAL + ODD) / decided
    assert summary["notices"] == [
        f"{ORAL_TABLET + RECTAL + ODD} decided lines ({share:.1%}) give a route spelling outside "
        "the contract's route table, decided as route 'other' (investigational): see the "
        "unmapped spellings",
        f"{TABS} baclofen powder lines ({TABS / decided:.1%} of the decided lines) rejected for "
        "a strength_unit outside the contract's unit table: see the unmapped spellings",
    ]
    markdown = (out / "summary.md").read_text()
    assert "| route | `Oral Tablet` | 12 |" in markdown
    assert "| strength_unit | `tabs` | 6 |" in markdown
    assert "| route | `(other spellings, not shown)` | 7 |" in markdown
    html = (out / "summary.html").read_text()
    assert 'data-count="spelling:route:Oral Tablet">12<' in html
    for text in (json.dumps(summary), markdown, html):
        assert "J. Smith" not in text and "555-0100" not in text and "rectal" not in text


def test_summary_md_says_what_summary_json_says(tmp_path):
    out = run_lines(tmp_path, _lines()[:3], "--run-id", "said", "--max-reject-rate", "0.5")
    summary = json.loads((out / "summary.json").read_text())
    markdown = (out / "summary.md").read_text()
    assert "Run `said`: committed; finished " + summary["run"]["finished_at"] in markdown
    assert "Policy definition: the shipped one; versions `2024.1` (open to open)." in markdown
    assert "max_reject_rate `0.5`" in markdown and "policy —" in markdown
    ((month, decided),) = summary["decisions_by_service_month"].items()
    assert f"| {month} | {decided['approved']} | {decided['denied']} | " in markdown
    row = re.search(r"^\| `[^`]*claims.csv` \| csv \| 3 \| (.*) \|$", markdown, re.M)
    assert row and row.group(1).startswith("0 | 0 | 3 | 0 | 0")
    assert "None" not in markdown and "None" not in (out / "summary.html").read_text()
