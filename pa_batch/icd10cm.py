"""Which ICD-10-CM codes are billable: the code set as shipped by the pinned
``simple-icd-10-cm`` package, whose version is its edition (1.5.0: FY2026, the April 1,
2026 release). Used by the DX_NOT_BILLABLE advisory, for service dates the edition
describes (on or after 2025-10-01, when FY2026 began).

The code set loads on first use (about two seconds) and each distinct code is looked up once
per process.
"""

from __future__ import annotations

import warnings
from datetime import date
from functools import cache
from typing import Final

PACKAGE: Final = "simple-icd-10-cm"
PACKAGE_VERSION: Final = "1.5.0"  # pinned exactly in pyproject.toml: it is the code set's edition
EDITION: Final = "ICD-10-CM FY2026 (April 1, 2026 release)"
APPLIES_FROM: Final = date(2025, 10, 1)


@cache
def _code_set():
    # the package loads its data through importlib.resources' legacy read_text, which warns
    # on Python >= 3.11: its deprecation, not ours, and harmless at the pinned version
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import simple_icd_10_cm
    return simple_icd_10_cm


@cache
def is_billable(code: str) -> bool:
    """A billable (leaf) code of the edition; ``code`` may carry its dot or not."""
    code_set = _code_set()
    return bool(code_set.is_valid_item(code) and code_set.is_leaf(code))


def edition() -> dict[str, str]:
    """What the summary records of the code set."""
    from importlib.metadata import version

    return {
        "edition": EDITION,
        "package": f"{PACKAGE} {version(PACKAGE)}",
        "applies_from": APPLIES_FROM.isoformat(),
    }
