"""Regenerate the bundled sample extract (deterministic): ``make sample-data``.

A realistic small nightly extract: mostly other drugs, plus baclofen powder lines covering
every decision, every reason code, both advisories and several kinds of reject. Writes
``claims.csv`` and ``claims.parquet`` (the same records as text; a CSV-only malformed
record is appended to the CSV).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent
COLUMNS = [
    "claim_id", "line_number", "member_id", "member_birth_date", "service_date", "ndc",
    "drug_name", "route", "strength", "strength_unit", "diagnosis_codes", "quantity",
    "days_supply", "prescriber_npi", "pharmacy_npi", "prior_auth_number",
]  # fmt: skip

OTHER_DRUGS = [
    ("00093-7155-98", "ATORVASTATIN 20 MG TABLET", "oral", "20", "mg", "E78.5"),
    ("00378-0208-01", "METFORMIN HCL 500 MG TABLET", "oral", "500", "mg", "E11.9"),
    ("68180-0513-01", "LISINOPRIL 10 MG TABLET", "oral", "10", "mg", "I10"),
    ("00172-5728-60", "BACLOFEN 10 MG TABLET", "oral", "10", "mg", "G35"),
    ("59762-5025-01", "GABAPENTIN 300 MG CAPSULE", "PO", "300", "mg", "M79.2"),
    ("00409-1966-05", "LIORESAL INTRATHECAL 0.5 MG/ML", "intrathecal", "0.5", "mg/mL", "G80.1"),
    ("51552-0083-04", "KETOPROFEN POWDER", "topical", "10", "%", "M25.50"),
    ("00591-0405-01", "CYCLOBENZAPRINE 10 MG TABLET", "oral", "10", "mg", "M62.830"),
    ("00006-0749-54", "LOSARTAN 50 MG TABLET", "oral", "50", "mg", "I10"),
    ("63304-0827-30", "TIZANIDINE 4 MG TABLET", "oral", "4", "mg", "G35"),
]

# (drug_name, ndc, route, strength, unit, diagnosis codes, birth date, service date, note)
POWDER = "BACLOFEN POWDER"
BULK = "Baclofen USP bulk powder"
POWDER_LINES = [
    (POWDER, "51927-1004-00", "oral", "5", "mg", "G35", "1971-03-14", "2024-05-02", "approved"),
    (POWDER, "51927-1004-00", "oral", "15", "mg", "G80.1", "1990-07-09", "2024-05-03", "approved"),
    (BULK, "38779-0388-09", "PO", "12.5", "mg/cap", "G82.21;R25.2", "1958-11-30", "2024-05-03", "approved"),
    (POWDER, "51927-1004-00", "by mouth", "25", "mg/5mL", "G11.4", "1984-02-29", "2024-05-04", "approved: 5 mg/mL"),
    (POWDER, "51927-1004-00", "oral", "10", "mg", "G35.A", "1966-01-20", "2024-04-15", "approved: 10 mg in shortage"),
    (POWDER, "51927-1004-00", "IT", "1", "mg/ml", "S14.101S", "1979-05-05", "2024-05-05", "approved intrathecal"),
    (POWDER, "51927-1004-00", "72607000", "1500", "mcg/mL", "G95.0", "1962-08-18", "2024-05-06", "approved intrathecal"),
    (POWDER, "51927-1004-00", "oral", "5", "mg", "G80.0", "2016-09-01", "2024-05-06", "approved, pediatric oral"),
    (POWDER, "51927-1004-00", "intrathecal", "1", "mg/mL", "G80.2", "2021-06-30", "2024-05-07", "approved, pediatric IT"),
    (POWDER, "51927-1004-00", "oral", "7.5", "mg", "G35", "1988-12-12", "2024-02-29", "approved on 29 Feb"),
    (POWDER, "51927-1004-00", "oral", "10", "mg", "G35", "1975-04-01", "2024-07-08", "COMMERCIALLY_AVAILABLE"),
    (POWDER, "51927-1004-00", "oral", "20000", "mcg", "G81.10", "1950-10-10", "2024-05-08", "COMMERCIALLY_AVAILABLE 20 mg"),
    (POWDER, "51927-1004-00", "intrathecal", "500", "mcg/ml", "G80.1", "1999-03-03", "2024-05-08", "COMMERCIALLY_AVAILABLE IT"),
    (POWDER, "51927-1004-00", "oral", "25", "mg", "G80.1", "1982-06-16", "2024-05-09", "ORAL_DOSE_EXCEEDS_LIMIT"),
    (POWDER, "51927-1004-00", "intrathecal", "3", "mg/ml", "G35", "1970-02-02", "2024-05-09", "INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT"),
    (POWDER, "51927-1004-00", "oral", "2", "%", "G35", "1993-09-19", "2024-05-10", "STRENGTH_UNIT_INVALID oral %"),
    (POWDER, "51927-1004-00", "intrathecal", "5", "mg", "G35", "1968-07-07", "2024-05-10", "STRENGTH_UNIT_INVALID IT mass"),
    (POWDER, "51927-1004-00", "oral", "", "mg", "R25.2", "1977-01-25", "2024-05-11", "STRENGTH_MISSING"),
    (POWDER, "51927-1004-00", "", "5", "mg", "G35", "1985-05-15", "2024-05-11", "ROUTE_MISSING"),
    (POWDER, "51927-1004-00", "oral", "5", "mg", "", "1991-10-01", "2024-05-12", "DX_MISSING"),
    (BULK, "38779-0388-09", "Topical", "2", "%", "G35", "1980-04-04", "2024-05-12", "TOPICAL_ROUTE"),
    (POWDER, "51927-1004-00", "rectal", "10", "mg", "M54.50", "1960-12-24", "2024-05-13", "INDICATION_NOT_COVERED + ROUTE_NOT_COVERED"),
    (POWDER, "51927-1004-00", "oral", "5", "mg", "M62.838", "1972-03-03", "2024-05-13", "INDICATION_NOT_COVERED"),
    ("", "51927-1004-00", "oral", "5", "mg", "G35", "1987-08-08", "2024-05-14", "listed NDC, no name"),
]  # fmt: skip
# (field overrides, note): baclofen powder lines that must be rejected
POWDER_REJECTS = [
    ({"ndc": "5192710040"}, "INVALID_NDC: unhyphenated 10 digits"),
    ({"line_number": "1.5"}, "INVALID_LINE_NUMBER"),
    ({"service_date": "2024-02-30"}, "INVALID_DATE"),
    ({"member_id": ""}, "MISSING_REQUIRED_VALUE"),
    ({"strength": "-5", "strength_unit": "tsp"}, "INVALID_STRENGTH + INVALID_STRENGTH_UNIT"),
    ({"diagnosis_codes": "G35;123"}, "INVALID_DIAGNOSIS_CODE"),
    ({"member_birth_date": "2025-01-01"}, "BIRTH_AFTER_SERVICE"),
    ({"member_birth_date": "19800231"}, "INVALID_DATE of birth"),
]


def build(seed: int = 20240515) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []

    def claim(ndc, name, route, strength, unit, dx, birth=None, service=None) -> dict[str, str]:
        number = len(rows) + 1
        return {
            "claim_id": f"RX24{number:06d}",
            "line_number": "1",
            "member_id": f"M{rng.randrange(10**8):08d}",
            "member_birth_date": birth or f"{rng.randint(1940, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "service_date": service or f"2024-05-{rng.randint(1, 15):02d}",
            "ndc": ndc, "drug_name": name, "route": route, "strength": strength,
            "strength_unit": unit, "diagnosis_codes": dx,
            "quantity": str(rng.choice([30, 60, 90, 120])), "days_supply": str(rng.choice([30, 90])),
            "prescriber_npi": f"1{rng.randrange(10**9):09d}", "pharmacy_npi": f"1{rng.randrange(10**9):09d}",
            "prior_auth_number": "",
        }  # fmt: skip

    powder = [claim(n, d, r, s, u, dx, b, sd) for d, n, r, s, u, dx, b, sd, _ in POWDER_LINES]
    for overrides, _ in POWDER_REJECTS:
        base = claim("51927-1004-00", POWDER, "oral", "5", "mg", "G35", "1970-01-01", "2024-05-14")
        powder.append({**base, **overrides})
    duplicate = dict(powder[0])  # the same claim line sent twice: DUPLICATE_KEY
    others = [claim(*rng.choice(OTHER_DRUGS)) for _ in range(260)]
    others[17]["service_date"] = "20240513"  # NCPDP date form, still valid
    others[41]["ndc"] = "0093-7155-98"  # a 4-4-2 NDC, padded
    others[99]["claim_id"] = ""  # MISSING_REQUIRED_VALUE on another drug
    # interleave: the nightly extract is in claim order, not grouped by drug
    merged = others[:]
    for i, row in enumerate(powder):
        merged.insert(7 + i * 8, row)
    merged.insert(len(merged) - 5, duplicate)
    for number, row in enumerate(merged, start=1):
        if row is not duplicate and row["claim_id"]:
            row["claim_id"] = f"RX24{number:06d}"
    duplicate["claim_id"] = powder[0]["claim_id"]
    return merged


def main() -> None:
    rows = build()
    with (HERE / "claims.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        # a record broken by the export: one field too many (MALFORMED_RECORD)
        stream.write(
            ",".join(["RX24BROKEN", "1", "M00000000", *[""] * (len(COLUMNS) - 3), "x"]) + "\n"
        )
    table = pa.table({c: pa.array([r[c] or None for r in rows], pa.string()) for c in COLUMNS})
    pq.write_table(table, HERE / "claims.parquet", compression="zstd")
    print(f"wrote {len(rows) + 1} CSV records and {len(rows)} Parquet records to {HERE}")


if __name__ == "__main__":
    main()
