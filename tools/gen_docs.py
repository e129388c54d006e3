"""Documentation generated from the registries, so docs and code cannot drift.

The README and ``docs/contract.md`` hold blocks between ``<!-- BEGIN GENERATED: name -->``
and ``<!-- END GENERATED: name -->``; ``python tools/gen_docs.py --write`` (``make docs``)
rewrites them from the code, and a test fails when a file is not what it would write.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from pa_batch.core import normalize
from pa_batch.core.rules import ADVISORIES, CRITERIA
from pa_batch.policy import reference
from pa_batch.schemas.claim_extract import (
    COLUMN_MEANINGS,
    CONTEXT_COLUMNS,
    POLICY_COLUMNS,
    REJECT_RULES,
    REQUIRED_COLUMNS,
)

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "docs/contract.md")
_BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)


def _cell(text: str) -> str:
    """Markdown table cell text: a literal ``|`` would end the cell."""
    return text.replace("|", "\\|")


def reason_code_table() -> str:
    """The registry's criteria and advisories; clauses with the shipped version's terms."""
    from pa_batch.policy.definition import load_policy

    shipped = load_policy().versions[-1]
    rows = [
        "| code | criterion (as explain names it) | decision it forces | reported when "
        "| policy sentence |",
        "|---|---|---|---|---|",
        *[
            f"| `{c.code}` | {c.name} | {c.forces} | {c.when} | {c.clause_under(shipped)} |"
            for c in CRITERIA
        ],
        *[
            f"| `{a.code}` | — | advisory (never changes it) | {a.when} | "
            f"{a.clause_under(shipped)} |"
            for a in ADVISORIES
        ],
    ]
    return "\n".join(rows)


def reject_code_table() -> str:
    return "\n".join(
        [
            "| code | checked on | message in the rejects file |",
            "|---|---|---|",
            *[f"| `{r.code}` | {r.checked_on} | {_cell(r.message)} |" for r in REJECT_RULES],
        ]
    )


def input_column_table() -> str:
    kinds = (
        (REQUIRED_COLUMNS, "required: in the header, and a value in every record"),
        (POLICY_COLUMNS, "policy: in the header (a decision depends on it); a cell may be empty"),
        (CONTEXT_COLUMNS, "context: optional; carried to results"),
    )
    return "\n".join(
        [
            "| column | kind | meaning and accepted forms |",
            "|---|---|---|",
            *[
                f"| `{column}` | {kind} | {_cell(COLUMN_MEANINGS[column])} |"
                for columns, kind in kinds
                for column in columns
            ],
        ]
    )


def route_synonym_table() -> str:
    by_route: dict[str, list[str]] = {}
    for spelling, route in normalize.ROUTE_SYNONYMS.items():
        by_route.setdefault(route, []).append(spelling)
    return "\n".join(
        [
            "| normalized route | accepted spellings (trimmed, any case, inner spaces folded) |",
            "|---|---|",
            *[
                f"| `{route}` | " + ", ".join(f"`{s}`" for s in spellings) + " |"
                for route, spellings in by_route.items()
            ],
            "| (missing) | an empty cell |",
            f"| `{normalize.ROUTE_OTHER}` | any other value (kept as given in `route_given`) |",
        ]
    )


def strength_unit_table() -> str:
    target = {
        normalize.MASS: "mg per dosage unit",
        normalize.CONCENTRATION: "mg/mL",
        normalize.PERCENT: "percent (no limit can be checked)",
    }
    rows = []
    for unit, (kind, factor) in normalize.STRENGTH_UNITS.items():
        times = "—" if kind == normalize.PERCENT else f"× {factor:g}"
        note = " (micro sign)" if "\u00b5" in unit else " (Greek mu)" if "\u03bc" in unit else ""
        rows.append(f"| `{unit}`{note} | {target[kind]} | {times} |")
    return "\n".join(
        [
            "| unit (any case, spaces ignored) | normalized to | factor |",
            "|---|---|---|",
            *rows,
        ]
    )


def ndc_form_table() -> str:
    rows = []
    for shape in sorted(normalize.NDC_SEGMENTS, reverse=True):
        example = "-".join("1" * width for width in shape)
        padded = "".join(
            "1" * width if width == full else "0" * (full - width) + "1" * width
            for width, full in zip(shape, (5, 4, 2), strict=True)
        )
        rows.append(f"| {'-'.join(map(str, shape))} | `{example}` | `{padded}` |")
    return "\n".join(
        [
            "| form | example | normalized (11 digits) |",
            "|---|---|---|",
            "| 11 digits | `00172572860` | `00172572860` |",
            *rows,
            "| an integer-typed Parquet column | `172572860` | `00172572860` (left-padded) |",
        ]
    )


def reference_file_table() -> str:
    rows = []
    for name in reference.REFERENCE_FILES:
        columns = reference.columns_of(name)
        shown = ", ".join(
            f"`{c}`" + (" (optional)" if reference.is_optional(name, c) else "") for c in columns
        )
        old = reference.old_names_of(name)
        if old:
            shown += "; also read under the old names " + ", ".join(
                f"`{o}` (= `{n}`)" for o, n in old.items()
            )
        rows.append(f"| `{name}` | {shown} |")
    return "\n".join(["| file | columns |", "|---|---|", *rows])


def shipped_policy() -> str:
    from pa_batch.policy.definition import SHIPPED_POLICY

    text = resources.files("pa_batch.policy.data").joinpath(SHIPPED_POLICY).read_text("utf-8")
    return "```toml\n" + text.rstrip("\n") + "\n```"


def policy_key_table() -> str:
    from pa_batch.policy.definition import VERSION_KEYS

    return "\n".join(
        [
            "| key of a `[[versions]]` table | value |",
            "|---|---|",
            *[f"| `{key}` | {kind} |" for key, kind in VERSION_KEYS.items()],
        ]
    )


GENERATORS: dict[str, Callable[[], str]] = {
    "reason-codes": reason_code_table,
    "reject-codes": reject_code_table,
    "input-columns": input_column_table,
    "route-synonyms": route_synonym_table,
    "strength-units": strength_unit_table,
    "ndc-forms": ndc_form_table,
    "reference-files": reference_file_table,
    "policy-keys": policy_key_table,
    "shipped-policy": shipped_policy,
}


def render(text: str) -> str:
    """``text`` with every generated block rewritten from the registries."""

    def block(match: re.Match) -> str:
        return match.group(1) + GENERATORS[match.group("name")]() + "\n" + match.group(4)

    return _BLOCK.sub(block, text)


def main(argv: list[str]) -> int:
    if "--write" not in argv:
        print(reason_code_table())
        return 0
    for document in DOCUMENTS:
        path = ROOT / document
        text = path.read_text(encoding="utf-8")
        rendered = render(text)
        if rendered != text:
            path.write_text(rendered, encoding="utf-8")
            print(f"rewrote {document}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
