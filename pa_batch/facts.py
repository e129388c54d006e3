"""What the policy needs to know about each baclofen powder line.

Turns the parsed columns of validated lines (``typed.py``) into facts, with reference data
(commercial strengths, shortages, the spasticity value set) applied as of each line's
service date. The rules in
``rules.py`` are plain boolean masks over these facts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pa_batch import icd10cm, normalize
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
            diagnosis_tokens,
            parsed["policy_version"].to_numpy(),
            parsed.index,
            reference,
            parsed["service_date"].reset_index(drop=True),
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
    tokens: pd.DataFrame,
    line_version: np.ndarray,
    index: pd.Index,
    reference: ReferenceData,
    service_date: pd.Series,
) -> pd.DataFrame:
    """``has_diagnosis``; the first code in the value set of the line's policy version
    (``spasticity_code``, as given on the claim, and the value-set entry it met); and
    ``dx_not_billable``."""
    lines = len(line_version)
    token_version = line_version[tokens["row"].to_numpy()]
    # the value-set entry each token meets: the first prefix of the version's list it starts
    # with, evaluated once per distinct (version, code) and gathered back
    codes, distinct_codes = pd.factorize(tokens["code"])
    versions = len(reference.spasticity_prefixes)
    pair_keys, pair_index = np.unique(codes * versions + token_version, return_inverse=True)
    distinct_entry = np.full(len(pair_keys), None, dtype=object)
    for position, key in enumerate(pair_keys.tolist()):
        code, version = distinct_codes[key // versions], key % versions
        distinct_entry[position] = next(
            (p for p in reference.spasticity_prefixes[version] if code.startswith(p)), None
        )
    distinct_dotted = np.array(
        [None if prefix is None else _dotted(prefix) for prefix in distinct_entry], dtype=object
    )
    entry = distinct_dotted[pair_index] if len(pair_index) else np.empty(0, dtype=object)
    in_value_set = ~pd.isna(entry)
    # tokens come in line order: a line's first matching token is its first occurrence
    matched_rows = tokens["row"].to_numpy()[in_value_set]
    matched, first = np.unique(matched_rows, return_index=True)
    first_match = tokens[in_value_set].iloc[first]
    first_entry = entry[in_value_set][first]
    has_diagnosis = np.zeros(lines, dtype=bool)
    has_diagnosis[tokens["row"].to_numpy()] = True

    def per_line(values) -> pd.Categorical:
        """The matched lines' values, NA elsewhere: a categorical, the values being few."""
        codes, distinct = pd.factorize(np.asarray(values, dtype=object))
        line_codes = np.full(lines, -1, dtype=np.int64)
        line_codes[matched] = codes
        return pd.Categorical.from_codes(line_codes, pd.Index(distinct, dtype="str"))

    return pd.DataFrame(
        {
            "has_diagnosis": has_diagnosis,
            "spasticity_code": per_line(first_match["code"]),
            "spasticity_code_given": per_line(first_match["given"]),
            "spasticity_value_set_entry": per_line(first_entry),
            "dx_not_billable": _not_billable(tokens, lines, service_date),
        },
        index=index,
    )


def _dotted(code: str) -> str:
    """An ICD-10-CM code or prefix with its dot after the category: G801 -> G80.1."""
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def _not_billable(tokens: pd.DataFrame, lines: int, service_date: pd.Series) -> np.ndarray:
    """Lines with a diagnosis token that is not a billable code of the ICD-10-CM edition,
    where the edition describes the service date. Each distinct code is looked up once."""
    flagged = np.zeros(lines, dtype=bool)
    described = (service_date >= pd.Timestamp(icd10cm.APPLIES_FROM)).fillna(False).to_numpy()
    rows = tokens["row"].to_numpy()
    considered = described[rows]
    if not considered.any():
        return flagged
    codes, distinct = pd.factorize(tokens.loc[considered, "code"])
    billable = pc.is_in(
        pa.array(distinct, type=pa.string()), value_set=icd10cm.billable_code_array()
    ).to_numpy(zero_copy_only=False)
    flagged[rows[considered][~billable[codes]]] = True
    return flagged


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
