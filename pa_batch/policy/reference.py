"""Reference data (docs/contract.md §5): shipped defaults, each replaceable by a CSV in
--reference-dir.

Each file is validated when loaded; the first problem fails the run (exit 1) with the file,
the column and the data row number, never the cell's value.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import replace
from importlib import resources

import pandas as pd

from pa_batch.core import normalize
from pa_batch.core.model import ANY_VERSION, PolicyDefinition, ReferenceData, ReferenceSource
from pa_batch.errors import RunError
from pa_batch.policy import icd10cm
from pa_batch.policy.definition import Place, load_policy

PRODUCTS = "products.csv"
COMMERCIAL_STRENGTHS = "commercial_strengths.csv"
SHORTAGES = "shortages.csv"
SPASTICITY_CODES = "spasticity_codes.csv"
REFERENCE_FILES = (PRODUCTS, COMMERCIAL_STRENGTHS, SHORTAGES, SPASTICITY_CODES)

_COLUMNS = {
    PRODUCTS: ("ndc", "description"),
    COMMERCIAL_STRENGTHS: (
        "route",
        "strength",
        "strength_unit",
        "start_date",
        "end_date",
        "description",
    ),
    SHORTAGES: ("route", "strength", "strength_unit", "start_date", "end_date", "description"),
    SPASTICITY_CODES: ("code_prefix", "description"),
}
# Both dated files name their window start_date / end_date; commercial_strengths.csv once
# said available_from / available_to, and those names are still read.
_OLD_NAMES = {COMMERCIAL_STRENGTHS: {"available_from": "start_date", "available_to": "end_date"}}
_OPTIONAL = {"description", "end_date"}
_OPTIONAL_BY_FILE = {COMMERCIAL_STRENGTHS: {"start_date"}}
_PREFIX_PATTERN = r"[A-Z][0-9][0-9A-Z]{0,5}"


def columns_of(name: str) -> tuple[str, ...]:
    return _COLUMNS[name]


def is_optional(name: str, column: str) -> bool:
    return column in _OPTIONAL | _OPTIONAL_BY_FILE.get(name, set())


def old_names_of(name: str) -> dict[str, str]:
    return _OLD_NAMES.get(name, {})


POLICY_ORIGIN = "policy definition"  # a list taken from the policy, not from a file
_FROM_POLICY = {COMMERCIAL_STRENGTHS, SPASTICITY_CODES}  # defaults live in the policy


def load_reference(
    reference_dir: Place | None = None, policy: PolicyDefinition | None = None
) -> ReferenceData:
    """Load every reference file: the one in ``reference_dir`` when present, else the default
    (shipped, or for commercial strengths and spasticity codes, the policy's own lists)."""
    policy = policy or load_policy()
    if reference_dir is not None and not reference_dir.is_dir():
        raise RunError("reference directory not found", file=str(reference_dir))
    if reference_dir is not None:
        _refuse_unknown_files(reference_dir)
    payloads: dict[str, bytes] = {}
    sources = []
    for name in REFERENCE_FILES:
        override = reference_dir / name if reference_dir is not None else None
        if (override is None or not override.exists()) and name in _FROM_POLICY:
            rows = sum(
                len(
                    v.commercial_strengths
                    if name == COMMERCIAL_STRENGTHS
                    else v.spasticity_prefixes
                )
                for v in policy.versions
            )
            sources.append(ReferenceSource(name, POLICY_ORIGIN, policy.sha256, rows))
            continue
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
            payload = resources.files("pa_batch.policy.data").joinpath(name).read_bytes()
        payloads[name] = payload
        sources.append(
            ReferenceSource(name, origin, hashlib.sha256(payload).hexdigest(), 0, payload)
        )
    key = (policy.origin, policy.sha256, tuple((s.name, s.origin, s.sha256) for s in sources))
    if key not in _PARSED:
        _PARSED[key] = _parse(policy, payloads, tuple(sources))
        while len(_PARSED) > _PARSED_KEPT:
            _PARSED.pop(next(iter(_PARSED)))
    return _PARSED[key]


# Parsed reference data by its policy and files' checksums: a notebook or a scheduler that
# runs again in the same process parses the same files once. Read-only once built.
_PARSED: dict[tuple, ReferenceData] = {}
_PARSED_KEPT = 4


def _parse(
    policy: PolicyDefinition, payloads: dict[str, bytes], sources: tuple[ReferenceSource, ...]
) -> ReferenceData:
    labels = {s.name: (s.name if s.origin == "default" else s.origin) for s in sources}
    frames = {
        name: _read_reference_csv(payload, labels[name], name) for name, payload in payloads.items()
    }
    sources = tuple(
        replace(s, rows=len(frames[s.name])) if s.name in frames else s for s in sources
    )
    if COMMERCIAL_STRENGTHS in frames:
        commercial = _dated_strengths(
            frames[COMMERCIAL_STRENGTHS], labels[COMMERCIAL_STRENGTHS]
        ).assign(version=ANY_VERSION)
    else:
        commercial = _policy_strengths(policy)
    if SPASTICITY_CODES in frames:
        prefixes = _spasticity_prefixes(frames[SPASTICITY_CODES], labels[SPASTICITY_CODES])
        spasticity = (prefixes,) * len(policy.versions)
    else:
        spasticity = tuple(version.spasticity_prefixes for version in policy.versions)
    return ReferenceData(
        product_ndcs=_products(frames[PRODUCTS], labels[PRODUCTS]),
        commercial_strengths=commercial,
        shortages=_dated_strengths(frames[SHORTAGES], labels[SHORTAGES]),
        spasticity_prefixes=spasticity,
        sources=sources,
        policy=policy,
        billable=icd10cm.EDITION_CODES,
    )


def _policy_strengths(policy: PolicyDefinition) -> pd.DataFrame:
    """Each version's commercial strengths, open-ended, ``reference_row`` its list position."""
    tables = []
    for index, version in enumerate(policy.versions):
        listed = pd.DataFrame(
            {
                "route": [s.route for s in version.commercial_strengths],
                "strength": [str(s.strength) for s in version.commercial_strengths],
                "strength_unit": [s.strength_unit for s in version.commercial_strengths],
                "start_date": [None] * len(version.commercial_strengths),
                "end_date": [None] * len(version.commercial_strengths),
            },
            dtype="str",
        )
        tables.append(_dated_strengths(listed, policy.origin).assign(version=index))
    return pd.concat(tables, ignore_index=True)


def _refuse_unknown_files(reference_dir: Place) -> None:
    """A file that is not a reference file name is a misspelling, never silently ignored."""
    for entry in sorted(reference_dir.iterdir(), key=lambda entry: entry.name):
        if entry.name not in REFERENCE_FILES and not entry.is_dir():
            raise RunError(
                "not a reference file name; expected " + ", ".join(REFERENCE_FILES),
                file=str(entry),
            )


def _read_reference_csv(payload: bytes, label: str, name: str) -> pd.DataFrame:
    columns = _COLUMNS[name]
    try:
        text = payload.decode("utf-8-sig")
        records = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except (UnicodeDecodeError, csv.Error):
        raise RunError("not a readable UTF-8 CSV file", file=label) from None
    if not records:
        raise RunError("not a readable UTF-8 CSV file: no header row", file=label)
    header = [str(column).strip().lower() for column in records[0]]
    header = [_OLD_NAMES.get(name, {}).get(column, column) for column in header]
    for row_number, row in enumerate(records[1:], start=1):
        if len(row) != len(header):
            more_or_fewer = "more" if len(row) > len(header) else "fewer"
            raise RunError(
                f"row {row_number}: has {more_or_fewer} fields than the header "
                f"({len(row)}, not {len(header)}); quote a value that holds a comma",
                file=label,
            )
    unknown = [column for column in header if column not in columns]
    if unknown:
        # a misspelt column (end_dte) must not leave its dates silently unread
        raise RunError(
            "not a column of this file; expected " + ", ".join(columns),
            file=label,
            column=unknown[0],
        )
    duplicated = [column for i, column in enumerate(header) if column in header[:i]]
    if duplicated:
        raise RunError("duplicate column", file=label, column=duplicated[0])
    frame = pd.DataFrame(records[1:], columns=header, dtype="str")
    optional = _OPTIONAL | _OPTIONAL_BY_FILE.get(name, set())
    for column in columns:
        if column not in frame.columns:
            if column in optional:
                frame[column] = pd.Series([""] * len(frame), dtype="str")
            else:
                raise RunError("required column missing", file=label, column=column)
    frame = frame[list(columns)].apply(normalize.text)
    for column in columns:
        if column not in optional:
            _fail_on_first(frame[column].isna(), label, column, "missing value")
    return frame


def read_reference_rows(payload: bytes, name: str) -> pd.DataFrame:
    """A reference file's data rows as the loader reads them (header names in any case, old
    names mapped, cells trimmed), in the columns the file has: row N of a run's reference row
    columns is ``iloc[N - 1]``."""
    frame = _read_reference_csv(payload, name, name)
    rows = csv.reader(io.StringIO(payload.decode("utf-8-sig"), newline=""))
    first = next((row for row in rows if row), [])
    given = {_OLD_NAMES.get(name, {}).get(c.strip().lower(), c.strip().lower()) for c in first}
    return frame[[column for column in frame.columns if column in given]]


def _fail_on_first(bad: pd.Series, label: str, column: str, problem: str) -> None:
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0]) + 1
        raise RunError(f"row {row}: {problem}", file=label, column=column)


def _products(frame: pd.DataFrame, label: str) -> frozenset[str]:
    ndcs = normalize.ndc(frame["ndc"])
    _fail_on_first(ndcs.isna(), label, "ndc", "invalid NDC")
    return frozenset(ndcs.tolist())


def _dated_strengths(
    frame: pd.DataFrame, label: str, start: str = "start_date", end: str = "end_date"
) -> pd.DataFrame:
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
