"""The screen: which records of a batch are certainly valid and certainly out of scope, found
by Arrow compute over the whole batch before any record becomes a pandas object.

A nightly mix is 99% other drugs. Such a record needs no reject and no decision, only to be
counted out of scope, yet the full path (``batch.scope_batch``: every column parsed into
pandas, the record contract checked, scope found) costs the same for it as for a powder
line. The screen takes it out first when

* every required value is present (trimmed, not empty),
* its line number, service date and NDC are valid,
* its NDC is not a listed product, and its drug name does not name baclofen powder.

Each test is the full path's own, not a second reading of the contract: line numbers, dates
and drug names are evaluated by the same ``normalize`` functions on the batch's distinct
values (Arrow's dictionary encoding finds them); NDCs, nearly all distinct, by one RE2 match
of the forms ``normalize.ndc`` accepts, and by the exact spellings a listed product can have.
So a screened-out record is exactly one the full path would count out of scope, nothing
else; everything else takes the full path unchanged (``tests/test_screen.py`` holds the two
equal on generated batches).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pa_batch.core import normalize, typed
from pa_batch.core.arrow_text import TextCells, trimmed
from pa_batch.core.model import ReferenceData
from pa_batch.schemas.claim_extract import REQUIRED_COLUMNS

# the forms normalize.ndc accepts: 11 digits, or hyphenated 5-4-2, 4-4-2, 5-3-2, 5-4-1
NDC_FORMS = (
    r"^(?:[0-9]{11}|[0-9]{5}-[0-9]{4}-[0-9]{2}|[0-9]{4}-[0-9]{4}-[0-9]{2}"
    r"|[0-9]{5}-[0-9]{3}-[0-9]{2}|[0-9]{5}-[0-9]{4}-[0-9])$"
)


# the share of a batch's records that must be candidates (other drugs, a valid NDC form) for
# the screen to go on: below it the full path's saving does not pay for the screen (measured:
# the screen costs about half the full path a record)
WORTH_SCREENING = 0.5
# the records of a batch's start that tell whether it is clearly mostly powder lines
SAMPLE_RECORDS = 2048


def certainly_out_of_scope(
    raw: Mapping[str, pa.Array], given_typed: Mapping[str, pa.Array], reference: ReferenceData
) -> np.ndarray | None:
    """True for each record the full path would find valid and out of scope; None when no
    record can be screened (a required column absent: every record fails on it) or too few
    to be worth it (``WORTH_SCREENING``)."""
    if any(name not in raw for name in REQUIRED_COLUMNS):
        return None
    # scope first: where most records are baclofen powder lines (an all-powder extract), the
    # full path checks them anyway and the screen would only add its own cost. A batch's
    # first records tell that cheaply: where they are clearly mostly powder lines, the
    # screen stands aside at once (whether it screens changes no outcome, only the time)
    length = len(raw["ndc"])
    if length >= 2 * SAMPLE_RECORDS:
        sample = (
            raw.take(pa.array(np.arange(SAMPLE_RECORDS)))
            if isinstance(raw, TextCells)
            else {name: cells.slice(0, SAMPLE_RECORDS) for name, cells in raw.items()}
        )
        if _other_drugs(sample, trimmed(sample["ndc"]), reference).mean() < WORTH_SCREENING / 2:
            return None
    ndc = trimmed(raw["ndc"])
    passes = _other_drugs(raw, ndc, reference)
    if not passes.any() or passes.mean() < WORTH_SCREENING:
        return None
    # a typed line number or service date is checked as itself (a null fails there), never
    # turned into text for this: most records of a nightly mix never are
    text = {
        name: ndc if name == "ndc" else trimmed(raw[name])
        for name in REQUIRED_COLUMNS
        if name not in given_typed
    }
    for name in REQUIRED_COLUMNS:
        if name in text and text[name].null_count:
            passes &= text[name].is_valid().to_numpy(zero_copy_only=False)
    passes &= (
        typed.whole_numbers(given_typed["line_number"]).notna().to_numpy()
        if "line_number" in given_typed
        else _on_distinct(text["line_number"], normalize.line_number)
    )
    passes &= (
        typed.calendar_dates(given_typed["service_date"]).notna().to_numpy()
        if "service_date" in given_typed
        else _on_distinct(text["service_date"], normalize.dates)
    )
    return passes


def _other_drugs(
    raw: Mapping[str, pa.Array], ndc: pa.Array, reference: ReferenceData
) -> np.ndarray:
    """True where the record's NDC (``ndc``: trimmed) has a valid form and is no listed
    product, and its drug name does not name baclofen powder: the screen's candidates."""
    passes = _true(pc.match_substring_regex(ndc, NDC_FORMS))
    if reference.product_ndcs:
        passes &= ~_true(pc.is_in(ndc, value_set=listed_spellings(reference.product_ndcs)))
    if "drug_name" in raw:
        passes &= ~_named_baclofen_powder(raw)
    return passes


def _named_baclofen_powder(raw: Mapping[str, pa.Array]) -> np.ndarray:
    """True where the trimmed drug name names baclofen powder (a missing name does not)."""
    held = raw.dictionary("drug_name") if isinstance(raw, TextCells) else None
    if held is None:
        return _on_distinct(trimmed(raw["drug_name"]), normalize.names_baclofen_powder)
    # read as a dictionary: each distinct name evaluated once, gathered by the indices
    per_entry = _on_distinct(trimmed(held.dictionary), normalize.names_baclofen_powder)
    entry = pc.fill_null(held.indices, len(held.dictionary))  # a missing name: no entry
    return np.append(per_entry, False)[entry.to_numpy(zero_copy_only=False)]


def _on_distinct(text: pa.Array, evaluate: Callable[[pd.Series], pd.Series]) -> np.ndarray:
    """True where ``evaluate`` of the cell is a value (not NA, not False); a missing cell is
    False. ``evaluate`` sees each distinct cell once."""
    encoded = pc.dictionary_encode(text)
    outcome = evaluate(pd.Series(encoded.dictionary, dtype="str"))
    found = (
        outcome.fillna(False).to_numpy(dtype=bool)
        if pd.api.types.is_bool_dtype(outcome.dtype)
        else outcome.notna().to_numpy()
    )
    per_entry = np.append(found, False)
    entry = pc.fill_null(encoded.indices, len(encoded.dictionary))
    return per_entry[entry.to_numpy(zero_copy_only=False)]


def _true(mask: pa.Array) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


@lru_cache(maxsize=8)
def listed_spellings(product_ndcs: frozenset[str]) -> pa.Array:
    """Every text ``normalize.ndc`` turns into a listed product's NDC: the 11 digits, and
    each hyphenated form whose dropped padding digit is a zero (``00002-0100-01`` is also
    ``0002-0100-01``). Each candidate is kept only if ``normalize.ndc`` agrees."""
    candidates: list[str] = []
    for digits in sorted(product_ndcs):
        labeler, product, package = digits[:5], digits[5:9], digits[9:]
        candidates += [
            digits,
            f"{labeler}-{product}-{package}",  # 5-4-2
            f"{labeler[1:]}-{product}-{package}",  # 4-4-2
            f"{labeler}-{product[1:]}-{package}",  # 5-3-2
            f"{labeler}-{product}-{package[1:]}",  # 5-4-1
        ]
    spelled = pd.Series(candidates, dtype="str")
    normalized = normalize.ndc(spelled)
    owner = pd.Series([d for d in sorted(product_ndcs) for _ in range(5)], dtype="str")
    return pa.array(spelled[(normalized == owner).fillna(False)].unique(), type=pa.string())
