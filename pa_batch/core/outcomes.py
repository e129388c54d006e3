"""The five outcomes a record can have: exactly one each, and the counts add up."""

from typing import Final

APPROVED: Final = "approved"
DENIED: Final = "denied"
INVESTIGATIONAL: Final = "investigational"
OUT_OF_SCOPE: Final = "out_of_scope"
REJECTED: Final = "rejected"
OUTCOMES: Final = (APPROVED, DENIED, INVESTIGATIONAL, OUT_OF_SCOPE, REJECTED)
DECISIONS: Final = (APPROVED, DENIED, INVESTIGATIONAL)  # the outcomes of a decided line
