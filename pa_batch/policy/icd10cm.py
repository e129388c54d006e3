"""Which ICD-10-CM codes are billable, for the DX_NOT_BILLABLE advisory: the billable (leaf)
codes of one edition, shipped as a plain list in ``policy/data``. Used for service dates the
edition describes (on or after 2025-10-01, when FY2026 began).

The list is generated from the code set of the pinned ``simple-icd-10-cm`` package, whose
version is its edition (1.5.0: FY2026, the April 1, 2026 release), by
``tools/build_icd10cm_list.py --write`` (``make docs``); a test keeps it equal to the package.
A run reads the list (75 thousand codes, a few milliseconds, a few MB) instead of loading the
package's whole code tree (about two seconds and 180 MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Final

PACKAGE: Final = "simple-icd-10-cm"
PACKAGE_VERSION: Final = "1.5.0"  # the edition the shipped list was generated from
EDITION: Final = "ICD-10-CM FY2026 (April 1, 2026 release)"
APPLIES_FROM: Final = date(2025, 10, 1)
CODE_LIST: Final = "icd10cm-fy2026-billable.txt"


@cache
def billable_codes() -> frozenset[str]:
    """The edition's billable codes, upper-case, without dots (``G8011``)."""
    text = resources.files("pa_batch.policy.data").joinpath(CODE_LIST).read_text("ascii")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def is_billable(code: str) -> bool:
    """A billable (leaf) code of the edition; ``code`` may carry its dot or not."""
    return code.upper().replace(".", "") in billable_codes()


@dataclass(frozen=True)
class EditionCodes:
    """The edition's billable codes as the decision asks for them (``core.model.BillableCodes``):
    a handle that reads the list on first use, on whichever process decides."""

    applies_from: date = APPLIES_FROM

    def is_billable(self, code: str) -> bool:
        return is_billable(code)


EDITION_CODES: Final = EditionCodes()


def edition() -> dict[str, str]:
    """What the summary records of the code set."""
    return {
        "edition": EDITION,
        "package": f"{PACKAGE} {PACKAGE_VERSION}",
        "applies_from": APPLIES_FROM.isoformat(),
    }
