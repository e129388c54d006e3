"""pa_batch as a library, for notebooks and orchestrators; the ``pa-batch`` command is a thin
layer over it.

    import pa_batch
    result = pa_batch.run(["claims/2024-*.parquet"], "out/")
    result.status, result.exit_code        # "committed" / "committed_over_threshold", 0 / 3
    result.results()                       # the committed results, as a pandas DataFrame
    results, rejects = pa_batch.decide_frame(frame)
    pa_batch.explain("out/", "C1"); pa_batch.diff("out/a", "out/b"); pa_batch.runs("out/")

A failure raises ``RunError`` (``.message``, ``.file``, ``.column``, ``.category``:
``input``, ``transient`` or ``internal``). Events go to the ``logging`` logger ``pa_batch``
and to ``on_event``. Nothing here tunes the process: the Arrow memory pool, malloc and
transparent huge pages stay as the caller has them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pa_batch.audit.diff import diff_frame
from pa_batch.audit.explain import explain as explain_run
from pa_batch.audit.history import list_runs, read_run_table, read_summary, resolve_run
from pa_batch.errors import INPUT, INTERNAL, TRANSIENT, RunError, RunIdTaken
from pa_batch.io.commit import (
    CONTROL_DIR,
    DEFAULT_KEEP_RUNS,
    committed_runs,
    new_run_id,
    record_failure,
    run_dir_name,
    run_id_problem,
    write_last_attempt,
)
from pa_batch.io.formats import CSV, PARQUET
from pa_batch.io.inputs import DEFAULT_BATCH_ROWS, expand_inputs, sha256_of_path
from pa_batch.io.storage import Location, locate
from pa_batch.policy.definition import load_policy
from pa_batch.policy.reference import load_reference
from pa_batch.runner.engines import DASK, LOCAL, scheduler_address_problem
from pa_batch.runner.events import Events, OnEvent, outcome_counts
from pa_batch.runner.pipeline import RunOptions
from pa_batch.runner.pipeline import run as run_pipeline
from pa_batch.version import __version__

COMMITTED = "committed"
COMMITTED_OVER_THRESHOLD = "committed_over_threshold"
FAILED = "failed"
EXIT_OK, EXIT_FAILED, EXIT_OVER_THRESHOLD, EXIT_TRANSIENT = 0, 1, 3, 75  # 75: EX_TEMPFAIL
MAX_BATCH_ROWS = 1 << 30
# the options that change what a run commits: a retry with the same id must give them again
_DECIDING_OPTIONS = ("format", "max_reject_rate", "encoding")

PathLike = str | Path  # a local path, or a URL (s3://, gs://, abfs://, file://)
FRAME = "<frame>"  # decide_frame's source_file


@dataclass(frozen=True)
class RunResult:
    """A committed run: its status and exit code, where it is, and its summary."""

    status: str  # "committed" | "committed_over_threshold"
    exit_code: int  # 0 | 3
    run_id: str
    run_dir: Location  # DIR/.pa-batch/runs/<name>: the run's own files
    summary: dict  # summary.json
    warnings: list[str] = field(default_factory=list)  # after the commit; the run stands
    already_committed: bool = False  # a retry of a committed run: nothing was written

    def results(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The run's results (read now, from the run's own file)."""
        return read_run_table(self.run_dir, "results", columns)

    def rejects(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The run's rejects (read now, from the run's own file)."""
        return read_run_table(self.run_dir, "rejects", columns)


def run(
    inputs: PathLike | Iterable[PathLike],
    out: PathLike,
    *,
    reference_dir: PathLike | None = None,
    policy: PathLike | None = None,
    run_id: str | None = None,
    output_format: str = PARQUET,
    engine: str = LOCAL,
    scheduler: str | None = None,
    client=None,
    max_reject_rate: float | None = None,
    batch_rows: int | None = None,
    keep_runs: int = DEFAULT_KEEP_RUNS,
    encoding: str = "utf-8",
    on_event: OnEvent | None = None,
) -> RunResult:
    """Decide every baclofen powder line of ``inputs`` and commit results, rejects and the
    summaries to ``out``; raise ``RunError`` if nothing is committed.

    ``inputs``: files (.csv, .csv.gz, .parquet), directories, glob patterns. ``run_id``: an
    orchestrator's own id (any printable text, at most 250); a retry with the id of a run
    already committed with the same inputs, options, policy and reference data writes
    nothing and returns that run (``already_committed``); with other inputs, it fails.
    ``client``: a connected ``distributed.Client`` for ``engine="dask"``.
    """
    paths = [locate(inputs)] if isinstance(inputs, str | Path) else [locate(p) for p in inputs]
    out_dir = locate(out)
    _check_arguments(
        run_id, output_format, engine, scheduler, client, max_reject_rate, batch_rows, keep_runs
    )
    run_id = run_id or new_run_id()
    events = Events(run_id, on_event)
    options = RunOptions(
        inputs=paths,
        out_dir=out_dir,
        output_format=output_format,
        reference_dir=locate(reference_dir) if reference_dir is not None else None,
        max_reject_rate=max_reject_rate,
        encoding=encoding,
        batch_rows=batch_rows or DEFAULT_BATCH_ROWS,
        run_id=run_id,
        engine=engine,
        scheduler=scheduler,
        keep_runs=keep_runs,
        policy=locate(policy) if policy is not None else None,
    )
    try:
        earlier = _committed_run(out_dir, run_id)
        if earlier is not None:
            return _retry_of_committed(earlier, options, events)
        report = run_pipeline(options, progress=events, client=client)
    except RunError as error:
        # a refused id is no failure *of that id*: nothing is recorded beside its run
        _failed(error, options, events, recorded=not isinstance(error, RunIdTaken))
        raise
    except Exception as error:  # a defect of ours: its text may quote data, so name the type
        failure = RunError(f"internal error ({type(error).__name__})", category=INTERNAL)
        _failed(failure, options, events)
        raise failure from error
    for warning in report.warnings:
        events.emit("run_warning", warning, level="warning", warning=warning, file=str(out_dir))
    for notice in report.notices:
        events.emit("run_warning", notice, level="warning", warning=notice, file=None)
    counts = outcome_counts(report.counts.rows_read, report.counts.outcomes)
    committed: dict[str, Any] = {
        "out": str(out_dir),
        **counts,
        "reject_rate": round(report.reject_rate, 6),
    }
    events.emit(
        "run_committed", f"committed {counts['rows_read']:,} records to {out_dir}", **committed
    )
    status, code = COMMITTED, EXIT_OK
    if report.over_reject_threshold:
        limit = report.options["max_reject_rate"]
        events.emit(
            "reject_rate_exceeded",
            f"reject rate {report.reject_rate:.2%} exceeds --max-reject-rate {limit:.2%}",
            level="error",
            reject_rate=round(report.reject_rate, 6),
            max_reject_rate=limit,
        )
        status, code = COMMITTED_OVER_THRESHOLD, EXIT_OVER_THRESHOLD
    run_dir = out_dir / CONTROL_DIR / "runs" / run_dir_name(run_id)
    summary = read_summary(run_dir)
    _finished(events, options, status, code, counts, summary_path=run_dir / "summary.json")
    return RunResult(status, code, run_id, run_dir, summary, list(report.warnings))


def _check_arguments(
    run_id, output_format, engine, scheduler, client, max_reject_rate, batch_rows, keep_runs
) -> None:
    """The arguments a caller gave, checked before anything is read: a RunError (input)."""
    problems = [
        (run_id is not None and run_id_problem(run_id), "run_id"),
        (output_format not in (PARQUET, CSV) and "parquet or csv", "output_format"),
        (engine not in (LOCAL, DASK) and "local or dask", "engine"),
        ((scheduler or client is not None) and engine != DASK and "needs engine dask", "scheduler"),
        (scheduler and scheduler_address_problem(scheduler), "scheduler"),
        (
            max_reject_rate is not None
            and not 0 <= max_reject_rate <= 1
            and "a rate from 0 to 1",
            "max_reject_rate",
        ),
        (batch_rows is not None and not 0 < batch_rows <= MAX_BATCH_ROWS and "1 to 2**30",
         "batch_rows"),
        (not 0 < keep_runs <= 100_000 and "1 to 100,000", "keep_runs"),
    ]  # fmt: skip
    for problem, name in problems:
        if problem:
            raise RunError(f"invalid {name}: {problem}", category=INPUT)


def _committed_run(out_dir: Location, run_id: str) -> Location | None:
    """The run directory of ``run_id`` if it is committed in ``out_dir``'s history."""
    candidate = out_dir / CONTROL_DIR / "runs" / run_dir_name(run_id)
    if candidate.is_dir() and candidate in committed_runs(out_dir / CONTROL_DIR):
        return candidate
    return None


def _retry_of_committed(run_dir: Location, options: RunOptions, events: Events) -> RunResult:
    """A retry of a committed run: the same inputs, options, policy and reference data
    (compared by SHA-256) return it, writing nothing; anything else fails naming the id."""
    summary = read_summary(run_dir)
    if _fingerprint_of_summary(summary) != _fingerprint_of_options(options):
        raise RunIdTaken(
            f"run id '{options.run_id}' is already committed here with other inputs, options, "
            "policy or reference data; give a new run id",
            file=str(options.out_dir),
        )
    status = str(summary["run"].get("status", COMMITTED))
    code = EXIT_OVER_THRESHOLD if status == COMMITTED_OVER_THRESHOLD else EXIT_OK
    counts = {"rows_read": summary["counts"]["rows_read"]}
    counts.update(outcome_counts(counts["rows_read"], summary["counts"]))
    events.emit(
        "run_already_committed",
        f"run {options.run_id} is already committed with these inputs, options, policy and "
        "reference data; nothing written",
        status=status,
        exit_code=code,
    )
    _finished(events, options, status, code, counts, run_dir / "summary.json", record=False)
    return RunResult(status, code, str(options.run_id), run_dir, summary, already_committed=True)


def _fingerprint_of_summary(summary: dict) -> dict:
    try:
        return {
            "inputs": [entry["sha256"] for entry in summary["inputs"]],
            "options": {k: summary["options"].get(k) for k in _DECIDING_OPTIONS},
            "policy": summary["policy"]["sha256"],
            "reference": {entry["name"]: entry["sha256"] for entry in summary["reference"]},
        }
    except (KeyError, TypeError) as error:
        raise RunError("damaged: not the shape pa-batch writes", file="summary.json") from error


def _fingerprint_of_options(options: RunOptions) -> dict:
    """What a run with ``options`` would be decided from, by SHA-256 (each input is read)."""
    policy = load_policy(options.policy)
    reference = load_reference(options.reference_dir, policy)
    recorded = options.recorded()
    return {
        "inputs": [sha256_of_path(path) for path in expand_inputs(options.inputs)],
        "options": {k: recorded.get(k) for k in _DECIDING_OPTIONS},
        "policy": policy.sha256,
        "reference": {source.name: source.sha256 for source in reference.sources},
    }


def exit_code_of(error: RunError) -> int:
    return EXIT_TRANSIENT if error.category == TRANSIENT else EXIT_FAILED


def _failed(error: RunError, options: RunOptions, events: Events, recorded: bool = True) -> None:
    code = exit_code_of(error)
    events.emit(
        "run_failed",
        str(error),
        level="error",
        error=error.message,
        file=error.file,
        column=error.column,
        category=error.category,
    )
    record = {
        "run_id": events.run_id,
        "status": FAILED,
        "at": _now(),
        "exit_code": code,
        "error": " ".join(error.message.split()),
        "category": error.category,
        "file": error.file,
        "column": error.column,
        "pa_batch_version": __version__,
    }
    write_last_attempt(options.out_dir, record)  # makes DIR/.pa-batch: a first run too
    if recorded:
        record_failure(options.out_dir, {**record, "failed_at": record["at"]})
    events.emit(
        "run_finished",
        f"finished: {FAILED} (exit {code})",
        status=FAILED,
        exit_code=code,
        counts=None,
        summary=None,
    )


def _finished(
    events: Events,
    options: RunOptions,
    status: str,
    code: int,
    counts: dict,
    summary_path: Location,
    record: bool = True,
) -> None:
    if record:
        write_last_attempt(
            options.out_dir,
            {
                "run_id": events.run_id,
                "status": status,
                "at": _now(),
                "exit_code": code,
                "error": None,
                "summary": str(summary_path),
                "pa_batch_version": __version__,
            },
        )
    events.emit(
        "run_finished",
        f"finished: {status} (exit {code})",
        status=status,
        exit_code=code,
        counts=counts,
        summary=str(summary_path),
    )


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def decide_frame(
    frame: pd.DataFrame, *, reference_dir: PathLike | None = None, policy: PathLike | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decide the claim lines of ``frame`` (the extract's columns) as a run would, and return
    (results, rejects) as DataFrames: the same decisions and rejects, row for row, as a run
    of the same records. Nothing is left on disk (the run is made in a temporary directory);
    ``source_file`` reads ``<frame>`` and ``source_row`` is the frame's row, from 1."""
    with tempfile.TemporaryDirectory(prefix="pa-batch-frame-") as scratch:
        extract = Path(scratch) / "frame.parquet"
        frame.reset_index(drop=True).to_parquet(extract, index=False)
        options = RunOptions(
            inputs=[extract],
            out_dir=Path(scratch) / "out",
            reference_dir=locate(reference_dir) if reference_dir is not None else None,
            policy=locate(policy) if policy is not None else None,
            keep_runs=1,
        )
        run_pipeline(options)
        run_dir = resolve_run(str(options.out_dir))
        tables = [read_run_table(run_dir, name) for name in ("results", "rejects")]
    for table in tables:
        if len(table):
            table["source_file"] = FRAME
    rejects = tables[1]
    if len(rejects):  # a DUPLICATE_KEY message names where the key was first seen
        rejects["message"] = rejects["message"].str.replace(str(extract), FRAME, regex=False)
    return tables[0], rejects


def explain(run: PathLike, claim_id: str, line: int | None = None, *, runs_in=None) -> dict:
    """Why each line of ``claim_id`` got its outcome in ``run`` (an output directory, a run's
    directory, or a run id with ``runs_in``), criterion by criterion."""
    base = locate(runs_in) if runs_in is not None else None
    return explain_run(resolve_run(str(run), base), claim_id, line)


def diff(old: PathLike, new: PathLike, *, runs_in=None) -> pd.DataFrame:
    """Every line whose decision, reasons or approval window differ between two committed
    runs, or that only one decided."""
    base = locate(runs_in) if runs_in is not None else None
    old_run, new_run = resolve_run(str(old), base), resolve_run(str(new), base)
    return diff_frame(old_run, new_run)


def runs(out: PathLike) -> list[dict]:
    """``out``'s committed and failed runs, newest first."""
    return [asdict(entry) for entry in list_runs(locate(out))]


__all__ = ["RunError", "RunResult", "decide_frame", "diff", "explain", "run", "runs"]
