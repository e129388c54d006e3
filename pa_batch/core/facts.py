"""What the policy needs to know about each baclofen powder line.

Turns the parsed columns of validated lines (``typed.py``) into facts, with reference data
(commercial strengths, shortages, the spasticity value set) applied as of each line's
service date. The rules in
``rules.py`` are plain boolean masks over these facts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pa_batch.core import normalize
from pa_batch.core.model import ANY_VERSION, BillableCodes, ReferenceData

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
            "strength_unit": unit["kind"].map(_UNIT_LABEL),
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
    facts["commercial_strength_row"] = _active_row(facts, usable, reference.commercial_strengths)
    facts["shortage_row"] = _active_row(facts, usable, reference.shortages)
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
    rows = tokens["row"].to_numpy()
    token_version = line_version[rows]
    # the value-set entry each token meets: the first prefix of the version's list it starts
    # with, evaluated once per distinct (version, code) and gathered back
    codes, distinct_codes = pd.factorize(tokens["code"])
    distinct_codes = distinct_codes.tolist()  # a few hundred at most: the codes in use
    versions = len(reference.spasticity_prefixes)
    pair_keys, pair_index = np.unique(codes * versions + token_version, return_inverse=True)
    entries: dict[str, int] = {}  # dotted value-set entry -> category number
    pair_entry = np.full(len(pair_keys), -1, dtype=np.int64)
    for position, key in enumerate(pair_keys.tolist()):
        code, version = distinct_codes[key // versions], key % versions
        prefixes = reference.spasticity_prefixes[version]
        prefix = next((p for p in prefixes if code.startswith(p)), None)
        if prefix is not None:
            pair_entry[position] = entries.setdefault(_dotted(prefix), len(entries))
    token_entry = pair_entry[pair_index.reshape(-1)] if len(pair_index) else pair_entry[:0]
    in_value_set = np.flatnonzero(token_entry >= 0)
    # tokens come in line order: a line's first matching token is its first occurrence
    matched, first = np.unique(rows[in_value_set], return_index=True)
    first_token = in_value_set[first]
    has_diagnosis = np.zeros(lines, dtype=bool)
    has_diagnosis[rows] = True

    def per_line(token_codes: np.ndarray, categories) -> pd.Categorical:
        """The matched lines' values, NA elsewhere: a categorical, the values being few."""
        used, line_values = np.unique(token_codes[first_token], return_inverse=True)
        line_codes = np.full(lines, -1, dtype=np.int64)
        line_codes[matched] = line_values.reshape(-1)
        return pd.Categorical.from_codes(
            line_codes, pd.Index(np.asarray(categories, dtype=object)[used], dtype="str")
        )

    given_codes, distinct_given = pd.factorize(tokens["given"])
    return pd.DataFrame(
        {
            "has_diagnosis": has_diagnosis,
            "spasticity_code": per_line(codes, distinct_codes),
            "spasticity_code_given": per_line(given_codes, distinct_given),
            "spasticity_value_set_entry": per_line(token_entry, list(entries)),
            "dx_not_billable": _not_billable(
                rows, codes, distinct_codes, lines, service_date, reference.billable
            ),
        },
        index=index,
    )


def _dotted(code: str) -> str:
    """An ICD-10-CM code or prefix with its dot after the category: G801 -> G80.1."""
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def _not_billable(
    rows: np.ndarray,
    codes: np.ndarray,
    distinct: list[str],
    lines: int,
    service_date: pd.Series,
    edition: BillableCodes,
) -> np.ndarray:
    """Lines with a diagnosis token that is not a billable code of the ICD-10-CM edition,
    where the edition describes the service date. Each distinct code is looked up once."""
    flagged = np.zeros(lines, dtype=bool)
    described = (service_date >= pd.Timestamp(edition.applies_from)).fillna(False).to_numpy()
    considered = described[rows]
    if not considered.any():
        return flagged  # the code list is never read for runs it does not describe
    billable = np.array([edition.is_billable(code) for code in distinct], dtype=bool)
    flagged[rows[considered & ~billable[codes]]] = True
    return flagged


_STRENGTH_KEY = ["route", "strength_kind", "strength", "service_date", "policy_version"]


def _active_row(facts: pd.DataFrame, usable: pd.Series, table: pd.DataFrame) -> pd.Series:
    """The first row of a dated reference table matching each usable line and active on its
    date (NA elsewhere).

    Only lines whose (route, kind, strength) the table lists are looked at, and those once
    per distinct (route, kind, strength, service date, policy version), numbered as
    integers, then gathered. Windows include both ends; an empty end is open.
    """
    found = np.full(len(facts), -1, dtype=np.int64)
    positions = np.flatnonzero(usable.to_numpy(dtype=bool))
    if len(table) and len(positions):
        keys = facts[_STRENGTH_KEY].iloc[positions]
        triple, listed = _strength_codes(keys, table)
        positions, keys = positions[listed], keys[listed]
        if len(positions):
            day = keys["service_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
            version = keys["policy_version"].to_numpy().astype(np.int64)
            span = int(day.max() - day.min()) + 1
            combined = (triple[listed] * (int(version.max()) + 1) + version) * span
            codes, distinct_keys = pd.factorize(combined + (day - day.min()))
            first = np.empty(len(distinct_keys), dtype=np.int64)
            first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
            rows = _first_active(keys.iloc[first].reset_index(drop=True), table)
            found[positions] = rows[codes]
    return pd.Series(pd.arrays.IntegerArray(found, found < 0), index=facts.index)


def _strength_codes(keys: pd.DataFrame, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each line's (route, kind, strength) as one integer, and whether the table lists it."""
    route_codes, routes = pd.factorize(keys["route"])
    kind_codes, kinds = pd.factorize(keys["strength_kind"])
    strength_codes, strengths = pd.factorize(keys["strength"])
    triple = (route_codes * len(kinds) + kind_codes) * len(strengths) + strength_codes
    table_parts = [
        pd.Index(np.asarray(line_values, dtype=object)).get_indexer(table[name])
        for line_values, name in ((routes, "route"), (kinds, "kind"), (strengths, "strength"))
    ]
    known = np.logical_and.reduce([part >= 0 for part in table_parts])
    route_part, kind_part, strength_part = (part[known] for part in table_parts)
    listed_triples = (route_part * len(kinds) + kind_part) * len(strengths) + strength_part
    return triple, np.isin(triple, listed_triples)


# up to this many reference rows, each row is compared with every distinct key at once;
# beyond, the keys are joined to the table
_ROW_BY_ROW = 256


def _first_active(distinct: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """For each distinct line key, the first active matching table row; -1 where none."""
    if len(table) <= _ROW_BY_ROW:
        return _first_active_row_by_row(distinct, table)
    return _first_active_joined(distinct, table)


def _first_active_row_by_row(distinct: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """Table rows walked in order, each compared with every distinct key at once: a
    reference table holds tens of rows, a batch's distinct keys hundreds."""
    found = np.full(len(distinct), -1, dtype=np.int64)
    route = np.asarray(distinct["route"], dtype=object)
    kind = np.asarray(distinct["strength_kind"], dtype=object)
    strength = distinct["strength"].to_numpy(dtype=float)
    on = distinct["service_date"].to_numpy().astype("datetime64[s]")
    version = distinct["policy_version"].to_numpy()
    ordered = table.sort_values("reference_row", kind="stable")
    versions = ordered["version"] if "version" in ordered else pd.Series(ANY_VERSION, ordered.index)
    for row_route, row_kind, row_strength, start, end, row_version, reference_row in zip(
        ordered["route"].tolist(),
        ordered["kind"].tolist(),
        ordered["strength"].to_numpy(dtype=float),
        ordered["start"].to_numpy().astype("datetime64[s]"),
        ordered["end"].to_numpy().astype("datetime64[s]"),
        versions.tolist(),
        ordered["reference_row"].tolist(),
        strict=True,
    ):
        match = (found < 0) & (route == row_route) & (kind == row_kind) & (strength == row_strength)
        if not np.isnat(start):
            match &= on >= start
        if not np.isnat(end):
            match &= on <= end
        if row_version != ANY_VERSION:
            match &= version == row_version
        found[match] = reference_row
    return found


def _first_active_joined(distinct: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    join = ["route", "strength_kind", "strength"]
    distinct = distinct.astype({"route": "str", "strength_kind": "str"})  # as the table's
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
    found = np.full(len(distinct), -1, dtype=np.int64)
    found[first.index.to_numpy()] = first.to_numpy()
    return found
