"""Counts of outcomes and codes, one type from a batch to the whole run: taken where lines
are decided (on a worker, for the dask engine), added up batch by batch, and the few lines a
later step turns into duplicates subtracted rather than recounted."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

from pa_batch.core.outcomes import DECISIONS, OUTCOMES


def _counter() -> Counter:
    return Counter()


@dataclass
class Counts:
    rows_read: int = 0
    outcomes: Counter[str] = field(default_factory=_counter)  # every record: one outcome
    reasons: Counter[str] = field(default_factory=_counter)  # decided lines may carry several
    advisories: Counter[str] = field(default_factory=_counter)
    errors: Counter[str] = field(default_factory=_counter)  # a rejected record may carry several
    rejected_by_powder_line: Counter[str] = field(default_factory=_counter)  # yes/no/unknown
    by_month: Counter[tuple[str, str]] = field(default_factory=_counter)  # (YYYY-MM, decision)
    routes: Counter[str] = field(default_factory=_counter)  # normalized route of decided lines
    # spellings the contract does not map: a decided line's route given that normalized to
    # "other", and the strength_unit given of an INVALID_STRENGTH_UNIT reject (trimmed)
    unmapped_routes: Counter[str] = field(default_factory=_counter)
    unknown_units: Counter[str] = field(default_factory=_counter)

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Counts)))

    def __sub__(self, other: Counts) -> Counts:
        """The counts of ``self`` less those of ``other`` (a count that reaches 0 is gone)."""
        return Counts(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(Counts)))

    @property
    def decided(self) -> int:
        return sum(self.outcomes[decision] for decision in DECISIONS)

    def outcome_table(self) -> dict[str, int]:
        """Every outcome, zeros included, in the contract's order."""
        return {outcome: int(self.outcomes[outcome]) for outcome in OUTCOMES}
