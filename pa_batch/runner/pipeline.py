"""The run, in four steps: plan → execute → reconcile → commit.

- **plan**: expand the input arguments, open every extract (each header is checked before
  any record is decided: a bad third file fails at once), load the policy and reference data.
- **execute**: on the local engine, each extract's batches decided (``engines``: where the
  pure batch work of ``core.batch`` runs), the run state (``state.finish_batch``: duplicate
  keys) applied in input order, results and rejects streamed to the run's staging
  directory; on the dask engine, the workers write the results and rejects as parts
  themselves and find the run's duplicate keys together (``dask_engine``, ``parts``).
- **reconcile**: every record read has exactly one outcome, every decided line one result
  row, or nothing is committed.
- **commit**: summaries, the run's own copies of policy and reference data, then the atomic
  commit (``io.commit``).

Nothing here tunes the process (allocator, malloc arenas): that is the CLI's entry point's
business, never a library's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pa_batch.core.counts import Counts
from pa_batch.core.model import ReferenceData
from pa_batch.core.outcomes import OUTCOMES
from pa_batch.errors import RunError, os_error_category
from pa_batch.io import inputs as io_inputs
from pa_batch.io.commit import DEFAULT_KEEP_RUNS, OutputDirectory
from pa_batch.io.storage import Location
from pa_batch.io.store_commit import StoreOutput, output_for
from pa_batch.io.tables import TableWriter
from pa_batch.policy.definition import PolicyDefinition, load_policy
from pa_batch.policy.reference import load_reference
from pa_batch.runner.dask_engine import DaskEngine
from pa_batch.runner.engines import DASK, LOCAL, LocalEngine
from pa_batch.runner.events import Events
from pa_batch.runner.parts import PartsTarget
from pa_batch.runner.report import summary_html
from pa_batch.runner.state import ClaimKeyRegistry, finish_batch
from pa_batch.runner.summary import (
    InputRecord,
    RunReport,
    spelling_notices,
    summary_json,
    summary_markdown,
)
from pa_batch.schemas.outputs import REJECTS_SCHEMA, RESULTS_SCHEMA

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
SUMMARY_HTML = "summary.html"
POLICY_COPY = "policy.toml"  # in the run's own directory, not published under DIR
REFERENCE_COPY = "reference.{name}"  # likewise, one per reference file read
PLAN_READERS = 8  # inputs whose header (CSV) or footer (Parquet) are read at once


@dataclass
class RunOptions:
    inputs: list[Location]
    out_dir: Location
    output_format: str = "parquet"
    reference_dir: Location | None = None
    max_reject_rate: float | None = None
    encoding: str = "utf-8"
    batch_rows: int = io_inputs.DEFAULT_BATCH_ROWS
    run_id: str | None = None  # a scheduler's own id; a fresh one when absent
    engine: str = LOCAL  # where the pure batch work runs: local or dask
    scheduler: str | None = None  # the dask engine's scheduler address; a local cluster if None
    keep_runs: int = DEFAULT_KEEP_RUNS  # committed runs kept in DIR's history
    policy: Location | None = None  # a policy definition replacing the shipped one

    def recorded(self) -> dict:
        """The options as summary.json records them."""
        return {
            "format": self.output_format,
            "reference_dir": str(self.reference_dir) if self.reference_dir else None,
            "policy": str(self.policy) if self.policy else None,
            "max_reject_rate": self.max_reject_rate,
            "encoding": self.encoding,
            "batch_rows": self.batch_rows,
            "engine": self.engine,
            "keep_runs": self.keep_runs,
        }


@dataclass
class Plan:
    """What a run will read and under what rules, known before any record is decided."""

    extracts: list[io_inputs.Extract]
    policy: PolicyDefinition
    reference: ReferenceData
    results_name: str
    rejects_name: str
    as_parts: bool = False  # results and rejects as datasets of parts, written by workers

    @property
    def published(self) -> list[str]:
        """DIR's names for this run, in commit order: summary.json, the commit marker, last."""
        return [self.results_name, self.rejects_name, SUMMARY_MD, SUMMARY_HTML, SUMMARY_JSON]


@dataclass
class Execution:
    """What executing the plan wrote and counted."""

    inputs: list[InputRecord] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    results_written: int = 0
    parts_sha256: dict[str, str] = field(default_factory=dict)  # a dataset's parts, by name


def run(options: RunOptions, progress: Events | None = None, client=None) -> RunReport:
    """Process every input into ``options.out_dir``; raise RunError if nothing is committed.

    ``progress``, if given, hears of each input and batch as it is read; ``client``, a
    connected ``distributed.Client``, is the dask engine's cluster when given.
    """
    started = time.monotonic()
    started_at = _now()
    plan = make_plan(options)
    output = output_for(options.out_dir, options.run_id, options.keep_runs)
    output.open(plan.published)
    try:
        execution = execute(plan, options, output, progress, client)
        reconcile(execution.counts, execution.results_written)
        report = RunReport(
            policy=plan.policy,
            inputs=execution.inputs,
            reference=plan.reference.sources,
            counts=execution.counts,
            options=options.recorded(),
            outputs={
                "results": plan.results_name,
                "rejects": plan.rejects_name,
                "summary": SUMMARY_JSON,
            },
            started_at=started_at,
            run_id=output.run_id,
            output_sha256=dict(execution.parts_sha256),
        )
        commit(plan, report, output, started)
        return report
    except OSError as error:  # disk full, quota, I/O error: the outputs cannot be written
        output.abort()
        reason = error.strerror or type(error).__name__
        raise RunError(
            f"cannot write outputs ({reason})",
            file=str(options.out_dir),
            category=os_error_category(error),
        ) from error
    except BaseException:
        output.abort()
        raise
    finally:
        output.close()


def make_plan(options: RunOptions) -> Plan:
    """Every input opened (headers checked), the policy and reference data loaded."""

    def opened(path: Location) -> io_inputs.Extract:
        return io_inputs.open_extract(io_inputs.input_file(path), encoding=options.encoding)

    # a few files opened at a time: on an object store each header or footer is a round
    # trip of tens of milliseconds, and thousands of files would wait on them one by one;
    # the results come in input order, so the first bad input in order fails the run
    paths = io_inputs.expand_inputs(options.inputs)
    with ThreadPoolExecutor(PLAN_READERS, thread_name_prefix="pa-batch-plan") as readers:
        extracts = list(readers.map(opened, paths))
    policy = load_policy(options.policy)
    # the dask engine's workers write parts: results/part-000000.parquet, ...
    as_parts = options.engine == DASK
    suffix = "" if as_parts else f".{options.output_format}"
    return Plan(
        extracts=extracts,
        policy=policy,
        reference=load_reference(options.reference_dir, policy),
        results_name=f"results{suffix}",
        rejects_name=f"rejects{suffix}",
        as_parts=as_parts,
    )


def execute(
    plan: Plan,
    options: RunOptions,
    output: OutputDirectory | StoreOutput,
    progress: Events | None,
    client=None,
) -> Execution:
    """Every batch of every extract decided on the engine, in input order, the run state
    applied, results and rejects streamed to the staging directory."""
    if plan.as_parts:
        return execute_as_parts(plan, options, output, progress, client)
    execution = Execution()
    results = TableWriter(output.path(plan.results_name), RESULTS_SCHEMA, options.output_format)
    rejects = TableWriter(output.path(plan.rejects_name), REJECTS_SCHEMA, options.output_format)
    with (
        LocalEngine(plan.reference) as engine,
        ClaimKeyRegistry(output.scratch) as claim_keys,  # keys spill beside the outputs
    ):
        records: dict[int, InputRecord] = {}
        reporters: dict[int, Callable[[int], None]] = {}

        def started(index: int) -> InputRecord:
            """The input's record, made (and its start told) the first time it is met."""
            if index not in records:
                extract = plan.extracts[index]
                source = extract.source
                records[index] = InputRecord(
                    source.label, source.format, "", ignored_columns=extract.ignored_columns
                )
                if progress:
                    progress.input_started(source.label, source.format)
                reporters[index] = _progress_reporter(source.label, progress, execution)
            return records[index]

        def on_read(index: int, rows: int) -> None:
            started(index)
            reporters[index](rows)

        for index, decided in engine.decide_extracts(plan.extracts, options.batch_rows, on_read):
            extract = plan.extracts[index]
            source = extract.source
            record = started(index)
            if decided is None:  # the extract is done: every batch read and applied
                record.sha256 = extract.sha256 or ""
                if progress:
                    progress.input_finished(source.label, record.rows)
                execution.inputs.append(record)
                continue
            outcome = finish_batch(decided, claim_keys)
            results.write(outcome.decided, keep=outcome.kept)
            rejects.write(outcome.rejects)
            record.rows += outcome.counts.rows_read
            record.outcomes.update(outcome.counts.outcomes)
            execution.counts = execution.counts + outcome.counts
            del decided, outcome  # a batch's frames are not held while the next is decided
    results.close()
    rejects.close()
    execution.results_written = results.rows
    return execution


def execute_as_parts(
    plan: Plan,
    options: RunOptions,
    output: OutputDirectory | StoreOutput,
    progress: Events | None,
    client=None,
) -> Execution:
    """The dask engine's run: the workers decide every extract and write results and
    rejects as parts into the run's staging area; this process plans and counts."""
    execution = Execution()
    extracts = plan.extracts
    reporters: dict[int, Callable[[int], None]] = {}

    def on_read(index: int, rows: int) -> None:
        if index not in reporters:
            source = extracts[index].source
            if progress:
                progress.input_started(source.label, source.format)
            reporters[index] = _progress_reporter(source.label, progress, execution)
        reporters[index](rows)

    def target(partitions: int) -> PartsTarget:
        return PartsTarget(
            results=output.dataset(plan.results_name),
            rejects=output.dataset(plan.rejects_name),
            keys=output.shared_scratch(),
            fmt=options.output_format,
            partitions=partitions,
        )

    with DaskEngine(plan.reference, options.scheduler, client=client) as engine:
        written = engine.write_parts(extracts, options.batch_rows, target, on_read)
    counts_by_input = written.counts_by_input()
    for index, extract in enumerate(extracts):
        source = extract.source
        counts = counts_by_input.get(index, Counts())
        record = InputRecord(
            source.label,
            source.format,
            written.input_sha256.get(index, ""),
            rows=counts.rows_read,
            ignored_columns=extract.ignored_columns,
        )
        record.outcomes.update(counts.outcomes)
        if progress:
            if index not in reporters:  # an input without records
                progress.input_started(source.label, source.format)
            progress.input_finished(source.label, record.rows)
        execution.inputs.append(record)
        execution.counts = execution.counts + counts
    execution.results_written = written.results_written
    execution.parts_sha256 = written.sha256
    return execution


def _progress_reporter(
    label: str, progress: Events | None, execution: Execution
) -> Callable[[int], None]:
    """Progress as records are read (an engine may decide several batches at once)."""
    read_in_input = 0
    read_before = sum(record.rows for record in execution.inputs)

    def batch_read(rows: int) -> None:
        nonlocal read_in_input
        read_in_input += rows
        if progress:
            progress.batch_done(label, rows, read_in_input, read_before + read_in_input)

    return batch_read


def reconcile(counts: Counts, results_written: int) -> None:
    """Refuse to commit unless every record read has exactly one outcome."""
    total = sum(counts.outcomes[o] for o in OUTCOMES)
    if total != counts.rows_read:
        raise RunError(
            f"reconciliation failed: {total} outcomes for {counts.rows_read} records read; "
            "nothing committed"
        )
    if counts.decided != results_written:
        raise RunError(
            f"reconciliation failed: {results_written} result rows for {counts.decided} "
            "decided lines; nothing committed"
        )


def commit(
    plan: Plan, report: RunReport, output: OutputDirectory | StoreOutput, started: float
) -> None:
    """Summaries and the run's own copies of what decided it, then the atomic commit."""
    report.seconds = time.monotonic() - started
    report.finished_at = _now()
    report.notices = same_file_notices(report.inputs) + spelling_notices(report.counts)
    output.write_text(SUMMARY_MD, summary_markdown(report))
    # the run keeps the definition and reference files it was decided under, so that
    # explain and reruns read them as they were, not as they are today
    output.write_text(POLICY_COPY, plan.policy.text)
    for source in plan.reference.sources:
        if source.payload is not None:
            output.write_bytes(REFERENCE_COPY.format(name=source.name), source.payload)
    for name in (plan.results_name, plan.rejects_name, SUMMARY_MD):
        if not plan.as_parts or name == SUMMARY_MD:  # parts were hashed by their writers
            report.output_sha256[name] = io_inputs.sha256_of_path(output.path(name))
    summary = summary_json(report)
    output.write_text(SUMMARY_HTML, summary_html(summary))
    output.write_json(SUMMARY_JSON, summary)
    output.commit(plan.published)
    report.warnings = output.warnings


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


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
