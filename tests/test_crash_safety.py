"""Crash safety: a real ``pa-batch`` process SIGKILLed at many points of a large run leaves
its output directory holding exactly the previous committed run or exactly the new one.

The directory first holds run A (a small extract). Run B (a 100,000-record extract, decided
10,000 records at a time) is killed: before it reads, after its first batch, halfway, once
every record is read, at a spread of instants through closing, summarising and committing,
and after it reports the commit. After each kill, everything a reader of DIR sees
(results, rejects, both summaries) must be byte for byte A's or B's, never a mix; the
next run must take the directory over and clear what the killed one left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import HEADER
from typer.testing import CliRunner

from pa_batch.cli import app

pytestmark = pytest.mark.subprocess

RECORDS = 100_000
BATCH_ROWS = "10000"
VISIBLE = ("results.parquet", "rejects.parquet", "summary.json")


def _extract(path: Path, records: int, seed: int) -> Path:
    """Claim lines, a quarter of them baclofen powder, a few damaged."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("K", np.arange(records).astype(str))
    drug = np.where(rng.random(records) < 0.25, "BACLOFEN POWDER", "METFORMIN 500 MG TAB")
    strength = rng.choice(["5", "10", "25", "x"], records, p=[0.5, 0.3, 0.19, 0.01])
    dx = rng.choice(["G35", "G80.1", "E11.9"], records)
    line = np.char.add(ids, ",1,M1,1980-01-02,2024-05-01,00000-0000-00,")
    line = np.char.add(np.char.add(line, drug), ",oral,")
    line = np.char.add(np.char.add(np.char.add(line, strength), ",mg,"), dx)
    path.write_text(HEADER + "\n" + "\n".join(line.tolist()) + "\n", encoding="utf-8")
    return path


def _command(extract: Path, out: Path) -> list[str]:
    # run from the extract's folder: `-m` must find the installed package, not ./pa_batch
    return [sys.executable, "-m", "pa_batch", "run", str(extract), "--out", str(out),
            "--batch-rows", BATCH_ROWS, "--log-format", "json"]  # fmt: skip


def _visible(out: Path) -> dict[str, bytes]:
    """What a reader of DIR sees under the final names."""
    return {name: (out / name).read_bytes() for name in VISIBLE if (out / name).exists()}


def _comparable(state: dict[str, bytes]) -> dict[str, bytes]:
    """summary.json less the fields that differ from run to run (id, times, and the digest
    of summary.md, which names them)."""
    summary = json.loads(state["summary.json"])
    summary.pop("run")
    summary["outputs"]["sha256"].pop("summary.md", None)
    return {**state, "summary.json": json.dumps(summary, sort_keys=True).encode()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Committed directories of run A and of an uninterrupted run B, as references."""
    folder = tmp_path_factory.mktemp("crash")
    small = _extract(folder / "a.csv", 1_000, seed=1)
    large = _extract(folder / "b.csv", RECORDS, seed=2)
    for extract, out in ((small, folder / "ref_a"), (large, folder / "ref_b")):
        subprocess.run(_command(extract, out), check=True, capture_output=True, cwd=folder)
    return {
        "folder": folder,
        "small": small,
        "large": large,
        "dir_a": folder / "ref_a",
        "a": _comparable(_visible(folder / "ref_a")),
        "b": _comparable(_visible(folder / "ref_b")),
    }


def _kill_when(process: subprocess.Popen, event: str, nth: int, delay: float) -> list[dict]:
    """Read the JSON log until the nth ``event``, wait ``delay`` seconds, SIGKILL."""
    seen, events = 0, []
    if event == "start":
        time.sleep(delay)
    else:
        for raw in process.stdout:
            events.append(json.loads(raw))
            if events[-1]["event"] == event:
                seen += 1
                if seen == nth:
                    break
        time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return events


KILL_POINTS = [
    ("start", 0, 0.2),  # still importing
    ("batch_done", 1, 0.0),  # first batch staged
    ("batch_done", RECORDS // int(BATCH_ROWS) // 2, 0.0),  # halfway
    # every record read: closing the writers, summaries, commit (measured: ~3 ms in all)
    *[("input_finished", 1, delay) for delay in (0.0, 0.1)],
    ("run_committed", 1, 0.0),  # reported committed: must be B
]


@pytest.mark.parametrize(
    ("event", "nth", "delay"), KILL_POINTS, ids=[f"{e}-{n}-{d}" for e, n, d in KILL_POINTS]
)
def test_sigkill_leaves_previous_or_complete_new_run(runs, tmp_path, event, nth, delay):
    out = tmp_path / "out"
    shutil.copytree(runs["dir_a"], out, symlinks=True)
    assert _comparable(_visible(out)) == runs["a"]

    with subprocess.Popen(
        _command(runs["large"], out),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    ) as process:
        events = _kill_when(process, event, nth, delay)
    if event in ("start", "batch_done"):
        assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    else:  # once every record is read, the run may win the race to its exit
        assert process.returncode in (-signal.SIGKILL, 0)

    state = _comparable(_visible(out))
    assert state in (runs["a"], runs["b"]), "a torn or mixed set of outputs"
    if event == "run_committed" or process.returncode == 0:
        assert state == runs["b"]
    if event in ("start", "batch_done"):
        assert state == runs["a"]
    assert any(e["event"] == event for e in events) or event == "start"

    # the kill freed the lock; the next run commits and leaves no debris behind
    rerun = subprocess.run(_command(runs["small"], out), capture_output=True, cwd=tmp_path)
    assert rerun.returncode == 0
    assert _comparable(_visible(out)) == runs["a"]
    _assert_no_debris(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".pa-batch", "summary.md", "summary.html", *VISIBLE]
    )


# The commit itself lasts milliseconds, too short to aim a timer at each of its steps. This
# driver SIGKILLs its own process just before the Nth step of the commit that changes the
# directory (a rename, a symlink, an unlink, a tree removal), so every step is hit exactly.
KILL_AT_COMMIT_STEP = """
import os, shutil, signal, sys
from pa_batch.io import commit as committer
from pa_batch.cli import main

target, steps, committing, inside = int(sys.argv[1]), 0, False, False

def step(function):
    def counted(*args, **kwargs):
        global steps, inside
        if not committing or inside:
            return function(*args, **kwargs)
        steps += 1
        if steps == target:
            os.kill(os.getpid(), signal.SIGKILL)
        inside = True
        try:
            return function(*args, **kwargs)
        finally:
            inside = False
    return counted

for name in ("rename", "replace", "symlink", "unlink"):
    setattr(os, name, step(getattr(os, name)))
shutil.rmtree = step(shutil.rmtree)
commit = committer.OutputDirectory.commit

def watched_commit(self, names):
    global committing
    committing = True
    commit(self, names)
    print(f"commit steps: {steps}", file=sys.stderr)

committer.OutputDirectory.commit = watched_commit
sys.argv = ["pa-batch", *sys.argv[2:]]
main()
"""


def _assert_no_debris(out: Path) -> None:
    """Only the control files and committed runs of the history: no staging, no run a killed
    commit never made current."""
    assert sorted(os.listdir(out / ".pa-batch")) == ["current", "last_attempt.json", "lock", "runs"]
    for run_dir in (out / ".pa-batch" / "runs").iterdir():
        assert (run_dir / ".committed").exists(), run_dir.name
        assert (run_dir / "summary.json").exists(), run_dir.name


def _killed_at_commit_step(
    step: int, extract: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess:
    arguments = ["run", str(extract), "--out", str(out), "--format", "csv", *extra]
    return subprocess.run(
        [sys.executable, "-c", KILL_AT_COMMIT_STEP, str(step), *arguments],
        capture_output=True, text=True, cwd=out.parent,
    )  # fmt: skip


def _visible_any_format(out: Path) -> dict[str, bytes]:
    names = [p.name for p in out.iterdir() if p.name.split(".")[0] in ("results", "rejects")]
    state = {n: (out / n).read_bytes() for n in [*names, "summary.json"] if (out / n).exists()}
    return _comparable(state)


def test_sigkill_at_every_step_of_the_commit(runs, tmp_path):
    """Previous run Parquet, new run CSV: even the file names change, all at one instant."""
    small = runs["small"]
    new_dir = tmp_path / "ref_csv"
    assert _killed_at_commit_step(0, small, new_dir).returncode == 0
    new_run = _visible_any_format(new_dir)
    old_run = _visible_any_format(runs["dir_a"])
    assert set(new_run) == {"results.csv", "rejects.csv", "summary.json"}

    out = tmp_path / "out"
    shutil.copytree(runs["dir_a"], out, symlinks=True)
    counted = _killed_at_commit_step(0, small, out)
    total = int(counted.stderr.split("commit steps: ")[1].split()[0])
    assert total >= 8  # rename, two new links (symlink + replace each), the swap, cleanup

    old_id = json.loads((runs["dir_a"] / "summary.json").read_text())["run"]["id"]
    decided_claim = pd.read_parquet(runs["dir_a"] / "results.parquet")["claim_id"][0]
    seen = []
    for step in range(1, total + 1):
        out = tmp_path / f"out{step}"
        shutil.copytree(runs["dir_a"], out, symlinks=True)
        killed = _killed_at_commit_step(step, small, out, "--run-id", "new")
        assert killed.returncode == -signal.SIGKILL
        state = _visible_any_format(out)
        assert state in (old_run, new_run), f"torn outputs after a kill at commit step {step}"
        seen.append("new" if state == new_run else "old")
        # the history agrees with what DIR serves: its current run is the one listed current,
        # and the reading commands find it by id
        served = "new" if state == new_run else old_id
        listing = CliRunner().invoke(app, ["runs", str(out)])
        assert listing.exit_code == 0, listing.output
        assert f"{served} *" in listing.stdout, (step, listing.stdout)
        explained = CliRunner().invoke(app, ["explain", served, decided_claim, "--in", str(out)])
        assert explained.exit_code == 0, (step, explained.output)
        if state == old_run:  # nothing committed: the same id may be given again
            retry = ["--run-id", "new"]
        else:
            retry = []
            assert "new" in [line.split()[0] for line in listing.stdout.splitlines()[1:] if line]
        rerun = CliRunner().invoke(
            app, ["run", str(small), "--out", str(out), "--format", "csv", *retry]
        )
        assert rerun.exit_code == 0, (step, rerun.output)
        assert _visible_any_format(out) == new_run
        _assert_no_debris(out)
        assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".pa-batch"]
    # one step, the swap of `current`, turns the old run into the new one, and only once
    assert seen == sorted(seen, key=["old", "new"].index)
    assert "old" in seen and "new" in seen


KILL_WHILE_RETIRING = """
import os, shutil, signal, sys
from pa_batch.cli import main

def remove_some_then_die(path, *args, **kwargs):
    # a retirement killed halfway: the run's summary and results gone, its mark still there
    for name in ("summary.json", "results.parquet"):
        os.unlink(os.path.join(path, name))
    os.kill(os.getpid(), signal.SIGKILL)

shutil.rmtree = remove_some_then_die
sys.argv = ["pa-batch", *sys.argv[1:]]
main()
"""


def test_a_run_killed_while_retiring_an_old_run_leaves_no_half_run_in_the_history(runs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(runs["dir_a"], out, symlinks=True)
    old_id = json.loads((runs["dir_a"] / "summary.json").read_text())["run"]["id"]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_WHILE_RETIRING, "run", str(runs["small"]), "--out", str(out),
         "--run-id", "new", "--keep-runs", "1"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    listing = CliRunner().invoke(app, ["runs", str(out)])
    assert listing.exit_code == 0, listing.output
    assert old_id not in listing.stdout and "new *" in listing.stdout
    diffed = CliRunner().invoke(
        app, ["diff", old_id, "new", "--in", str(out), "--out", str(tmp_path / "d.csv")]
    )
    assert diffed.exit_code == 1 and "no committed run with this id" in diffed.stderr
    rerun = CliRunner().invoke(app, ["run", str(runs["small"]), "--out", str(out)])
    assert rerun.exit_code == 0, rerun.output
    _assert_no_debris(out)


def test_two_processes_into_one_directory_the_second_fails_fast(runs, tmp_path):
    out = tmp_path / "out"
    with subprocess.Popen(
        _command(runs["large"], out), stdout=subprocess.PIPE, text=True, cwd=tmp_path
    ) as first:
        for raw in first.stdout:  # the first run holds the lock once it reads
            if json.loads(raw)["event"] == "batch_done":
                break
        first.send_signal(signal.SIGSTOP)  # frozen mid-run: a second run that waited would hang
        try:
            second = subprocess.run(
                _command(runs["small"], out), capture_output=True, text=True, cwd=tmp_path,
                timeout=60,
            )  # fmt: skip
        finally:
            first.send_signal(signal.SIGCONT)
        first_stdout = first.stdout.read()
        first.wait(timeout=120)
    assert second.returncode == 75  # EX_TEMPFAIL: a scheduler retries it later
    failed, finished = (json.loads(line) for line in second.stdout.splitlines()[-2:])
    assert failed["error"] == "another pa-batch run is writing to this output directory"
    assert failed["file"] == str(out) and failed["category"] == "transient"
    assert finished["exit_code"] == 75
    assert first.returncode == 0, first_stdout
    assert _comparable(_visible(out)) == runs["b"]
