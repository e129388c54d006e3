"""The policy's criteria (docs/contract.md §4), one named unit per reason code, in reporting order.

Each unit carries its reason code, the decision it forces, the policy sentence it
implements, and a pure vectorized function from line facts (``facts.py``) to a boolean mask:
True where the criterion is NOT met and the code is reported. ``decide.py`` assembles the
decision from this registry; the README's reason-code table is generated from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from pa_batch.core.outcomes import DENIED, INVESTIGATIONAL

Mask = Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class Criterion:
    """An unmet-criterion check: where ``unmet(facts)`` is True, ``code`` is reported."""

    code: str
    forces: str  # the decision it forces: investigational or denied
    clause: str  # the policy sentence it implements
    when: str  # when it is reported, in plain words
    unmet: Mask


@dataclass(frozen=True)
class Advisory:
    """A note that never changes the decision."""

    code: str
    clause: str
    when: str
    applies: Mask


def _is(route: str) -> Mask:
    return lambda facts: (facts["route"] == route).fillna(False).astype(bool)


_oral = _is("oral")
_intrathecal = _is("intrathecal")
_dosed_route = lambda facts: _oral(facts) | _intrathecal(facts)  # noqa: E731


def _over(facts: pd.DataFrame, limit: str) -> pd.Series:
    """The normalized strength above the policy version's ``limit`` (a facts column)."""
    return (facts["strength"] > facts[limit]).fillna(False).astype(bool)


def _younger_than(facts: pd.DataFrame, age: str) -> pd.Series:
    return (facts["age_years"] < facts[age]).fillna(False).astype(bool)


CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        "INDICATION_NOT_COVERED",
        INVESTIGATIONAL,
        "The patient has spasticity; baclofen powder is investigational for all other indications.",
        "diagnosis codes present, none in the spasticity value set",
        lambda f: f["has_diagnosis"] & f["spasticity_code"].isna(),
    ),
    Criterion(
        "TOPICAL_ROUTE",
        INVESTIGATIONAL,
        "Off-label compounded topical baclofen is not proven safe or effective.",
        "route is topical",
        _is("topical"),
    ),
    Criterion(
        "ROUTE_NOT_COVERED",
        INVESTIGATIONAL,
        "Only an oral dose or an intrathecal concentration may be considered medically "
        "necessary; baclofen powder is investigational for all other uses.",
        "route is other than oral, intrathecal or topical",
        _is("other"),
    ),
    Criterion(
        "DX_MISSING",
        DENIED,
        "The patient has spasticity.",
        "no diagnosis code",
        lambda f: ~f["has_diagnosis"],
    ),
    Criterion(
        "ROUTE_MISSING",
        DENIED,
        "The requested oral dose or intrathecal concentration is within its limit.",
        "route missing",
        lambda f: f["route"].isna(),
    ),
    Criterion(
        "STRENGTH_MISSING",
        DENIED,
        "The requested oral dose or intrathecal concentration is within its limit.",
        "oral or intrathecal, and strength or unit missing",
        lambda f: _dosed_route(f) & ~f["strength_given"],
    ),
    Criterion(
        "STRENGTH_UNIT_INVALID",
        DENIED,
        "The requested oral dose does not exceed 20 mg per unit, or the requested intrathecal "
        "concentration does not exceed 2 mg/mL.",
        "oral with a percent strength; intrathecal with a mass or a percent",
        lambda f: _dosed_route(f) & f["strength_kind"].notna() & ~f["unit_fits_route"],
    ),
    Criterion(
        "ORAL_DOSE_EXCEEDS_LIMIT",
        DENIED,
        "The requested oral dose does not exceed 20 mg per unit.",
        "oral dose per unit > the oral limit of the policy version in force (20 mg)",
        lambda f: _oral(f) & f["usable_strength"] & _over(f, "oral_max_mg_per_unit"),
    ),
    Criterion(
        "INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT",
        DENIED,
        "The requested intrathecal concentration does not exceed 2 mg/mL.",
        "intrathecal concentration > the intrathecal limit of the policy version in force "
        "(2 mg/mL)",
        lambda f: _intrathecal(f) & f["usable_strength"] & _over(f, "intrathecal_max_mg_per_ml"),
    ),
    Criterion(
        "COMMERCIALLY_AVAILABLE",
        DENIED,
        "The requested strength is not commercially available, or it is not available "
        "commercially due to a shortage.",
        "the strength (same route, same kind) is in the commercial list (the policy version's, "
        "or commercial_strengths.csv) on the service date and no shortage of it is active then",
        lambda f: (
            f["usable_strength"] & f["commercial_strength_row"].notna() & f["shortage_row"].isna()
        ),
    ),
)

ADVISORIES: tuple[Advisory, ...] = (
    Advisory(
        "PEDIATRIC_ORAL_UNDER_12",
        "Safety and efficacy are not established under 12 years (oral).",
        "oral and age < 12 on the service date (the policy version's oral age)",
        lambda f: _oral(f) & _younger_than(f, "oral_pediatric_age"),
    ),
    Advisory(
        "PEDIATRIC_INTRATHECAL_UNDER_4",
        "Safety and efficacy are not established under 4 years (intrathecal).",
        "intrathecal and age < 4 on the service date (the policy version's intrathecal age)",
        lambda f: _intrathecal(f) & _younger_than(f, "intrathecal_pediatric_age"),
    ),
    Advisory(
        "DX_NOT_BILLABLE",
        "Claims carry billable ICD-10-CM codes (not a criterion of this policy: an advisory).",
        "a diagnosis code that is not a billable (leaf) code of ICD-10-CM FY2026, for "
        "service dates on or after 2025-10-01 (unknown codes and category headers such as "
        "bare G35)",
        lambda f: f["dx_not_billable"],
    ),
)
