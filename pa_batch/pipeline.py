"""The run: read every input batch by batch, decide, stream outputs, reconcile, commit.

I/O lives here and in the readers and writers; everything per batch is ``process_batch``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from pa_batch import readers
from pa_batch.batch import finish_batch
from pa_batch.engines import LOCAL, open_engine
from pa_batch.errors import RunError
from pa_batch.policy import OUTCOMES, load_policy
from pa_batch.reference import load_reference
from pa_batch.report import summary_html
from pa_batch.runlog import RunLog
from pa_batch.schemas.outputs import REJECTS_SCHEMA, RESULTS_SCHEMA
from pa_batch.state import ClaimKeyRegistry, RunCounts
from pa_batch.summary import InputRecord, RunReport, summary_json, summary_markdown
from pa_batch.writers import DEFAULT_KEEP_RUNS, OutputDirectory, TableWriter

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
SUMMARY_HTML = "summary.html"
POLICY_COPY = "policy.toml"  # in the run's own directory, not published under DIR
REFERENCE_COPY = "reference.{name}"  # likewise, one per reference file read


@dataclass
class RunOptions:
    inputs: list[Path]
    out_dir: Path
    output_format: str = "parquet"
    reference_dir: Path | None = None
    max_reject_rate: float | None = None
    encoding: str = "utf-8"
    batch_rows: int = readers.DEFAULT_BATCH_ROWS
    run_id: str | None = None  # a scheduler's own id; a fresh one when absent
    engine: str = LOCAL  # where the pure batch work runs: local or dask
    scheduler: str | None = None  # the dask engine's scheduler address; a local cluster if None
    keep_runs: int = DEFAULT_KEEP_RUNS  # committed runs kept in DIR's history
    policy: Path | None = None  # a policy definition replacing the shipped one


def use_returning_allocator() -> None:
    """Allocators that give a finished batch's memory back to the system.

    Arrow's jemalloc pool, returning freed pages within 200 ms, instead of Arrow's default
    (mimalloc): peak RSS about 20% lower in the benchmark for 3% more time (a pool chosen
    with ARROW_DEFAULT_MEMORY_POOL wins; a build without jemalloc keeps its default). On
    Linux with glibc, also: no transparent huge pages for this process (a 2 MiB page stays
    resident while any of it is used) and at most two malloc arenas (each thread's arena
    keeps freed memory of its own): together about 50 MiB less peak RSS, no slower.
    """
    _linux_malloc_settings()
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    with contextlib.suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(200)


_PR_SET_THP_DISABLE = 41  # prctl(2)
_M_ARENA_MAX = -8  # mallopt(3)


def _linux_malloc_settings() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)
        libc.mallopt(_M_ARENA_MAX, 2)


def run(options: RunOptions, progress: RunLog | None = None) -> RunReport:
    """Process every input into ``options.out_dir``; raise RunError if nothing is committed.

    ``progress``, if given, hears of each input and batch as it is read.
    """
    use_returning_allocator()
    started = time.monotonic()
    started_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    # every header is checked before any record is decided: a bad third file fails at once
    extracts = [
        readers.open_extract(readers.input_file(path), encoding=options.encoding)
        for path in readers.expand_inputs(options.inputs)
    ]
    policy = load_policy(options.policy)
    reference = load_reference(options.reference_dir, policy)

    results_name = f"results.{options.output_format}"
    rejects_name = f"rejects.{options.output_format}"
    published = [results_name, rejects_name, SUMMARY_MD, SUMMARY_HTML, SUMMARY_JSON]
    output = OutputDirectory(options.out_dir, options.run_id, options.keep_runs).open(published)
    engine = None
    claim_keys = None
    try:
        engine = open_engine(options.engine, reference, options.scheduler)
        results = TableWriter(output.path(results_name), RESULTS_SCHEMA, options.output_format)
        rejects = TableWriter(output.path(rejects_name), REJECTS_SCHEMA, options.output_format)
        counts = RunCounts()
        claim_keys = ClaimKeyRegistry(output.scratch)  # keys spill beside the outputs
        inputs = []
        all_read = 0  # records read so far in the run, for progress
        for extract in extracts:
            source = extract.source
            record = InputRecord(
                source.label, source.format, "", ignored_columns=extract.ignored_columns
            )
            inputs.append(record)
            if progress:
                progress.input_started(source.label, source.format)

            input_read = 0

            def batch_read(rows: int, label: str = source.label) -> None:
                """Progress as records are read (the engine may decide several batches at
                once)."""
                nonlocal input_read, all_read
                input_read += rows
                all_read += rows
                if progress:
                    progress.batch_done(label, rows, input_read, all_read)

            batches = extract.batches(options.batch_rows)
            for decided in engine.decide(batches, source.label, on_read=batch_read):
                outcome = finish_batch(decided, claim_keys)
                results.write(outcome.decided, keep=outcome.kept)
                rejects.write(outcome.rejects)
                record.rows += decided.rows_read
                counts.rows_read += decided.rows_read
                counts.outcomes.update(outcome.outcomes)
                record.outcomes.update(outcome.outcomes)
                counts.reasons.update(outcome.reasons)
                counts.advisories.update(outcome.advisories)
                counts.errors.update(outcome.errors)
                counts.rejected_by_powder_line.update(outcome.rejected_by_powder_line)
                counts.by_month.update(outcome.by_month)
                counts.routes.update(outcome.routes)
                del decided, outcome  # a batch's frames are not held while the next is decided
            record.sha256 = extract.sha256
            if progress:
                progress.input_finished(source.label, record.rows)
        results.close()
        rejects.close()
        reconcile(counts, results.rows)

        report = RunReport(
            policy=policy,
            inputs=inputs,
            reference=reference.sources,
            counts=counts,
            options={
                "format": options.output_format,
                "reference_dir": str(options.reference_dir) if options.reference_dir else None,
                "policy": str(options.policy) if options.policy else None,
                "max_reject_rate": options.max_reject_rate,
                "encoding": options.encoding,
                "batch_rows": options.batch_rows,
                "engine": options.engine,
                "keep_runs": options.keep_runs,
            },
            outputs={"results": results_name, "rejects": rejects_name, "summary": SUMMARY_JSON},
            started_at=started_at,
            run_id=output.run_id,
        )
        report.seconds = time.monotonic() - started
        report.finished_at = datetime.now(UTC).replace(microsecond=0).isoformat()
        report.notices = same_file_notices(inputs)
        output.write_text(SUMMARY_MD, summary_markdown(report))
        # the run keeps the definition and reference files it was decided under, so that
        # explain and reruns read them as they were, not as they are today
        output.write_text(POLICY_COPY, policy.text)
        for source in reference.sources:
            if source.payload is not None:
                output.write_bytes(REFERENCE_COPY.format(name=source.name), source.payload)
        report.output_sha256 = {
            name: readers.sha256_of_path(output.path(name))
            for name in (results_name, rejects_name, SUMMARY_MD)
        }
        summary = summary_json(report)
        output.write_text(SUMMARY_HTML, summary_html(summary))
        output.write_json(SUMMARY_JSON, summary)
        output.commit(published)
        report.warnings = output.warnings
        return report
    except OSError as error:  # disk full, quota, I/O error: the outputs cannot be written
        output.abort()
        reason = error.strerror or type(error).__name__
        raise RunError(f"cannot write outputs ({reason})", file=str(options.out_dir)) from error
    except BaseException:
        output.abort()
        raise
    finally:
        if engine is not None:
            engine.__exit__(None, None, None)
        if claim_keys is not None:
            claim_keys.close()
        output.close()


def same_file_notices(inputs: list[InputRecord]) -> list[str]:
    """A notice for each input whose bytes equal an earlier one's (the same day sent twice)."""
    first_with: dict[str, int] = {}
    notices = []
    for number, record in enumerate(inputs, start=1):
        earlier = first_with.setdefault(record.sha256, number)
        if earlier != number:
            notices.append(
                f"input {number} ({record.path}) has the same SHA-256 as input {earlier} "
                f"({inputs[earlier - 1].path}): the same file read twice?"
            )
    return notices


def reconcile(counts: RunCounts, results_written: int) -> None:
    """Refuse to commit unless every record read has exactly one outcome."""
    total = sum(counts.outcomes[o] for o in OUTCOMES)
    if total != counts.rows_read:
        raise RunError(
            f"reconciliation failed: {total} outcomes for {counts.rows_read} records read; "
            "nothing committed"
        )
    decided = (
        counts.outcomes["approved"] + counts.outcomes["denied"] + counts.outcomes["investigational"]
    )
    if decided != results_written:
        raise RunError(
            f"reconciliation failed: {results_written} result rows for {decided} decided lines; "
            "nothing committed"
        )
