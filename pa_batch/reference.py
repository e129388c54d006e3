"""Reference data of SPEC §6: shipped defaults, each replaceable by a CSV in --reference-dir.

Each file is validated when loaded; the first problem fails the run (exit 1) with the file,
the column and the data row number, never the cell's value.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from pa_batch import normalize
from pa_batch.errors import RunError

PRODUCTS = "products.csv"
COMMERCIAL_STRENGTHS = "commercial_strengths.csv"
SHORTAGES = "shortages.csv"
SPASTICITY_CODES = "spasticity_codes.csv"
REFERENCE_FILES = (PRODUCTS, COMMERCIAL_STRENGTHS, SHORTAGES, SPASTICITY_CODES)

_COLUMNS = {
    PRODUCTS: ("ndc", "description"),
    COMMERCIAL_STRENGTHS: ("route", "strength", "strength_unit", "available_from", "available_to"),
    SHORTAGES: ("route", "strength", "strength_unit", "start_date", "end_date"),
    SPASTICITY_CODES: ("code_prefix", "description"),
}
_OPTIONAL = {"description", "available_from", "available_to", "end_date"}
_PREFIX_PATTERN = r"[A-Z][0-9][0-9A-Z]{0,5}"


@dataclass(frozen=True)
class ReferenceSource:
    """Where one reference file came from, for the summary and for auditors."""

    name: str
    origin: str  # "default" or the path of the override
    sha256: str
    rows: int


@dataclass(frozen=True)
class ReferenceData:
    """Reference data, normalized: strengths in mg or mg/mL, dates as datetime64[s]."""

    product_ndcs: frozenset[str]
    # columns: route, kind, strength, start, end (NaT = open); one row per dated window
    commercial_strengths: pd.DataFrame
    shortages: pd.DataFrame
    spasticity_prefixes: tuple[str, ...]
    sources: tuple[ReferenceSource, ...]


def load_reference(reference_dir: Path | None = None) -> ReferenceData:
    """Load every reference file: the one in ``reference_dir`` when present, else the default."""
    if reference_dir is not None and not reference_dir.is_dir():
        raise RunError("reference directory not found", file=str(reference_dir))
    frames: dict[str, pd.DataFrame] = {}
    sources = []
    for name in REFERENCE_FILES:
        override = reference_dir / name if reference_dir is not None else None
        if override is not None and override.exists():
            origin = str(override)
            try:
                payload = override.read_bytes()
            except OSError as error:
                raise RunError(
                    f"cannot read reference file ({error.strerror})", file=origin
                ) from None
        else:
            origin = "default"
            payload = resources.files("pa_batch.reference_data").joinpath(name).read_bytes()
        label = name if origin == "default" else origin
        frames[name] = _read_reference_csv(payload, label, _COLUMNS[name])
        sources.append(
            ReferenceSource(name, origin, hashlib.sha256(payload).hexdigest(), len(frames[name]))
        )
    labels = {s.name: (s.name if s.origin == "default" else s.origin) for s in sources}
    return ReferenceData(
        product_ndcs=_products(frames[PRODUCTS], labels[PRODUCTS]),
        commercial_strengths=_dated_strengths(
            frames[COMMERCIAL_STRENGTHS],
            labels[COMMERCIAL_STRENGTHS],
            "available_from",
            "available_to",
        ),
        shortages=_dated_strengths(frames[SHORTAGES], labels[SHORTAGES], "start_date", "end_date"),
        spasticity_prefixes=_spasticity_prefixes(
            frames[SPASTICITY_CODES], labels[SPASTICITY_CODES]
        ),
        sources=tuple(sources),
    )


def _read_reference_csv(payload: bytes, label: str, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        text = payload.decode("utf-8-sig")
        frame = pd.read_csv(io.StringIO(text), dtype="str", keep_default_na=False, na_filter=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        raise RunError("not a readable UTF-8 CSV file", file=label) from None
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    if frame.columns.duplicated().any():
        duplicate = frame.columns[frame.columns.duplicated()][0]
        raise RunError("duplicate column", file=label, column=duplicate)
    for column in columns:
        if column not in frame.columns:
            if column in _OPTIONAL:
                frame[column] = ""
            else:
                raise RunError("required column missing", file=label, column=column)
    frame = frame[list(columns)].apply(normalize.text)
    for column in columns:
        if column not in _OPTIONAL:
            _fail_on_first(frame[column].isna(), label, column, "missing value")
    return frame


def _fail_on_first(bad: pd.Series, label: str, column: str, problem: str) -> None:
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0]) + 1
        raise RunError(f"row {row}: {problem}", file=label, column=column)


def _products(frame: pd.DataFrame, label: str) -> frozenset[str]:
    ndcs = normalize.ndc(frame["ndc"])
    _fail_on_first(ndcs.isna(), label, "ndc", "invalid NDC")
    return frozenset(ndcs.tolist())


def _dated_strengths(frame: pd.DataFrame, label: str, start: str, end: str) -> pd.DataFrame:
    route = normalize.route(frame["route"])
    _fail_on_first(
        ~route.isin(["oral", "intrathecal"]), label, "route", "must be oral or intrathecal"
    )
    amount = normalize.strength(frame["strength"])
    _fail_on_first(amount.isna(), label, "strength", "must be a number > 0")
    unit = normalize.strength_unit(frame["strength_unit"])
    _fail_on_first(unit["kind"].isna(), label, "strength_unit", "unknown unit")
    starts = normalize.dates(frame[start])
    ends = normalize.dates(frame[end])
    _fail_on_first(frame[start].notna() & starts.isna(), label, start, "invalid date")
    _fail_on_first(frame[end].notna() & ends.isna(), label, end, "invalid date")
    _fail_on_first(starts.notna() & ends.notna() & (ends < starts), label, end, "before the start")
    return pd.DataFrame(
        {
            "route": route,
            "kind": unit["kind"],
            "strength": normalize.normalized_strength(amount, unit["factor"]),
            "start": starts,
            "end": ends,
            "reference_row": range(1, len(frame) + 1),
        }
    )


def _spasticity_prefixes(frame: pd.DataFrame, label: str) -> tuple[str, ...]:
    prefixes = frame["code_prefix"].str.upper().str.replace(".", "", regex=False)
    _fail_on_first(
        ~prefixes.str.fullmatch(_PREFIX_PATTERN).astype(bool),
        label,
        "code_prefix",
        "not an ICD-10-CM code prefix",
    )
    return tuple(dict.fromkeys(prefixes.tolist()))
