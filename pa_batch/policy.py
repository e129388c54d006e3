"""The policy's identity and its numeric limits (docs/contract.md §1), in one place."""

from __future__ import annotations

from typing import Final

POLICY_ID: Final = "baclofen-powder"
POLICY_VERSION: Final = "2024.1"
POLICY_TITLE: Final = "Baclofen Powder (compounded bulk baclofen)"

ORAL_MAX_MG_PER_UNIT: Final = 20.0
INTRATHECAL_MAX_MG_PER_ML: Final = 2.0
APPROVAL_MONTHS: Final = 12
ORAL_PEDIATRIC_AGE: Final = 12
INTRATHECAL_PEDIATRIC_AGE: Final = 4

APPROVED: Final = "approved"
DENIED: Final = "denied"
INVESTIGATIONAL: Final = "investigational"
OUT_OF_SCOPE: Final = "out_of_scope"
REJECTED: Final = "rejected"
OUTCOMES: Final = (APPROVED, DENIED, INVESTIGATIONAL, OUT_OF_SCOPE, REJECTED)
