"""The policy and its reference data as the decision sees them: plain data, loaded and
validated by ``pa_batch.policy``, read by the facts and rules. Nothing here reads a file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import numpy as np
import pandas as pd

ANY_VERSION = -1  # a reference row that holds under every policy version


class BillableCodes(Protocol):
    """An ICD-10-CM edition's billable codes, for service dates from ``applies_from``."""

    @property
    def applies_from(self) -> date: ...

    def is_billable(self, code: str) -> bool: ...


@dataclass(frozen=True)
class CommercialStrength:
    route: str  # as written (a route synonym)
    strength: float
    strength_unit: str


@dataclass(frozen=True)
class PolicyVersion:
    version: str
    effective_from: date | None  # None: open
    effective_to: date | None
    oral_max_mg_per_unit: float
    intrathecal_max_mg_per_ml: float
    approval_months: int
    oral_pediatric_age: int
    intrathecal_pediatric_age: int
    spasticity_prefixes: tuple[str, ...]  # normalized: upper case, no dot
    commercial_strengths: tuple[CommercialStrength, ...]


@dataclass(frozen=True)
class PolicyDefinition:
    policy_id: str
    title: str
    versions: tuple[PolicyVersion, ...]
    origin: str  # "shipped" or the path given to --policy
    sha256: str
    text: str  # the definition as read, kept with each run for auditors

    def version_index(self, service_date: pd.Series) -> np.ndarray:
        """For each date, the index of the version in force (-1 where none is)."""
        days = service_date.to_numpy(dtype="datetime64[D]")
        found = np.full(len(days), -1, dtype=np.int64)
        for index, version in enumerate(self.versions):
            start = np.datetime64(version.effective_from or date.min, "D")
            end = np.datetime64(version.effective_to or date.max, "D")
            found[(days >= start) & (days <= end) & (found < 0)] = index
        return found

    @property
    def versions_label(self) -> str:
        return ", ".join(v.version for v in self.versions)


@dataclass(frozen=True)
class ReferenceSource:
    """Where one reference file came from, for the summary and for auditors."""

    name: str
    origin: str  # "default", "policy definition", or the path of the override
    sha256: str
    rows: int
    # the file's bytes, kept with the run so explain reads what decided it (None: the
    # policy definition's own list, kept as the run's policy.toml)
    payload: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ReferenceData:
    """Reference data, normalized: strengths in mg or mg/mL, dates as datetime64[s].

    The commercial strengths and the spasticity value set come from the policy version in
    force on a line's service date, unless a file in --reference-dir replaces them for every
    version (then ``version`` is -1).
    """

    product_ndcs: frozenset[str]
    # columns: route, kind, strength, start, end (NaT = open), reference_row, version
    commercial_strengths: pd.DataFrame
    shortages: pd.DataFrame
    spasticity_prefixes: tuple[tuple[str, ...], ...]  # by policy version index
    sources: tuple[ReferenceSource, ...]
    policy: PolicyDefinition
    billable: BillableCodes  # read lazily: a run whose dates it does not describe never reads it
