"""The policy's criteria (docs/contract.md §4), one named unit per reason code, in reporting order.

Each unit carries its reason code, the decision it forces, the policy sentence it
implements, and a pure vectorized function from line facts (``facts.py``) to a boolean mask:
True where the criterion is NOT met and the code is reported. ``decide.py`` assembles the
decision from this registry; the README's reason-code table is generated from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from pa_batch.core.model import PolicyVersion
from pa_batch.core.outcomes import DENIED, INVESTIGATIONAL

Mask = Callable[[pd.DataFrame], pd.Series]


def version_terms(version: PolicyVersion) -> dict[str, str]:
    """A policy version's terms as a clause quotes them: the numbers as compared, unrounded
    (20, 2.5, 20.000001), and the version's name."""
    return {
        "version": version.version,
        "oral_max_mg_per_unit": number_text(version.oral_max_mg_per_unit),
        "intrathecal_max_mg_per_ml": number_text(version.intrathecal_max_mg_per_ml),
        "approval_months": str(version.approval_months),
        "oral_pediatric_age": str(version.oral_pediatric_age),
        "intrathecal_pediatric_age": str(version.intrathecal_pediatric_age),
    }


def number_text(value: float) -> str:
    """A number exactly as a rule compared it: 20, 2.5, 20.000001 (never rounded)."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


# What a criterion looks at on a line, as the audit shows it beside the requirement.
DIAGNOSES = "the diagnosis codes given"
ROUTE = "the route given and its normalized form"
STRENGTH_GIVEN = "the strength and unit given"
STRENGTH = "the normalized strength"
OBSERVATIONS = (DIAGNOSES, ROUTE, STRENGTH_GIVEN, STRENGTH)


@dataclass(frozen=True)
class Criterion:
    """An unmet-criterion check: where ``unmet(facts)`` is True, ``code`` is reported.

    ``name`` says what the criterion asks for, so that "pass" reads the right way round
    ("spasticity indication: pass"); ``code`` is what it reports when it fails.
    ``clause`` and ``requirement`` are templates filled with the terms of the policy version
    that decided a line (``version_terms``): a clause never quotes another version's limit.
    ``routes``: the routes it is evaluated for (None: every line); elsewhere it is n/a.
    ``observes``: what on the line it looks at (one of ``OBSERVATIONS``), which explain shows.
    """

    code: str
    name: str
    forces: str  # the decision it forces: investigational or denied
    clause: str  # the policy sentence it implements (a template)
    requirement: str  # what a line must show to pass (a template)
    when: str  # when it is reported, in plain words (docs)
    unmet: Mask
    routes: tuple[str, ...] | None = None
    observes: str = field(kw_only=True)
    limit: str | None = field(default=None, kw_only=True)  # the version's term it compares to

    def limit_under(self, version: PolicyVersion) -> float | None:
        """The number this criterion compares to under ``version`` (None: it has none)."""
        return None if self.limit is None else float(getattr(version, self.limit))

    def clause_under(self, version: PolicyVersion) -> str:
        return self.clause.format(**version_terms(version))

    def requirement_under(self, version: PolicyVersion) -> str:
        return self.requirement.format(**version_terms(version))


@dataclass(frozen=True)
class Advisory:
    """A note that never changes the decision (``clause``: a template, as a criterion's)."""

    code: str
    clause: str
    when: str
    applies: Mask

    def clause_under(self, version: PolicyVersion) -> str:
        return self.clause.format(**version_terms(version))


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


DOSED = ("oral", "intrathecal")

CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        "INDICATION_NOT_COVERED",
        "spasticity indication",
        INVESTIGATIONAL,
        "The patient has spasticity; baclofen powder is investigational for all other indications.",
        "a diagnosis code in the spasticity value set of policy version {version}",
        "diagnosis codes present, none in the spasticity value set",
        lambda f: f["has_diagnosis"] & f["spasticity_code"].isna(),
        observes=DIAGNOSES,
    ),
    Criterion(
        "TOPICAL_ROUTE",
        "not a topical route",
        INVESTIGATIONAL,
        "Off-label compounded topical baclofen is not proven safe or effective.",
        "a route that is not topical",
        "route is topical",
        _is("topical"),
        observes=ROUTE,
    ),
    Criterion(
        "ROUTE_NOT_COVERED",
        "a covered route",
        INVESTIGATIONAL,
        "Only an oral dose or an intrathecal concentration may be considered medically "
        "necessary; baclofen powder is investigational for all other uses.",
        "oral or intrathecal (topical is judged apart)",
        "route is other than oral, intrathecal or topical",
        _is("other"),
        observes=ROUTE,
    ),
    Criterion(
        "DX_MISSING",
        "a diagnosis given",
        DENIED,
        "The patient has spasticity.",
        "at least one diagnosis code",
        "no diagnosis code",
        lambda f: ~f["has_diagnosis"],
        observes=DIAGNOSES,
    ),
    Criterion(
        "ROUTE_MISSING",
        "a route given",
        DENIED,
        "The requested oral dose or intrathecal concentration is within its limit.",
        "a route",
        "route missing",
        lambda f: f["route"].isna(),
        observes=ROUTE,
    ),
    Criterion(
        "STRENGTH_MISSING",
        "a strength and unit given",
        DENIED,
        "The requested oral dose or intrathecal concentration is within its limit.",
        "a strength and its unit",
        "oral or intrathecal, and strength or unit missing",
        lambda f: _dosed_route(f) & ~f["strength_given"],
        routes=DOSED,
        observes=STRENGTH_GIVEN,
    ),
    Criterion(
        "STRENGTH_UNIT_INVALID",
        "a unit that fits the route",
        DENIED,
        "The requested oral dose does not exceed {oral_max_mg_per_unit} mg per unit, or the "
        "requested intrathecal concentration does not exceed {intrathecal_max_mg_per_ml} mg/mL.",
        "oral: a mass or a concentration; intrathecal: a concentration",
        "oral with a percent strength; intrathecal with a mass or a percent",
        lambda f: _dosed_route(f) & f["strength_kind"].notna() & ~f["unit_fits_route"],
        routes=DOSED,
        observes=STRENGTH_GIVEN,
    ),
    Criterion(
        "ORAL_DOSE_EXCEEDS_LIMIT",
        "oral dose within the limit",
        DENIED,
        "The requested oral dose does not exceed {oral_max_mg_per_unit} mg per unit.",
        "at most {oral_max_mg_per_unit} mg per unit (policy version {version})",
        "oral dose per unit > the oral limit of the policy version in force (20 mg)",
        lambda f: _oral(f) & f["usable_strength"] & _over(f, "oral_max_mg_per_unit"),
        routes=("oral",),
        limit="oral_max_mg_per_unit",
        observes=STRENGTH,
    ),
    Criterion(
        "INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT",
        "intrathecal concentration within the limit",
        DENIED,
        "The requested intrathecal concentration does not exceed {intrathecal_max_mg_per_ml} "
        "mg/mL.",
        "at most {intrathecal_max_mg_per_ml} mg/mL (policy version {version})",
        "intrathecal concentration > the intrathecal limit of the policy version in force "
        "(2 mg/mL)",
        lambda f: _intrathecal(f) & f["usable_strength"] & _over(f, "intrathecal_max_mg_per_ml"),
        routes=("intrathecal",),
        limit="intrathecal_max_mg_per_ml",
        observes=STRENGTH,
    ),
    Criterion(
        "COMMERCIALLY_AVAILABLE",
        "not commercially available, or in shortage",
        DENIED,
        "The requested strength is not commercially available, or it is not available "
        "commercially due to a shortage.",
        "not in the commercial list on the service date, or listed but in shortage then",
        "the strength (same route, same kind) is in the commercial list (the policy version's, "
        "or commercial_strengths.csv) on the service date and no shortage of it is active then",
        lambda f: (
            f["usable_strength"] & f["commercial_strength_row"].notna() & f["shortage_row"].isna()
        ),
        routes=DOSED,
        observes=STRENGTH,
    ),
)

ADVISORIES: tuple[Advisory, ...] = (
    Advisory(
        "PEDIATRIC_ORAL_UNDER_12",
        "Safety and efficacy are not established under {oral_pediatric_age} years (oral).",
        "oral and age < 12 on the service date (the policy version's oral age)",
        lambda f: _oral(f) & _younger_than(f, "oral_pediatric_age"),
    ),
    Advisory(
        "PEDIATRIC_INTRATHECAL_UNDER_4",
        "Safety and efficacy are not established under {intrathecal_pediatric_age} years "
        "(intrathecal).",
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
