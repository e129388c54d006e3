"""The benchmark's peer: the same policy rules as one DuckDB SQL pass.

Reads the extract (Parquet, or CSV with every column as text), validates every record
(required values, line number, service date, NDC), scopes it, and only on baclofen powder
lines parses and checks the rest (strength, unit, diagnosis codes, birth date, duplicate
keys); decides every valid powder line (all ten reason codes, both advisories, the approval
window) and writes results and rejects as Parquet. Its decisions, reasons and advisories
equal pa-batch's line for line (the smoke test checks it). It is a lean peer, not a second
implementation: it skips what only an auditor needs (malformed CSV records, reference row
numbers, messages, the value as given).

    python bench/duckdb_peer.py EXTRACT OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

ROUTES = {
    "oral": ["oral", "orally", "po", "p.o.", "per os", "by mouth", "26643006"],
    "intrathecal": ["intrathecal", "it", "ith", "intrathecal injection", "intrathecal infusion",
                    "72607000"],
    "topical": ["topical", "top", "transdermal", "cutaneous", "6064005", "45890007"],
}  # fmt: skip
UNITS = [
    *[(u, "mass", 1.0) for u in ("mg", "mg/unit", "mg/cap", "mg/capsule", "mg/tab", "mg/tablet",
                                 "mg/dose")],
    *[(u, "mass", 0.001) for u in ("mcg", "ug", "\u00b5g", "\u03bcg")],
    ("g", "mass", 1000.0), ("mg/ml", "concentration", 1.0),
    *[(u, "concentration", 0.001) for u in ("mcg/ml", "ug/ml", "\u00b5g/ml", "\u03bcg/ml")],
    ("mg/5ml", "concentration", 0.2), ("mg/l", "concentration", 0.001), ("%", "percent", None),
]  # fmt: skip
COMMERCIAL = [("oral", "mass", 10.0), ("oral", "mass", 20.0), ("intrathecal", "concentration", 0.05),
              ("intrathecal", "concentration", 0.5), ("intrathecal", "concentration", 2.0)]  # fmt: skip
SPASTICITY = ["R252", "G35", "G800", "G801", "G802", "G811", "G822", "G825", "G114", "G041", "G95",
              "S141", "S241", "S341"]  # fmt: skip
PRODUCTS = ["51927100400"]


def billable_codes() -> list[str]:
    """The billable (leaf) codes of the ICD-10-CM edition pa_batch uses, without dots: the
    same reference list pa_batch reads (a test keeps it equal to the code set), so neither
    side pays for loading the code tree and the comparison is of the rules alone."""
    from pa_batch.policy import icd10cm

    return sorted(icd10cm.billable_codes())


def source_sql(extract: Path) -> str:
    if extract.suffix == ".parquet":
        return f"read_parquet('{extract}')"
    return f"read_csv('{extract}', all_varchar = true, header = true)"


def run(extract: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    route_cases = " ".join(
        f"WHEN r IN ({', '.join(repr(s) for s in spellings)}) THEN '{route}'"
        for route, spellings in ROUTES.items()
    )
    con.execute("CREATE TEMP TABLE units(unit VARCHAR, kind VARCHAR, factor DOUBLE)")
    con.executemany("INSERT INTO units VALUES (?, ?, ?)", UNITS)
    con.execute("CREATE TEMP TABLE billable AS SELECT unnest(?) AS code", [billable_codes()])
    con.execute("CREATE TEMP TABLE commercial(route VARCHAR, kind VARCHAR, strength DOUBLE)")
    con.executemany("INSERT INTO commercial VALUES (?, ?, ?)", COMMERCIAL)
    columns = ", ".join(
        f"NULLIF(trim(CAST({c} AS VARCHAR)), '') AS {c}"
        for c in ("claim_id", "line_number", "member_id", "member_birth_date", "service_date",
                  "ndc", "drug_name", "route", "strength", "strength_unit", "diagnosis_codes")
    )  # fmt: skip
    spastic = ", ".join(repr(p) for p in SPASTICITY)
    route_expression = "lower(regexp_replace(s.route, '\\s+', ' ', 'g'))"
    route_cases = route_cases.replace("WHEN r", "WHEN " + route_expression)
    products = ", ".join(repr(p) for p in PRODUCTS)
    # 1. every record: the record checks and scope; the other columns kept for powder lines only
    con.execute(f"""
        CREATE TEMP TABLE records AS
        WITH src AS (
            SELECT row_number() OVER () AS source_row, {columns} FROM {source_sql(extract)}
        ), typed AS (
            SELECT *,
                CASE WHEN regexp_full_match(line_number, '\\+?[0-9]{{1,18}}(\\.0*)?')
                     THEN TRY_CAST(regexp_replace(line_number, '^\\+|\\.0*$', '', 'g') AS BIGINT)
                END AS ln,
                COALESCE(TRY_STRPTIME(service_date, '%Y-%m-%d'),
                         TRY_STRPTIME(service_date, '%Y%m%d'))::DATE AS service,
                CASE
                    WHEN regexp_full_match(ndc, '[0-9]{{11}}') THEN ndc
                    WHEN regexp_full_match(ndc, '[0-9]{{5}}-[0-9]{{4}}-[0-9]{{2}}')
                        THEN replace(ndc, '-', '')
                    WHEN regexp_full_match(ndc, '[0-9]{{4}}-[0-9]{{4}}-[0-9]{{2}}')
                        THEN '0' || replace(ndc, '-', '')
                    WHEN regexp_full_match(ndc, '[0-9]{{5}}-[0-9]{{3}}-[0-9]{{2}}')
                        THEN substr(ndc, 1, 5) || '0' || substr(ndc, 7, 3) || substr(ndc, 11, 2)
                    WHEN regexp_full_match(ndc, '[0-9]{{5}}-[0-9]{{4}}-[0-9]')
                        THEN substr(ndc, 1, 5) || substr(ndc, 7, 4) || '0' || substr(ndc, 12, 1)
                END AS ndc11
            FROM src
        ), scoped AS (
            SELECT *,
                claim_id IS NOT NULL AND ln IS NOT NULL AND member_id IS NOT NULL
                    AND service IS NOT NULL AND ndc11 IS NOT NULL AS record_ok,
                coalesce(ndc11 IN ({products}), false) OR coalesce(contains(lower(drug_name), 'baclofen')
                    AND (contains(lower(drug_name), 'powder') OR contains(lower(drug_name), 'bulk')), false)
                    AS powder
            FROM typed
        )
        SELECT source_row, claim_id, line_number, member_id, service_date, ndc, ln, service,
            ndc11, record_ok, powder,
            CASE WHEN powder AND record_ok THEN drug_name END AS drug_name,
            CASE WHEN powder AND record_ok THEN route END AS route,
            CASE WHEN powder AND record_ok THEN strength END AS strength,
            CASE WHEN powder AND record_ok THEN strength_unit END AS strength_unit,
            CASE WHEN powder AND record_ok THEN diagnosis_codes END AS diagnosis_codes,
            CASE WHEN powder AND record_ok THEN member_birth_date END AS member_birth_date
        FROM scoped
    """)  # fmt: skip
    # 2. baclofen powder lines that passed: their own checks and parsed columns
    con.execute(f"""
        CREATE TEMP TABLE checked AS
        WITH parsed AS (
            SELECT s.*, u.kind, u.factor,
                CASE {route_cases}
                     WHEN s.route IS NULL THEN NULL ELSE 'other' END AS route_n,
                TRY_CAST(s.strength AS DOUBLE) AS amount,
                COALESCE(TRY_STRPTIME(member_birth_date, '%Y-%m-%d'),
                         TRY_STRPTIME(member_birth_date, '%Y%m%d'))::DATE AS birth,
                list_filter(string_split_regex(upper(replace(coalesce(diagnosis_codes, ''),
                    '.', '')), '[,;|\\s]+'), lambda t: t <> '') AS dx
            FROM records s
            LEFT JOIN units u ON u.unit = lower(regexp_replace(s.strength_unit, '\\s', '', 'g'))
            WHERE s.powder AND s.record_ok
        )
        SELECT *,
            (strength IS NULL OR coalesce(amount > 0 AND isfinite(amount), false))
              AND (strength_unit IS NULL OR kind IS NOT NULL)
              AND list_bool_and(list_transform(dx, lambda t: regexp_full_match(t, '[A-Z][0-9][0-9A-Z]{{1,5}}')))
                  IS NOT FALSE
              AND (member_birth_date IS NULL OR birth IS NOT NULL)
              AND NOT coalesce(birth > service, false) AS line_ok
        FROM parsed
    """)  # fmt: skip
    con.execute(f"""
        COPY (
        WITH valid AS (
            SELECT *, row_number() OVER (PARTITION BY claim_id, ln ORDER BY source_row) AS nth
            FROM checked WHERE line_ok
        ), not_billable AS (
            SELECT DISTINCT u.source_row
            FROM (SELECT source_row, unnest(dx) AS t FROM valid
                  WHERE nth = 1 AND service >= DATE '2025-10-01') u
            ANTI JOIN billable b ON b.code = u.t
        ), facts AS (
            SELECT v.*, round(amount * factor, 6) AS strength_n,
                len(dx) > 0 AS has_dx,
                len(list_filter(dx, lambda t: list_bool_or(list_transform([{spastic}], lambda p: starts_with(t, p))))) > 0 AS spastic,
                amount IS NOT NULL AND kind IS NOT NULL AS given,
                (route_n = 'oral' AND kind IN ('mass', 'concentration'))
                    OR (route_n = 'intrathecal' AND kind = 'concentration') AS fits,
                date_diff('year', birth, service)
                    - CASE WHEN (month(service), day(service)) < (month(birth), day(birth))
                           THEN 1 ELSE 0 END AS age
            FROM valid v WHERE nth = 1
        ), decided AS (
            SELECT f.*,
                concat_ws('|',
                    CASE WHEN has_dx AND NOT spastic THEN 'INDICATION_NOT_COVERED' END,
                    CASE WHEN route_n = 'topical' THEN 'TOPICAL_ROUTE' END,
                    CASE WHEN route_n = 'other' THEN 'ROUTE_NOT_COVERED' END,
                    CASE WHEN NOT has_dx THEN 'DX_MISSING' END,
                    CASE WHEN route_n IS NULL THEN 'ROUTE_MISSING' END,
                    CASE WHEN route_n IN ('oral', 'intrathecal') AND NOT given THEN 'STRENGTH_MISSING' END,
                    CASE WHEN route_n IN ('oral', 'intrathecal') AND kind IS NOT NULL AND NOT fits THEN 'STRENGTH_UNIT_INVALID' END,
                    CASE WHEN route_n = 'oral' AND given AND fits AND strength_n > 20 THEN 'ORAL_DOSE_EXCEEDS_LIMIT' END,
                    CASE WHEN route_n = 'intrathecal' AND given AND fits AND strength_n > 2 THEN 'INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT' END,
                    CASE WHEN given AND fits AND EXISTS (SELECT 1 FROM commercial c WHERE c.route = f.route_n
                         AND c.kind = f.kind AND c.strength = f.strength_n) THEN 'COMMERCIALLY_AVAILABLE' END
                ) AS reasons,
                concat_ws('|',
                    CASE WHEN route_n = 'oral' AND age < 12 THEN 'PEDIATRIC_ORAL_UNDER_12' END,
                    CASE WHEN route_n = 'intrathecal' AND age < 4 THEN 'PEDIATRIC_INTRATHECAL_UNDER_4' END,
                    CASE WHEN source_row IN (SELECT source_row FROM not_billable) THEN 'DX_NOT_BILLABLE' END
                ) AS advisories
            FROM facts f
        )
        SELECT claim_id, ln AS line_number, member_id, service AS service_date, ndc11 AS ndc,
            drug_name, route_n AS route, route AS route_given, strength, strength_unit,
            strength_n AS normalized_strength, diagnosis_codes, birth AS member_birth_date, age,
            CASE WHEN regexp_matches(reasons, 'INDICATION_NOT_COVERED|TOPICAL_ROUTE|ROUTE_NOT_COVERED')
                 THEN 'investigational' WHEN reasons <> '' THEN 'denied' ELSE 'approved' END AS decision,
            reasons, advisories,
            CASE WHEN reasons = '' THEN service END AS approval_start,
            CASE WHEN reasons = '' THEN service + INTERVAL 12 MONTH - INTERVAL 1 DAY END AS approval_end,
            'baclofen-powder' AS policy_id, source_row
        FROM decided ORDER BY source_row
        ) TO '{out / "results.parquet"}' (FORMAT parquet, COMPRESSION zstd)
    """)  # fmt: skip
    con.execute(f"""
        COPY (
            SELECT source_row, claim_id, line_number, col AS column, code AS error_code
            FROM (
                SELECT source_row, claim_id, line_number, unnest([
                    CASE WHEN claim_id IS NULL THEN {{'col': 'claim_id', 'code': 'MISSING_REQUIRED_VALUE'}} END,
                    CASE WHEN line_number IS NULL THEN {{'col': 'line_number', 'code': 'MISSING_REQUIRED_VALUE'}}
                         WHEN ln IS NULL OR ln < 1 THEN {{'col': 'line_number', 'code': 'INVALID_LINE_NUMBER'}} END,
                    CASE WHEN member_id IS NULL THEN {{'col': 'member_id', 'code': 'MISSING_REQUIRED_VALUE'}} END,
                    CASE WHEN service_date IS NULL THEN {{'col': 'service_date', 'code': 'MISSING_REQUIRED_VALUE'}}
                         WHEN service IS NULL THEN {{'col': 'service_date', 'code': 'INVALID_DATE'}} END,
                    CASE WHEN ndc IS NULL THEN {{'col': 'ndc', 'code': 'MISSING_REQUIRED_VALUE'}}
                         WHEN ndc11 IS NULL THEN {{'col': 'ndc', 'code': 'INVALID_NDC'}} END
                ], recursive := true)
                FROM records WHERE NOT record_ok
                UNION ALL
                SELECT source_row, claim_id, line_number,
                    unnest([{{'col': 'line', 'code': 'POWDER_LINE_CHECK'}}], recursive := true)
                FROM checked WHERE NOT line_ok
                UNION ALL
                SELECT source_row, claim_id, line_number,
                    unnest([{{'col': 'line_number', 'code': 'DUPLICATE_KEY'}}], recursive := true)
                FROM (
                    SELECT *, row_number() OVER (PARTITION BY claim_id, ln ORDER BY source_row) AS nth
                    FROM checked WHERE line_ok
                ) WHERE nth > 1
            ) WHERE code IS NOT NULL
            ORDER BY source_row
        ) TO '{out / "rejects.parquet"}' (FORMAT parquet, COMPRESSION zstd)
    """)  # fmt: skip


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]))
