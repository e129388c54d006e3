"""What the policy needs to know about each baclofen powder line.

Turns the parsed columns of validated lines (``typed.py``) into facts, with reference data
(commercial strengths, shortages, the spasticity value set) applied as of each line's
service date. The rules in
``rules.py`` are plain boolean masks over these facts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pa_batch import normalize
from pa_batch.reference import ANY_VERSION, ReferenceData

# the terms of a policy version that decide a line, carried on its facts
POLICY_TERMS = (
    "oral_max_mg_per_unit",
    "intrathecal_max_mg_per_ml",
    "approval_months",
    "oral_pediatric_age",
    "intrathecal_pediatric_age",
)

MG = "mg"
MG_PER_ML = "mg/mL"
_UNIT_LABEL = {normalize.MASS: MG, normalize.CONCENTRATION: MG_PER_ML, normalize.PERCENT: "%"}
_USABLE_KINDS = {
    "oral": (normalize.MASS, normalize.CONCENTRATION),  # one mL is the unit of a liquid
    "intrathecal": (normalize.CONCENTRATION,),
}


def line_facts(
    parsed: pd.DataFrame, diagnosis_tokens: pd.DataFrame, reference: ReferenceData
) -> pd.DataFrame:
    """Facts for validated baclofen powder lines.

    ``parsed`` holds their parsed columns (``service_date`` and the powder columns of
    ``typed.py``); ``diagnosis_tokens`` their diagnosis codes, one row per token with ``row``
    the line's position in ``parsed``.
    """
    route = parsed["route"]
    unit = parsed[["unit_kind", "unit_factor"]].set_axis(["kind", "factor"], axis=1)
    amount = parsed["amount"]
    service_date = parsed["service_date"]
    birth_date = parsed["birth_date"]

    strength_given = amount.notna() & unit["kind"].notna()
    unit_fits_route = _usable_kind(route, unit["kind"])
    usable = strength_given & unit_fits_route
    strength = normalize.normalized_strength(amount, unit["factor"]).where(strength_given)

    facts = pd.DataFrame(
        {
            "route": route,
            "service_date": service_date,
            "birth_date": birth_date,
            "age_years": normalize.age_in_years(birth_date, service_date),
            "strength_given": strength_given,
            "strength_kind": unit["kind"],
            "strength": strength,
            "strength_unit": unit["kind"].map(_UNIT_LABEL).astype("str"),
            "unit_fits_route": unit_fits_route,
            "usable_strength": usable,
            "policy_version": parsed["policy_version"],
            **_version_terms(parsed["policy_version"].to_numpy(), reference),
        },
        index=parsed.index,
    )
    facts = facts.join(
        _diagnosis_facts(
            diagnosis_tokens, parsed["policy_version"].to_numpy(), parsed.index, reference
        )
    )
    keys = facts.loc[
        usable, ["route", "strength_kind", "strength", "service_date", "policy_version"]
    ]
    facts["commercial_strength_row"] = _active_row(keys, reference.commercial_strengths).reindex(
        facts.index
    )
    facts["shortage_row"] = _active_row(keys, reference.shortages).reindex(facts.index)
    return facts


def _usable_kind(route: pd.Series, kind: pd.Series) -> pd.Series:
    usable = pd.Series(False, index=route.index)
    for name, kinds in _USABLE_KINDS.items():
        usable |= (route == name).fillna(False) & kind.isin(kinds)
    return usable.astype(bool)


def _version_terms(version: np.ndarray, reference: ReferenceData) -> dict[str, np.ndarray]:
    """The limits, ages and approval length of the policy version in force on each line."""
    terms = {}
    for name in POLICY_TERMS:
        values = np.array([getattr(v, name) for v in reference.policy.versions])
        terms[name] = values[version]
    return terms


def _diagnosis_facts(
    tokens: pd.DataFrame, line_version: np.ndarray, index: pd.Index, reference: ReferenceData
) -> pd.DataFrame:
    """``has_diagnosis`` and ``spasticity_code`` (the first code in the value set of the
    line's policy version, or NA)."""
    lines = len(line_version)
    token_version = line_version[tokens["row"].to_numpy()]
    in_value_set = np.zeros(len(tokens), dtype=bool)
    for version in np.unique(token_version):
        mine = token_version == version
        in_value_set[mine] = (
            tokens.loc[mine, "code"]
            .str.startswith(reference.spasticity_prefixes[version])
            .to_numpy()
        )
    first_match = tokens[in_value_set].drop_duplicates("row")
    has_diagnosis = np.zeros(lines, dtype=bool)
    has_diagnosis[tokens["row"].to_numpy()] = True
    spasticity_code = pd.Series(pd.NA, index=range(lines), dtype="str")
    spasticity_code.iloc[first_match["row"].to_numpy()] = first_match["code"].to_numpy()
    return pd.DataFrame(
        {"has_diagnosis": has_diagnosis, "spasticity_code": spasticity_code.to_numpy()},
        index=index,
    )


def _active_row(keys: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    """The first row of a dated reference table matching each line and active on its date.

    Evaluated once per distinct (route, kind, strength, service date), then gathered.
    Windows include both ends; an empty end is open.
    """
    join = ["route", "strength_kind", "strength"]
    distinct = keys.drop_duplicates().reset_index(drop=True)
    candidates = distinct.reset_index(names="key").merge(
        table.rename(columns={"kind": "strength_kind", "version": "table_version"}),
        on=join,
        how="inner",
    )
    active = (candidates["start"].isna() | (candidates["start"] <= candidates["service_date"])) & (
        candidates["end"].isna() | (candidates["service_date"] <= candidates["end"])
    )
    if "table_version" in candidates:  # the policy's own list: the line's version only
        active &= (candidates["table_version"] == ANY_VERSION) | (
            candidates["table_version"] == candidates["policy_version"]
        )
    first = candidates[active].groupby("key")["reference_row"].min()
    distinct["row"] = first.reindex(distinct.index).astype("Int64")
    matched = keys.merge(distinct, on=[*join, "service_date", "policy_version"], how="left")["row"]
    matched.index = keys.index
    return matched
