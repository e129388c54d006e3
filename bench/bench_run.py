"""Benchmark: `pa-batch run` wall time and peak memory on a generated Parquet extract.

    python bench/bench_run.py [--lines 1000000] [--powder-share 0.1]

Generates bench/data/extract_<lines>.parquet once (10% baclofen powder lines by default,
the rest other drugs), then times the installed console script on it.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent


def generate(path: Path, lines: int, powder_share: float, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    powder = rng.random(lines) < powder_share
    day = rng.integers(0, 365, lines)
    service = (np.datetime64("2024-01-01") + day).astype("datetime64[D]").astype(str)
    birth_year = rng.integers(1940, 2022, lines)
    birth = np.char.add(birth_year.astype(str), "-06-15")
    names = np.where(
        powder,
        "BACLOFEN POWDER",
        rng.choice(["ATORVASTATIN 20 MG TAB", "METFORMIN 500 MG TAB", "BACLOFEN 10 MG TAB"], lines),
    )
    routes = np.where(
        powder,
        rng.choice(
            ["oral", "PO", "intrathecal", "topical", "rectal", ""],
            lines,
            p=[0.5, 0.2, 0.2, 0.04, 0.03, 0.03],
        ),
        "oral",
    )
    strengths = rng.choice(
        ["5", "10", "15", "20", "25", "0.5", "1", "3", "abc"],
        lines,
        p=[0.3, 0.15, 0.15, 0.1, 0.05, 0.1, 0.1, 0.04, 0.01],
    )
    units = np.where(
        np.isin(routes, ["intrathecal"]),
        "mg/mL",
        rng.choice(["mg", "mcg", "%"], lines, p=[0.9, 0.08, 0.02]),
    )
    dx = rng.choice(
        ["G35", "R25.2", "G80.1;M54.50", "M62.838", "", "E11.9", "123"],
        lines,
        p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.09, 0.01],
    )
    table = pa.table(
        {
            "claim_id": np.char.add("RX", np.arange(lines).astype(str)),
            "line_number": rng.choice(["1", "2", "x"], lines, p=[0.8, 0.199, 0.001]),
            "member_id": np.char.add("M", rng.integers(0, 10**7, lines).astype(str)),
            "member_birth_date": birth,
            "service_date": service,
            "ndc": rng.choice(
                ["00093-7155-98", "51927-1004-00", "12345678901", "1234567890"],
                lines,
                p=[0.4, 0.3, 0.299, 0.001],
            ),
            "drug_name": names,
            "route": routes,
            "strength": strengths,
            "strength_unit": units,
            "diagnosis_codes": dx,
            "quantity": rng.choice(["30", "60", "90"], lines),
            "days_supply": rng.choice(["30", "90"], lines),
            "prescriber_npi": np.char.add("1", rng.integers(10**8, 10**9, lines).astype(str)),
            "pharmacy_npi": np.char.add("1", rng.integers(10**8, 10**9, lines).astype(str)),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=256_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--powder-share", type=float, default=0.1)
    args = parser.parse_args()
    extract = HERE / "data" / f"extract_{args.lines}.parquet"
    if not extract.exists():
        generate(extract, args.lines, args.powder_share)
    out = HERE / "data" / "out"
    command = [
        str(Path(sys.executable).parent / "pa-batch"),
        "run",
        str(extract),
        "--out",
        str(out),
    ]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(completed.stdout.strip())
    if completed.returncode not in (0, 3):
        print(completed.stderr, file=sys.stderr)
        sys.exit(completed.returncode)
    print(
        f"lines={args.lines:,} wall={seconds:.2f}s rate={args.lines / seconds:,.0f} lines/s peak_rss={peak_mib:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
