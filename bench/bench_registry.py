"""Benchmark: the local engine's claim-key registry (``runner.state.ClaimKeyRegistry``) over a
whole run's keys, batch by batch, as ``finish_batch`` calls it: does a batch's lookup cost
grow with the keys registered before it?

Every line of an all-powder extract is a decided line, so a 50M-line run registers 50M
keys: each batch of ``--batch-rows`` keys (the default batch's size) is claimed in input
order, with the extract's rate of repeats (a key sent twice, 0.02%, some across batches).
The time of each claim is taken; the median of the first tenth of the batches is compared
with the median of the last tenth. Target: the last tenth no more than 1.25x the first.

    python bench/bench_registry.py --lines 50000000      # make bench
    python bench/bench_registry.py --lines 2000000       # a smoke
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pa_batch.runner.state import ClaimKeyRegistry

FLAT = 1.25  # the last tenth's median batch over the first tenth's, at most


def batch_keys(rng: np.random.Generator, start: int, rows: int) -> pd.Series:
    """Keys as the extracts have them ("RX0000000123|1"): mostly new, a few repeats of an
    earlier key (this batch's or an earlier one's)."""
    ids = np.arange(start, start + rows)
    repeat = rng.random(rows) < 0.0002
    ids = np.where(repeat, np.maximum(ids - rng.integers(1, 500_000, rows), 0), ids)
    text = np.char.add(np.char.add("RX", np.char.zfill(ids.astype(str), 10)), "|1")
    return pd.Series(text, dtype="str")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=50_000_000)
    parser.add_argument("--batch-rows", type=int, default=98_304)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    rng = np.random.default_rng(7)
    seconds: list[float] = []
    repeats = 0
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="pa-batch-registry-") as spill,
        ClaimKeyRegistry(Path(spill)) as registry,
    ):
        for start in range(0, arguments.lines, arguments.batch_rows):
            rows = min(arguments.batch_rows, arguments.lines - start)
            keys = batch_keys(rng, start, rows)
            source_rows = np.arange(start + 1, start + rows + 1)
            began = time.perf_counter()
            first_seen = registry.claim(keys, "extract.parquet", source_rows)
            seconds.append(time.perf_counter() - began)
            repeats += int(first_seen.notna().sum())
        registered = len(registry)
    tenth = max(1, len(seconds) // 10)
    first, last = statistics.median(seconds[:tenth]), statistics.median(seconds[-tenth:])
    report = {
        "lines": arguments.lines,
        "batch_rows": arguments.batch_rows,
        "batches": len(seconds),
        "keys_registered": registered,
        "repeats_found": repeats,
        "total_s": round(time.perf_counter() - started, 1),
        "claim_s": round(sum(seconds), 1),
        "first_tenth_median_ms": round(1000 * first, 1),
        "last_tenth_median_ms": round(1000 * last, 1),
        "last_over_first": round(last / first, 2),
        "flat": last / first <= FLAT,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(report, indent=2))
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
