"""Which ICD-10-CM codes are billable, for the DX_NOT_BILLABLE advisory: the billable (leaf)
codes of one edition, shipped as a plain list in ``policy_data``. Used for service dates the
edition describes (on or after 2025-10-01, when FY2026 began).

The list is generated from the code set of the pinned ``simple-icd-10-cm`` package, whose
version is its edition (1.5.0: FY2026, the April 1, 2026 release), by
``python -m pa_batch.icd10cm --write`` (``make docs``); a test keeps it equal to the package.
A run reads the list (75 thousand codes, a few milliseconds, a few MB) instead of loading the
package's whole code tree (about two seconds and 180 MB).
"""

from __future__ import annotations

import sys
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Final

PACKAGE: Final = "simple-icd-10-cm"
PACKAGE_VERSION: Final = "1.5.0"  # the edition the shipped list was generated from
EDITION: Final = "ICD-10-CM FY2026 (April 1, 2026 release)"
APPLIES_FROM: Final = date(2025, 10, 1)
CODE_LIST: Final = "icd10cm-fy2026-billable.txt"


@cache
def billable_codes() -> frozenset[str]:
    """The edition's billable codes, upper-case, without dots (``G8011``)."""
    text = resources.files("pa_batch.policy_data").joinpath(CODE_LIST).read_text("ascii")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def is_billable(code: str) -> bool:
    """A billable (leaf) code of the edition; ``code`` may carry its dot or not."""
    return code.upper().replace(".", "") in billable_codes()


def edition() -> dict[str, str]:
    """What the summary records of the code set."""
    return {
        "edition": EDITION,
        "package": f"{PACKAGE} {PACKAGE_VERSION}",
        "applies_from": APPLIES_FROM.isoformat(),
    }


def code_list_from_package() -> str:
    """The shipped list's text, made anew from the installed ``simple-icd-10-cm``."""
    import warnings
    from importlib.metadata import version

    installed = version(PACKAGE)
    if installed != PACKAGE_VERSION:
        raise SystemExit(f"{PACKAGE} {installed} installed; the list is of {PACKAGE_VERSION}")
    # the package loads its data through importlib.resources' legacy read_text, which warns
    # on Python >= 3.11: its deprecation, not ours, and harmless at the pinned version
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import simple_icd_10_cm as code_set
    leaves = sorted(
        code for code in code_set.get_all_codes(with_dots=False) if code_set.is_leaf(code)
    )
    header = (
        f"# {EDITION}: the billable (leaf) codes, upper-case, without dots.\n"
        f"# Generated from {PACKAGE} {PACKAGE_VERSION} by `python -m pa_batch.icd10cm --write`.\n"
    )
    return header + "\n".join(leaves) + "\n"


def main(argv: list[str]) -> int:
    target = Path(__file__).parent / "policy_data" / CODE_LIST
    if argv != ["--write"]:
        print("usage: python -m pa_batch.icd10cm --write", file=sys.stderr)
        return 2
    target.write_text(code_list_from_package(), encoding="ascii")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
