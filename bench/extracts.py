"""Realistic claim extracts for the benchmark, generated in chunks so 50M lines fit in memory.

Columns repeat the way a pharmacy extract's do: NDCs and claim IDs nearly all distinct,
member IDs and birth dates many, service dates a few years' worth, drug names a few
thousand, routes, units and strengths a handful. ``powder_share`` of the lines are baclofen
powder lines (named, or a listed NDC); a few records of every kind are invalid.

    python bench/extracts.py --lines 1000000 --powder-share 0.01 --out bench/data/x.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

CHUNK = 1_000_000
LISTED_NDC = "51927-1004-00"  # in bench/reference/products.csv

POWDER_NAMES = np.array([
    "BACLOFEN POWDER", "Baclofen USP powder 100 g", "BACLOFEN BULK", "baclofen micronized powder",
    "BACLOFEN POWDER 25 G", "BACLOFEN (BULK) 500 G",
])  # fmt: skip
OTHER_NAMES = np.array(
    [
        f"DRUG{k:04d} {s} MG {f}"
        for k in range(600)
        for s, f in ((5, "TAB"), (10, "CAP"), (20, "TAB"))
    ]
    + ["BACLOFEN 10 MG TAB", "BACLOFEN 20 MG TAB"]
)
ROUTES = np.array(["oral", "PO", "Oral", "intrathecal", "IT", "topical", "rectal", "", "by mouth"])
ROUTE_P = [0.45, 0.15, 0.05, 0.2, 0.03, 0.04, 0.03, 0.03, 0.02]
STRENGTHS = np.array(["5", "10", "15", "20", "25", "0.5", "0.05", "1", "2", "3", "2.5", "abc", ""])
STRENGTH_P = [0.2, 0.15, 0.1, 0.1, 0.05, 0.1, 0.05, 0.1, 0.05, 0.04, 0.04, 0.01, 0.01]
UNITS = np.array(["mg", "mg/mL", "mcg", "MG", "mg/ml", "%", "", "tabs"])
UNIT_P = [0.5, 0.25, 0.05, 0.05, 0.1, 0.02, 0.02, 0.01]
DX_POOL = np.array(
    ["G35", "G35.A", "R25.2", "G80.1", "G82.20", "G95.89", "S14.109A", "M62.838", "E11.9",
     "M54.50", "I10", "Z79.899", "G43.909", "123", "F32.A"]
)  # fmt: skip
SEPARATORS = np.array([",", ";", "|", " ", ", "])


def chunk_table(
    rng: np.random.Generator, start: int, n: int, powder_share: float, every_ndc_form: bool = False
) -> pa.Table:
    powder = rng.random(n) < powder_share
    by_ndc = powder & (rng.random(n) < 0.2)  # a fifth of the powder lines only by their NDC
    names = np.where(powder & ~by_ndc, rng.choice(POWDER_NAMES, n), rng.choice(OTHER_NAMES, n))
    ndc_digits = rng.integers(0, 10**11, n)
    eleven = np.char.zfill(ndc_digits.astype(str), 11)
    form = rng.random(n)
    ndc = np.where(
        form < 0.25,
        _join("-", _sub(eleven, 0, 5), _sub(eleven, 5, 9), _sub(eleven, 9, 11)),
        eleven,
    )
    listed = np.full(n, LISTED_NDC)
    if every_ndc_form:
        ndc, listed = _every_form(rng, eleven, ndc)
    ndc = np.where(form > 0.9995, "1234567890", ndc)  # ambiguous 10-digit: invalid
    ndc = np.where(by_ndc, listed, ndc)
    day = rng.integers(0, 3 * 365, n)
    service = (np.datetime64("2023-01-01") + day).astype("datetime64[D]").astype(str)
    service = np.where(rng.random(n) < 0.1, np.char.replace(service, "-", ""), service)
    service = np.where(rng.random(n) < 0.0005, "2024-02-30", service)
    birth_day = rng.integers(0, 92 * 365, n)
    birth = (np.datetime64("1930-01-01") + birth_day).astype("datetime64[D]").astype(str)
    birth = np.where(rng.random(n) < 0.02, "", birth)
    codes = rng.choice(DX_POOL, (n, 3))
    count = rng.choice([0, 1, 2, 3], n, p=[0.05, 0.6, 0.25, 0.1])
    separator = rng.choice(SEPARATORS, n)
    dx = np.where(count >= 1, codes[:, 0], "")
    dx = np.where(count >= 2, np.char.add(np.char.add(dx, separator), codes[:, 1]), dx)
    dx = np.where(count >= 3, np.char.add(np.char.add(dx, separator), codes[:, 2]), dx)
    ids = np.arange(start, start + n)
    line_number = rng.choice(
        ["1", "2", "3", "1.0", "x", ""], n, p=[0.7, 0.2, 0.08, 0.0185, 0.001, 0.0005]
    )
    claim = np.char.add("RX", np.char.zfill(ids.astype(str), 10))
    # a few repeated keys: the same claim line sent twice
    repeat = rng.random(n) < 0.0002
    claim = np.where(
        repeat & (ids > start), np.char.add("RX", np.char.zfill((ids - 1).astype(str), 10)), claim
    )
    return pa.table(
        {
            "claim_id": claim,
            "line_number": line_number,
            "member_id": np.char.add("M", rng.integers(0, 5 * 10**6, n).astype(str)),
            "member_birth_date": birth,
            "service_date": service,
            "ndc": ndc,
            "drug_name": names,
            "route": rng.choice(ROUTES, n, p=ROUTE_P),
            "strength": rng.choice(STRENGTHS, n, p=STRENGTH_P),
            "strength_unit": rng.choice(UNITS, n, p=UNIT_P),
            "diagnosis_codes": dx,
            "quantity": rng.choice(["30", "60", "90", "120"], n),
            "days_supply": rng.choice(["30", "90"], n),
            "prescriber_npi": np.char.add("1", rng.integers(10**8, 10**9, n).astype(str)),
            "pharmacy_npi": np.char.add("1", rng.integers(10**8, 10**9, n).astype(str)),
            "prior_auth_number": np.where(rng.random(n) < 0.1, "PA123", ""),
        }
    )


def _every_form(rng: np.random.Generator, eleven: np.ndarray, ndc: np.ndarray):
    """A share of the NDCs rewritten into the other hyphenated forms the contract accepts
    (4-4-2, 5-3-2, 5-4-1: one segment one digit short), and the listed product spelled each
    way it can be (11 digits, 5-4-2, 5-4-1)."""
    labeler, product, package = _sub(eleven, 0, 5), _sub(eleven, 5, 9), _sub(eleven, 9, 11)
    form = rng.random(len(eleven))
    ndc = np.where(form < 0.1, _join("-", _sub(labeler, 1, 5), product, package), ndc)
    ndc = np.where(
        (form >= 0.1) & (form < 0.2), _join("-", labeler, _sub(product, 1, 4), package), ndc
    )
    ndc = np.where(
        (form >= 0.2) & (form < 0.3), _join("-", labeler, product, _sub(package, 1, 2)), ndc
    )
    listed = rng.choice(np.array([LISTED_NDC, "51927100400", "51927-1004-0"]), len(eleven))
    return ndc, listed


def _sub(values: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Characters start:stop of each fixed-width string."""
    characters = values.astype("U11").view("U1").reshape(len(values), -1)
    return characters[:, start:stop].copy().view(f"U{stop - start}").ravel()


def _join(separator: str, *parts: np.ndarray) -> np.ndarray:
    joined = parts[0]
    for part in parts[1:]:
        joined = np.char.add(np.char.add(joined, separator), part)
    return joined


def typed(table: pa.Table) -> pa.Table:
    """The same records as a typed Parquet writer would store them: dates as date32, line
    numbers and counts as int64, strengths as float64 (a cell that is not one is null)."""

    def where_matches(column: pa.ChunkedArray, pattern: str) -> pa.ChunkedArray:
        return pc.if_else(pc.match_substring_regex(column, pattern), column, None)

    def date(column: pa.ChunkedArray) -> pa.ChunkedArray:
        dashed = pc.strptime(column, "%Y-%m-%d", "s", error_is_null=True)
        compact = pc.strptime(column, "%Y%m%d", "s", error_is_null=True)
        return pc.coalesce(dashed, compact).cast(pa.date32())

    number = r"^[0-9]+(\.[0-9]*)?$"
    return (
        table.set_column(
            table.schema.get_field_index("service_date"),
            "service_date",
            date(table["service_date"]),
        )
        .set_column(
            table.schema.get_field_index("member_birth_date"),
            "member_birth_date",
            date(table["member_birth_date"]),
        )
        .set_column(
            table.schema.get_field_index("line_number"),
            "line_number",
            where_matches(table["line_number"], number).cast(pa.float64()).cast(pa.int64()),
        )
        .set_column(
            table.schema.get_field_index("strength"),
            "strength",
            where_matches(table["strength"], number).cast(pa.float64()),
        )
        .set_column(
            table.schema.get_field_index("quantity"), "quantity", table["quantity"].cast(pa.int64())
        )
        .set_column(
            table.schema.get_field_index("days_supply"),
            "days_supply",
            table["days_supply"].cast(pa.int64()),
        )
    )


def generate(
    path: Path,
    lines: int,
    powder_share: float,
    seed: int = 11,
    *,
    as_typed: bool = False,
    row_group_rows: int = CHUNK,
    every_ndc_form: bool = False,
    first_id: int = 0,
) -> Path:
    """Write ``lines`` records to ``path`` (.parquet or .csv), chunk by chunk: text columns,
    or ``as_typed`` (Parquet) typed ones; Parquet row groups of ``row_group_rows``; NDCs in
    two forms (11 digits, 5-4-2), or ``every_ndc_form`` the contract accepts. Claim ids
    count from ``first_id``: files of one extract differ by seed and first id (the same seed
    and id in two files makes every line of the second a duplicate of the first's)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    writer = None
    try:
        for start in range(0, lines, CHUNK):
            table = chunk_table(
                rng, first_id + start, min(CHUNK, lines - start), powder_share, every_ndc_form
            )
            if as_typed:
                table = typed(table)
            if writer is None:
                writer = (
                    pq.ParquetWriter(temporary, table.schema, compression="zstd")
                    if path.suffix == ".parquet"
                    else pa_csv.CSVWriter(temporary, table.schema)
                )
            if path.suffix == ".parquet":
                writer.write_table(table, row_group_size=row_group_rows)
            else:
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    temporary.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--powder-share", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--typed", action="store_true", help="typed Parquet columns")
    parser.add_argument("--row-group-rows", type=int, default=CHUNK)
    parser.add_argument(
        "--every-ndc-form", action="store_true", help="NDCs in every form the contract accepts"
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--first-id", type=int, default=0, help="the first claim id's number")
    args = parser.parse_args()
    generate(
        args.out,
        args.lines,
        args.powder_share,
        as_typed=args.typed,
        row_group_rows=args.row_group_rows,
        every_ndc_form=args.every_ndc_form,
        seed=args.seed,
        first_id=args.first_id,
    )


if __name__ == "__main__":
    main()
