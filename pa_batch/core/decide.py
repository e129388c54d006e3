"""The decision (docs/contract.md §4), assembled in one place from the criteria and
advisories registry.

Investigational if any investigational reason; else denied if any reason; else approved.
Reason and advisory codes are joined by ``|`` in registry order. The decision and the joined
codes are categoricals: a few distinct values over many lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pa_batch.core import normalize
from pa_batch.core.outcomes import APPROVED, DENIED, INVESTIGATIONAL
from pa_batch.core.rules import ADVISORIES, CRITERIA

CODE_SEPARATOR = "|"


def decide(facts: pd.DataFrame) -> pd.DataFrame:
    """Decision, reasons, advisories and approval window for each line of ``facts``."""
    unmet = np.column_stack([np.asarray(c.unmet(facts), dtype=bool) for c in CRITERIA])
    forces_investigational = np.array([c.forces == INVESTIGATIONAL for c in CRITERIA])
    investigational = (unmet & forces_investigational).any(axis=1)
    denied = ~investigational & unmet.any(axis=1)
    outcome = np.where(investigational, 2, np.where(denied, 1, 0))
    decision = pd.Categorical.from_codes(outcome, [APPROVED, DENIED, INVESTIGATIONAL])

    advised = np.column_stack([np.asarray(a.applies(facts), dtype=bool) for a in ADVISORIES])
    approved = pd.Series(outcome == 0, index=facts.index)
    approval_start = facts["service_date"].where(approved)
    return pd.DataFrame(
        {
            "decision": pd.Series(decision, index=facts.index),
            "reasons": _joined_codes(unmet, [c.code for c in CRITERIA], facts.index),
            "advisories": _joined_codes(advised, [a.code for a in ADVISORIES], facts.index),
            "approval_start": approval_start,
            "approval_end": normalize.add_calendar_months_minus_one_day(
                approval_start, facts["approval_months"].to_numpy()
            ),
        },
        index=facts.index,
    )


def _joined_codes(flags: np.ndarray, codes: Sequence[str], index: pd.Index) -> pd.Series:
    """Codes joined in registry order, computed once per distinct combination of flags (a
    categorical: a batch holds each combination once)."""
    weights = 1 << np.arange(len(codes), dtype=np.int64)
    combination = flags.astype(np.int64) @ weights
    # the combinations present, ascending, and each line's number among them: counted over
    # all 2**codes combinations (a few thousand), not sorted
    present = np.bincount(combination, minlength=1 << len(codes)) > 0
    distinct = np.flatnonzero(present)
    number = np.cumsum(present) - 1
    position = number[combination]
    labels = [
        CODE_SEPARATOR.join(code for bit, code in enumerate(codes) if value >> bit & 1)
        for value in distinct.tolist()
    ]
    return pd.Series(pd.Categorical.from_codes(position, labels), index=index)
