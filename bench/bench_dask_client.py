"""What the client of a dask run spends, against the local engine on the same extract.

A scheduler and single-threaded workers are started as separate processes (``dask
scheduler``, ``dask worker``), as on a real cluster, one cluster for each size asked
(``--workers 1 2``: the scaling from one worker to two), all up at once. A cluster's first
run (one file) is timed apart: it pays every worker's imports and first calls, once in a
cluster's life. Then, round after round, ``pa-batch run`` on the local engine and on each
cluster one after another (this machine's speed drifts within the hour: each round's runs
see the same machine), each a process of its own whose CPU time (user + sys, from wait4:
the process alone, never the workers) and wall time are taken. Also: the CPU of a process
that only starts and imports what a dask run imports, and of one that imports only
distributed and pyarrow (the floor of any dask client); the CPU a notebook's process spends
on ``pa_batch.run`` with its connected ``Client`` (imports paid before); whether distributed
warned of a large graph (records shipped through the client); and that every run counted
the same outcomes. Each file of the extract has its own seed and claim ids (``--data DIR``
keeps them there for the next call).

    python bench/bench_dask_client.py --lines 10000000 --files 40 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

HERE = Path(__file__).parent
PA_BATCH = [sys.executable, "-m", "pa_batch"]
# what a dask run's client imports; and what any dask client must (each left as the
# command leaves its objects at exit: frozen, not collected)
IMPORTS = "import pa_batch.cli, pa_batch.runner.pipeline, pa_batch.runner.dask_engine, distributed"
CLIENT_IMPORTS = "import distributed, pyarrow.parquet"
EXIT = "; import gc; gc.freeze()"


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


NOTEBOOK = """
import json, resource, sys
import distributed, pa_batch

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

address, inputs, out, reference, rounds = json.loads(sys.argv[1])
spent = []
with distributed.Client(address) as client:
    for number in range(rounds + 1):  # the first call pays this process's first calls
        before = cpu()
        pa_batch.run(inputs, f"{out}-{number}", reference_dir=reference, engine="dask",
                     client=client)
        spent.append(round(cpu() - before, 3))
print(json.dumps(spent[1:]))
"""


def notebook_client_cpu(address: str, inputs: list[str], out: Path, reference: Path) -> list:
    """The CPU a notebook's process spends on ``pa_batch.run`` on its connected cluster
    (its imports and its first call paid before): the client's own work, each of 3 calls."""
    arguments = json.dumps([address, inputs, str(out), str(reference), 3])
    done = subprocess.run(
        [sys.executable, "-c", NOTEBOOK, arguments], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu(run: dict) -> float:
    return run["cpu_s"]


def _own_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def workers_cpu(address: str) -> float:
    """The CPU seconds the cluster's worker processes have spent so far, together."""
    from dask.distributed import Client

    with Client(address) as client:
        return sum(client.run(_own_cpu).values())


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
    parser.add_argument("--data", type=Path, help="the extracts' folder, kept (made if missing)")
    arguments = parser.parse_args()
    suffix = "csv" if arguments.shape == "csv" else "parquet"
    with tempfile.TemporaryDirectory(prefix="pa-batch-dask-bench-") as scratch:
        folder = Path(scratch)
        data = arguments.data or folder
        data.mkdir(parents=True, exist_ok=True)
        per_file = arguments.lines // arguments.files
        for index in range(arguments.files):  # a seed and claim ids of each file's own
            extract = data / f"part-{index:03}.{suffix}"
            if extract.exists():
                continue
            subprocess.run(
                [sys.executable, str(HERE / "extracts.py"),
                 "--lines", str(per_file), "--seed", str(11 + index),
                 "--first-id", str(index * per_file),
                 "--powder-share", str(arguments.powder_share), "--typed",
                 "--row-group-rows", "65536", "--out", str(extract)],
                check=True,
            )  # fmt: skip
        inputs = [str(data / f"part-*.{suffix}")]
        warm_up = [str(data / f"part-000.{suffix}")]
        reference = ["--reference-dir", str(HERE / "reference")]
        runs: dict[str, list[dict]] = {"local": []}
        cold: dict[str, dict] = {}
        # the CPU a client spends before it plans anything: the interpreter and the imports
        # of a dask run (pandas, pyarrow, pandera, distributed); and of any dask client
        # (the least of 3: a floor, not this machine's noise)
        floor = min((timed([sys.executable, "-c", IMPORTS + EXIT]) for _ in range(3)), key=_cpu)
        client_floor = min(
            (timed([sys.executable, "-c", CLIENT_IMPORTS + EXIT]) for _ in range(3)), key=_cpu
        )
        with ExitStack() as clusters:
            # every cluster size up at once, idle but for the run in hand: the runs of one
            # round go one after another (local, then each cluster), so this machine's
            # drift within the hour falls on every engine alike
            addresses = {
                workers: clusters.enter_context(
                    cluster(folder / f"scheduler-{workers}.json", workers)
                )
                for workers in arguments.workers
            }
            for workers, at in addresses.items():
                engine = f"dask-{workers}"
                runs[engine] = []
                # a cluster's first run pays each worker's imports and first calls: timed
                # apart (a cluster lives across runs; a cold one pays this once)
                cold[engine] = timed(
                    [*PA_BATCH, "run", *warm_up, "--out", str(folder / f"warm-{workers}"),
                     *reference, "--engine", "dask", "--scheduler", at]
                )  # fmt: skip
            for round_number in range(arguments.rounds):
                out = folder / f"out-local-{round_number}"
                runs["local"].append(
                    timed([*PA_BATCH, "run", *inputs, "--out", str(out), *reference])
                )
                for workers, at in addresses.items():
                    out = folder / f"out-dask-{workers}-{round_number}"
                    extra = ["--engine", "dask", "--scheduler", at]
                    before = workers_cpu(at)
                    run = timed([*PA_BATCH, "run", *inputs, "--out", str(out), *reference, *extra])
                    run["workers_cpu_s"] = round(workers_cpu(at) - before, 2)
                    runs[f"dask-{workers}"].append(run)
            most = max(arguments.workers)
            notebook = notebook_client_cpu(
                addresses[most], inputs, folder / "out-notebook", HERE / "reference"
            )
        # every engine decided the same: the counts of each run equal the local run's
        summaries = {
            out.name: json.loads((out / "summary.json").read_text()) for out in folder.glob("out-*")
        }
        counts = {name: summary["counts"] for name, summary in summaries.items()}
        if len({json.dumps(c, sort_keys=True) for c in counts.values()}) != 1:
            raise SystemExit("the runs' counts differ")
        duplicates = summaries["out-local-0"]["errors"]["DUPLICATE_KEY"]
    best = {engine: min(results, key=lambda r: r["wall_s"]) for engine, results in runs.items()}
    most = f"dask-{max(arguments.workers)}"
    local_cpu = best["local"]["cpu_s"]
    report = {
        "lines": arguments.lines,
        "files": arguments.files,
        "powder_share": arguments.powder_share,
        "shape": arguments.shape,
        "duplicate_keys": duplicates,
        "workers": arguments.workers,
        "runs": runs,
        "client_cpu_share_of_local_cpu": round(best[most]["cpu_s"] / local_cpu, 3),
        "import_floor_cpu_s": floor["cpu_s"],
        "client_cpu_beyond_imports_share": round(
            (best[most]["cpu_s"] - floor["cpu_s"]) / local_cpu, 3
        ),
        "any_dask_client_floor_cpu_s": client_floor["cpu_s"],
        "any_dask_client_floor_share": round(client_floor["cpu_s"] / local_cpu, 3),
        "notebook_client_cpu_s": notebook,
        "notebook_client_cpu_share": [round(cpu / local_cpu, 3) for cpu in notebook],
        "first_run_on_a_cold_cluster": cold,
        "dask_wall_vs_local": round(best[most]["wall_s"] / best["local"]["wall_s"], 2),
    }
    if len(arguments.workers) > 1:  # throughput from the fewest workers to the most
        fewest = f"dask-{min(arguments.workers)}"
        report["scaling"] = round(best[fewest]["wall_s"] / best[most]["wall_s"], 2)
        report["scaling_by_round"] = [
            round(few["wall_s"] / many["wall_s"], 2)
            for few, many in zip(runs[fewest], runs[most], strict=True)
        ]
        # the headline: runs of one round saw the same machine (best-of pairs rounds apart)
        report["scaling_median_of_rounds"] = statistics.median(report["scaling_by_round"])
    print(json.dumps(report, indent=2))
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
