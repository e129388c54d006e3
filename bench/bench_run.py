"""Benchmark: `pa-batch run` beside a DuckDB SQL pass of the same policy, on the same files.

    python bench/bench_run.py                 # 10M lines: every shape, both mixes; 50M typed
    python bench/bench_run.py --lines 20000 --no-large --shapes typed-1M,csv   # the test smoke

Extracts are generated once into bench/data (bench/extracts.py) in a matrix of shapes (typed
and text Parquet in row groups of 1M and 64K rows, CSV; NDCs in every accepted form, service
dates across the ICD-10-CM edition boundary of 2025-10-01) and two mixes (every line baclofen
powder, and a nightly 1%). On each extract, each in its own process and one after another: the
read-only floor (bench/read_floor.py), the lean DuckDB pass of the decision rules alone
(bench/duckdb_lean.py), the equivalent DuckDB pass (bench/duckdb_peer.py), and pa-batch; wall
time and peak RSS (wait4) are recorded. The machine is shared and noisy, so the ratios on the
same file in the same run are what counts. The matrix is printed and written to
bench/results.md and bench/results.json.
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
# the shapes users' extracts come in; every one holds NDCs in each form the contract accepts
SHAPES = {
    "typed-1M": ("parquet", ["--typed"], "Parquet, typed columns, 1M-row groups"),
    "typed-64K": ("parquet", ["--typed", "--row-group-rows", "65536"],
                  "Parquet, typed columns, 64K-row groups"),
    "text-1M": ("parquet", [], "Parquet, text columns, 1M-row groups"),
    "text-64K": ("parquet", ["--row-group-rows", "65536"], "Parquet, text columns, 64K-row groups"),
    "csv": ("csv", [], "CSV"),
}  # fmt: skip
LARGE_LINES = 50_000_000
LARGE_SHAPE = "typed-1M"
# issue 20's targets: pa-batch / the equivalent DuckDB pass, and / the lean pass by mix
PEER_TARGET = 0.7
LEAN_TARGET = {"1pct": 1.5, "all": 2.0}


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


def extract(data: Path, lines: int, mix: str, shape: str) -> Path:
    suffix, flags, _ = SHAPES[shape]
    path = data / f"extract_{lines}_{mix}_{shape}.{suffix}"
    if not path.exists():
        generate_apart(path, lines, MIXES[mix], "--every-ndc-form", *flags)
    return path


def pa_batch_command(path: Path, out: Path, extra: list[str]) -> list[str]:
    script = Path(sys.executable).with_name("pa-batch")
    return [str(script), "run", str(path), "--out", str(out),
            "--reference-dir", str(HERE / "reference"), *extra]  # fmt: skip


def peer_command(path: Path, out: Path) -> list[str]:
    return [sys.executable, str(HERE / "duckdb_peer.py"), str(path), str(out)]


def lean_command(path: Path, out: Path) -> list[str]:
    return [sys.executable, str(HERE / "duckdb_lean.py"), str(path), str(out)]


def floor_command(path: Path) -> list[str]:
    return [sys.executable, str(HERE / "read_floor.py"), str(path)]


def run_shape(path: Path, mix: str, shape: str, extra: list[str]) -> dict:
    """The floor, both peers and pa-batch on one extract, one after another."""
    out = path.parent / "out"
    floor_seconds, _ = measure(floor_command(path))
    lean_seconds, _ = measure(lean_command(path, out / "lean"))
    peer_seconds, peer_rss = measure(peer_command(path, out / "peer"))
    ours_seconds, ours_rss = measure(pa_batch_command(path, out / "pa_batch", extra))
    ratio = ours_seconds / peer_seconds
    lean_ratio = ours_seconds / lean_seconds
    return {
        "file": path.name,
        "shape": SHAPES[shape][2],
        "mix": mix,
        "pa_batch_s": round(ours_seconds, 2),
        "duckdb_s": round(peer_seconds, 2),
        "ratio": round(ratio, 2),
        "lean_s": round(lean_seconds, 2),
        "lean_ratio": round(lean_ratio, 2),
        "floor_s": round(floor_seconds, 2),
        "floor_ratio": round(ours_seconds / floor_seconds, 2),
        "meets": ratio <= PEER_TARGET and lean_ratio <= LEAN_TARGET[mix],
        "pa_batch_rss_mib": round(ours_rss),
        "duckdb_rss_mib": round(peer_rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--no-large", action="store_true", help="skip the 50M-line runs")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="of: " + ", ".join(SHAPES))
    parser.add_argument("--mixes", default=",".join(MIXES), help="of: " + ", ".join(MIXES))
    parser.add_argument("--pa-batch-args", default="", help="extra arguments for pa-batch run")
    parser.add_argument("--data", type=Path, default=HERE / "data", help="where extracts go")
    parser.add_argument("--report", type=Path, default=HERE, help="where results.md goes")
    args = parser.parse_args()
    extra = args.pa_batch_args.split()
    rows = []
    for mix in args.mixes.split(","):
        for shape in args.shapes.split(","):
            rows.append(run_shape(extract(args.data, args.lines, mix, shape), mix, shape, extra))
            print(json.dumps(rows[-1]), flush=True)
    if not args.no_large:
        for mix in args.mixes.split(","):
            path = extract(args.data, LARGE_LINES, mix, LARGE_SHAPE)
            seconds, rss = measure(pa_batch_command(path, args.data / "out" / "large", extra))
            # growth against the small file run again right after: this machine's speed
            # drifts by up to a third within the hour, so the matrix's time can mislead
            small_path = extract(args.data, args.lines, mix, LARGE_SHAPE)
            small_seconds, _ = measure(
                pa_batch_command(small_path, args.data / "out" / "small", extra)
            )
            rows.append({
                "file": path.name, "shape": SHAPES[LARGE_SHAPE][2], "mix": mix,
                "pa_batch_s": round(seconds, 2), "pa_batch_rss_mib": round(rss),
                "small_s": round(small_seconds, 2),
                "growth_vs_small": round(seconds / small_seconds, 2),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    args.report.mkdir(parents=True, exist_ok=True)
    table = render(rows, machine, args.lines)
    (args.report / "results.md").write_text(table)
    (args.report / "results.json").write_text(
        json.dumps({"machine": machine, "lines": args.lines, "rows": rows}, indent=2)
    )
    print(table)


def render(rows: list[dict], machine: str, lines: int) -> str:
    """The matrix as Markdown: each shape and mix, the three references and both ratios."""
    matrix = [r for r in rows if "ratio" in r]
    large = [r for r in rows if "growth_vs_small" in r]
    text = [
        f"Machine: {machine}; other load: see `uptime` at the time of the run.",
        "",
        f"{lines:,} lines. Targets: ≤ {PEER_TARGET}× the equivalent DuckDB pass, ≤ "
        + " / ".join(f"{v}× ({k})" for k, v in LEAN_TARGET.items())
        + " the lean DuckDB pass of the rules alone.",
        "",
        "| shape | mix | pa-batch s | DuckDB pass s | ratio | lean pass s | ratio | "
        "read floor s | ratio | targets | pa-batch peak RSS MiB | DuckDB peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
        *[
            f"| {r['shape']} | {r['mix']} | {r['pa_batch_s']} | {r['duckdb_s']} | {r['ratio']}× "
            f"| {r['lean_s']} | {r['lean_ratio']}× | {r['floor_s']} | {r['floor_ratio']}× "
            f"| {'met' if r['meets'] else 'missed'} | {r['pa_batch_rss_mib']} "
            f"| {r['duckdb_rss_mib']} |"
            for r in matrix
        ],
    ]
    if large:
        text += [
            "",
            f"| {LARGE_LINES:,} lines (pa-batch alone) | mix | pa-batch s | {lines:,} lines "
            "right after s | growth | peak RSS MiB |",
            "|---|---|---:|---:|---:|---:|",
            *[
                f"| {r['shape']} | {r['mix']} | {r['pa_batch_s']} | {r['small_s']} "
                f"| {r['growth_vs_small']}× | {r['pa_batch_rss_mib']} |"
                for r in large
            ],
        ]
    return "\n".join(text) + "\n"


if __name__ == "__main__":
    main()
