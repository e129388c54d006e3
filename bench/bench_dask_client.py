"""What the client of a dask run spends, against the local engine on the same extract.

A scheduler and single-threaded workers are started as separate processes (``dask
scheduler``, ``dask worker``), as on a real cluster, one cluster for each size asked
(``--workers 1 2``: the scaling from one worker to two); then, alternately, ``pa-batch run``
on the local engine and on each cluster, each a process of its own whose CPU time (user + sys,
from wait4: the process alone, never the workers) and wall time are taken. Also whether
distributed warned of a large graph (records shipped through the client).

    python bench/bench_dask_client.py --lines 10000000 --files 40 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

HERE = Path(__file__).parent
PA_BATCH = [sys.executable, "-m", "pa_batch"]


def timed(command: list[str]) -> dict:
    """Run ``command``; its own CPU seconds, wall seconds, peak RSS and stderr."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        stderr.seek(0)
        said = stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:4]} failed: {said[-500:]}")
    return {
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "wall_s": round(time.perf_counter() - started, 2),
        "rss_mib": round(usage.ru_maxrss / 1024),
        "large_graph_warning": "large graph" in said.lower(),
    }


@contextmanager
def cluster(scheduler_file: Path, workers: int) -> Iterator[str]:
    """A scheduler and ``workers`` single-threaded worker processes, as on a real cluster
    (ports the system picks); the scheduler's address."""
    from dask.distributed import Client

    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(scheduler_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
    ]
    try:
        address = None
        while address is None:  # the scheduler writes the file once it listens
            time.sleep(0.2)
            with suppress(OSError, ValueError):
                address = json.loads(scheduler_file.read_text())["address"]
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    address,
                    "--nthreads",
                    "1",
                    "--nworkers",
                    str(workers),
                    "--no-dashboard",
                    "--memory-limit",
                    "4GiB",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        )
        with Client(address) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--powder-share", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[2], help="cluster sizes to run on, e.g. 1 2"
    )
    parser.add_argument(
        "--shape", choices=["typed-parquet", "csv"], default="typed-parquet",
        help="the extracts' shape: typed Parquet in 64K-row groups, or CSV (a file a part)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    suffix = "csv" if arguments.shape == "csv" else "parquet"
    with tempfile.TemporaryDirectory(prefix="pa-batch-dask-bench-") as scratch:
        folder = Path(scratch)
        for index in range(arguments.files):
            subprocess.run(
                [sys.executable, str(HERE / "extracts.py"),
                 "--lines", str(arguments.lines // arguments.files),
                 "--powder-share", str(arguments.powder_share), "--typed",
                 "--row-group-rows", "65536", "--out", str(folder / f"part-{index:03}.{suffix}")],
                check=True,
            )  # fmt: skip
        inputs = [str(folder / f"part-*.{suffix}")]
        reference = ["--reference-dir", str(HERE / "reference")]
        runs: dict[str, list[dict]] = {"local": []}
        for workers in arguments.workers:
            runs[f"dask-{workers}"] = []
        for round_number in range(arguments.rounds):
            out = folder / f"out-local-{round_number}"
            runs["local"].append(timed([*PA_BATCH, "run", *inputs, "--out", str(out), *reference]))
            for workers in arguments.workers:
                with cluster(folder / f"scheduler-{workers}-{round_number}.json", workers) as at:
                    out = folder / f"out-dask-{workers}-{round_number}"
                    extra = ["--engine", "dask", "--scheduler", at]
                    runs[f"dask-{workers}"].append(
                        timed([*PA_BATCH, "run", *inputs, "--out", str(out), *reference, *extra])
                    )
    best = {engine: min(results, key=lambda r: r["wall_s"]) for engine, results in runs.items()}
    most = f"dask-{max(arguments.workers)}"
    report = {
        "lines": arguments.lines,
        "files": arguments.files,
        "powder_share": arguments.powder_share,
        "shape": arguments.shape,
        "workers": arguments.workers,
        "runs": runs,
        "client_cpu_share_of_local_cpu": round(best[most]["cpu_s"] / best["local"]["cpu_s"], 3),
        "dask_wall_vs_local": round(best[most]["wall_s"] / best["local"]["wall_s"], 2),
    }
    if len(arguments.workers) > 1:  # throughput from the fewest workers to the most
        fewest = f"dask-{min(arguments.workers)}"
        report["scaling"] = round(best[fewest]["wall_s"] / best[most]["wall_s"], 2)
    print(json.dumps(report, indent=2))
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
