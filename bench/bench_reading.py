"""Benchmark: the reading commands at size — `pa-batch explain` of one claim and `pa-batch
diff` of two runs — against the run that made them, on the same extract.

    python bench/bench_reading.py                    # 10M all-powder lines (make bench)
    python bench/bench_reading.py --lines 200000     # a smoke

An extract of every line baclofen powder is generated once into bench/data (Parquet, as
bench/extracts.py writes it). It is run twice into one output directory: under the shipped
policy (run `shipped`), and under a definition whose oral limit is 25 mg (run `limit25`), so
the two runs differ on many lines. Then `explain` of a claim in the middle of the extract, in
each output format, and `diff` of the two runs. Each command is its own process; wall time
and peak RSS (wait4) are recorded. Targets: explain <= 5 s and <= 300 MiB; diff <= 1 GiB and
no slower than the run itself. Written to bench/reading.md and bench/reading.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from importlib import resources
from pathlib import Path

from bench_run import generate_apart, measure

HERE = Path(__file__).parent
EXPLAIN_SECONDS, EXPLAIN_MIB, DIFF_MIB = 5.0, 300.0, 1024.0


def pa_batch(*arguments: str) -> list[str]:
    return [str(Path(sys.executable).with_name("pa-batch")), *arguments]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=HERE / "data", help="extracts and runs")
    parser.add_argument("--report", type=Path, default=HERE, help="reading.md, reading.json")
    args = parser.parse_args()
    data = args.data
    extract = data / f"extract_{args.lines}_all.parquet"
    if not extract.exists():
        generate_apart(extract, args.lines, 1.0)
    work = data / f"reading_{args.lines}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shipped = resources.files("pa_batch.policy.data").joinpath("baclofen-powder.toml").read_text()
    limit25 = work / "limit25.toml"
    limit25.write_text(
        shipped.replace("oral_max_mg_per_unit = 20.0", "oral_max_mg_per_unit = 25.0")
    )

    rows = []

    def record(what: str, command: list[str], target: str) -> tuple[float, float]:
        seconds, mib = measure(command)
        rows.append({"command": what, "seconds": round(seconds, 2), "peak_rss_mib": round(mib),
                     "target": target})  # fmt: skip
        print(f"{what}: {seconds:.2f} s, {mib:.0f} MiB", file=sys.stderr, flush=True)
        return seconds, mib

    reference = ["--reference-dir", str(HERE / "reference")]
    for output_format in ("parquet", "csv"):
        out = work / f"out_{output_format}"
        run_seconds, _ = record(
            f"run (shipped policy, {output_format} out)",
            pa_batch(
                "run",
                str(extract),
                "--out",
                str(out),
                *reference,
                "--run-id",
                "shipped",
                "--format",
                output_format,
            ),  # fmt: skip
            "the reference for diff",
        )
        record(
            f"run (oral limit 25 mg, {output_format} out)",
            pa_batch(
                "run",
                str(extract),
                "--out",
                str(out),
                *reference,
                "--run-id",
                "limit25",
                "--format",
                output_format,
                "--policy",
                str(limit25),
            ),  # fmt: skip
            "",
        )
        claim = f"RX{args.lines // 2:010d}"
        record(
            f"explain one claim ({output_format} results)",
            pa_batch("explain", str(out), claim),
            f"<= {EXPLAIN_SECONDS:.0f} s, <= {EXPLAIN_MIB:.0f} MiB",
        )
        record(
            f"diff of the two runs ({output_format} results)",
            pa_batch(
                "diff",
                "shipped",
                "limit25",
                "--in",
                str(out),
                "--out",
                str(work / f"diff_{output_format}.parquet"),
            ),  # fmt: skip
            f"<= {DIFF_MIB:.0f} MiB, <= the run ({run_seconds:.1f} s)",
        )
    report = {
        "lines": args.lines,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "rows": rows,
    }
    (args.report / "reading.json").write_text(json.dumps(report, indent=2) + "\n")
    table = ["| command | seconds | peak RSS (MiB) | target |", "|---|---:|---:|---|"]
    table += [
        f"| {r['command']} | {r['seconds']} | {r['peak_rss_mib']} | {r['target']} |" for r in rows
    ]
    (args.report / "reading.md").write_text(
        f"# The reading commands on {args.lines:,} all-powder lines\n\n" + "\n".join(table) + "\n"
    )
    print("\n".join(table))


if __name__ == "__main__":
    main()
