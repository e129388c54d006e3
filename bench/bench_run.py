"""Benchmark: `pa-batch run` beside a DuckDB SQL pass of the same policy, on the same files.

    python bench/bench_run.py                 # 10M lines, both mixes, Parquet and CSV; 50M Parquet
    python bench/bench_run.py --lines 200000 --no-large   # the CI smoke

Extracts are generated once into bench/data (bench/extracts.py): every line baclofen powder,
and a nightly mix of 1%. Each extract is run by the peer and by pa-batch alternately, each
in its own process; wall time and that process's peak RSS (wait4) are recorded. The machine
is shared and noisy, so the ratio of the two on the same file in the same run is what counts.
The table is printed and written to bench/results.md and bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
MIXES = {"all": 1.0, "1pct": 0.01}
LARGE_LINES = 50_000_000


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        raise SystemExit(f"{command[0]} failed ({code}): {stderr.strip()[-500:]}")
    return seconds, usage.ru_maxrss / 1024


def generate_apart(path: Path, lines: int, powder_share: float, *extra: str) -> None:
    """Generate an extract in a process of its own. The benchmark's own process stays small:
    Linux folds a parent's peak RSS into a forked child's (ru_maxrss survives the exec), so
    a parent grown by generating data would inflate every peak measured after it."""
    print(f"generating {path.name} ...", file=sys.stderr, flush=True)
    subprocess.run(
        [sys.executable, str(HERE / "extracts.py"), "--lines", str(lines),
         "--powder-share", str(powder_share), "--out", str(path), *extra],
        check=True,
    )  # fmt: skip


def extract(data: Path, lines: int, mix: str, fmt: str) -> Path:
    path = data / f"extract_{lines}_{mix}.{fmt}"
    if not path.exists():
        generate_apart(path, lines, MIXES[mix])
    return path


def pa_batch_command(path: Path, out: Path, extra: list[str]) -> list[str]:
    script = Path(sys.executable).with_name("pa-batch")
    return [str(script), "run", str(path), "--out", str(out),
            "--reference-dir", str(HERE / "reference"), *extra]  # fmt: skip


def peer_command(path: Path, out: Path) -> list[str]:
    return [sys.executable, str(HERE / "duckdb_peer.py"), str(path), str(out)]


def run_pair(path: Path, extra: list[str]) -> dict:
    out = path.parent / "out"
    peer_seconds, peer_rss = measure(peer_command(path, out / "peer"))
    ours_seconds, ours_rss = measure(pa_batch_command(path, out / "pa_batch", extra))
    return {
        "file": path.name,
        "pa_batch_s": round(ours_seconds, 2),
        "duckdb_s": round(peer_seconds, 2),
        "ratio": round(ours_seconds / peer_seconds, 2),
        "pa_batch_rss_mib": round(ours_rss),
        "duckdb_rss_mib": round(peer_rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--no-large", action="store_true", help="skip the 50M-line runs")
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--pa-batch-args", default="", help="extra arguments for pa-batch run")
    parser.add_argument("--data", type=Path, default=HERE / "data", help="where extracts go")
    parser.add_argument("--report", type=Path, default=HERE, help="where results.md goes")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    extra = args.pa_batch_args.split()
    rows = []
    for mix in MIXES:
        for fmt in args.formats.split(","):
            rows.append(run_pair(extract(args.data, args.lines, mix, fmt), extra))
            print(json.dumps(rows[-1]), flush=True)
    if not args.no_large:
        for mix in MIXES:
            path = extract(args.data, LARGE_LINES, mix, "parquet")
            seconds, rss = measure(pa_batch_command(path, args.data / "out" / "large", extra))
            small = next(r for r in rows if r["file"] == f"extract_{args.lines}_{mix}.parquet")
            rows.append({
                "file": path.name, "pa_batch_s": round(seconds, 2), "duckdb_s": None,
                "ratio": None, "pa_batch_rss_mib": round(rss), "duckdb_rss_mib": None,
                "growth_vs_small": round(seconds / small["pa_batch_s"], 2),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    table = [
        f"Machine: {machine}; other load: see `uptime` at the time of the run.",
        "",
        "| extract | pa-batch s | DuckDB s | ratio | pa-batch peak RSS MiB | DuckDB peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {r['file']} | {r['pa_batch_s']} | {r['duckdb_s'] or '—'} | "
            f"{r['ratio'] or '—'}{'' if r['ratio'] else ' (×' + str(r['growth_vs_small']) + ' of the small file)'} | "
            f"{r['pa_batch_rss_mib']} | {r['duckdb_rss_mib'] or '—'} |"
            for r in rows
        ],
    ]
    args.report.mkdir(parents=True, exist_ok=True)
    (args.report / "results.md").write_text("\n".join(table) + "\n")
    (args.report / "results.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=2)
    )
    print("\n".join(table))


if __name__ == "__main__":
    main()
