"""The benchmark's second peer: the decision rules alone, as an analyst writes them in ten minutes.

One DuckDB query: keep the baclofen powder lines (a listed NDC, or a drug name naming baclofen
powder or bulk), normalize route and unit by a short table, and decide each line by the
policy's reason codes and limits. No record validation, no rejects, no duplicate keys, no
commercial-strength or billable-code tables beyond a literal list, no audit columns: it is the
floor of what deciding these lines can cost, not an implementation of the contract (its
decisions differ from pa-batch's on lines pa-batch rejects, and wherever it cuts a corner).

    python bench/duckdb_lean.py EXTRACT OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
from duckdb_peer import PRODUCTS, SPASTICITY, source_sql  # the same lists, read alike


def run(extract: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    spastic = "|".join(SPASTICITY)
    products = ", ".join(repr(p) for p in PRODUCTS)
    duckdb.connect().execute(f"""
        COPY (
        WITH powder AS (
            SELECT claim_id, line_number, service_date,
                lower(trim(route)) AS route,
                TRY_CAST(strength AS DOUBLE) AS amount,
                lower(replace(strength_unit, ' ', '')) AS unit,
                upper(replace(coalesce(diagnosis_codes, ''), '.', '')) AS dx
            FROM {source_sql(extract)}
            WHERE replace(CAST(ndc AS VARCHAR), '-', '') IN ({products})
               OR (lower(drug_name) LIKE '%baclofen%'
                   AND (lower(drug_name) LIKE '%powder%' OR lower(drug_name) LIKE '%bulk%'))
        ), facts AS (
            SELECT *,
                CASE WHEN route IN ('oral', 'po', 'by mouth') THEN 'oral'
                     WHEN route IN ('intrathecal', 'it') THEN 'intrathecal'
                     WHEN route IN ('topical', 'transdermal') THEN 'topical'
                     WHEN route IS NULL OR route = '' THEN NULL ELSE 'other' END AS r,
                CASE WHEN unit IN ('mg', 'mg/ml') THEN amount
                     WHEN unit IN ('mcg', 'mcg/ml') THEN amount / 1000 END AS mg,
                CASE WHEN unit = 'mg' THEN 'mass' WHEN unit LIKE '%/ml' THEN 'concentration' END
                    AS kind,
                trim(dx) <> '' AS has_dx,
                regexp_matches(dx, '(^|[^A-Z0-9])({spastic})') AS spastic
            FROM powder
        ), decided AS (
            SELECT claim_id, line_number, service_date,
                concat_ws('|',
                    CASE WHEN has_dx AND NOT spastic THEN 'INDICATION_NOT_COVERED' END,
                    CASE WHEN r = 'topical' THEN 'TOPICAL_ROUTE' END,
                    CASE WHEN r = 'other' THEN 'ROUTE_NOT_COVERED' END,
                    CASE WHEN NOT has_dx THEN 'DX_MISSING' END,
                    CASE WHEN r IS NULL THEN 'ROUTE_MISSING' END,
                    CASE WHEN r IN ('oral', 'intrathecal') AND mg IS NULL THEN 'STRENGTH_MISSING' END,
                    CASE WHEN r = 'oral' AND mg > 20 THEN 'ORAL_DOSE_EXCEEDS_LIMIT' END,
                    CASE WHEN r = 'intrathecal' AND kind = 'concentration' AND mg > 2
                         THEN 'INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT' END,
                    CASE WHEN (r = 'oral' AND kind = 'mass' AND mg IN (10, 20))
                           OR (r = 'intrathecal' AND kind = 'concentration' AND mg IN (0.05, 0.5, 2))
                         THEN 'COMMERCIALLY_AVAILABLE' END
                ) AS reasons
            FROM facts
        )
        SELECT *,
            CASE WHEN regexp_matches(reasons, 'INDICATION_NOT_COVERED|TOPICAL_ROUTE|ROUTE_NOT_COVERED')
                 THEN 'investigational' WHEN reasons <> '' THEN 'denied' ELSE 'approved' END
                AS decision
        FROM decided
        ) TO '{out / "results.parquet"}' (FORMAT parquet, COMPRESSION zstd)
    """)  # fmt: skip


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]))
