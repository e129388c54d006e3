"""Documentation generated from the registries, so docs and code cannot drift.

``python -m pa_batch.docs`` prints the README's reason-code table.
"""

from __future__ import annotations

from pa_batch.rules import ADVISORIES, CRITERIA


def reason_code_table() -> str:
    rows = [
        "| code | decision it forces | reported when | policy sentence |",
        "|---|---|---|---|",
        *[f"| `{c.code}` | {c.forces} | {c.when} | {c.clause} |" for c in CRITERIA],
        *[
            f"| `{a.code}` | advisory (never changes it) | {a.when} | {a.clause} |"
            for a in ADVISORIES
        ],
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    print(reason_code_table())
