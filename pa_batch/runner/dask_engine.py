"""The dask engine: the run's work on the workers of a Dask cluster, this process planning
and committing only.

The plan is made here from metadata alone: a Parquet extract's footer (read once when the
extract was opened) gives its fragments, row groups with their exact first record number; a
CSV file is one fragment (its record numbers are exact only read from the start). Each
worker opens its own fragments through the file's filesystem (a path all workers see, or an
object store's URL), decides them as the local engine decides a file, and writes their
result and reject parts into the run's staging area itself (``parts``); what comes back is
counts. The run's duplicate keys are found by a first-occurrence pass over key files the
workers wrote, a partition a task, and the few parts holding duplicates are written again.
No record passes through this process.

A task whose worker dies is run again by the scheduler. If the workers holding the scattered
reference data all die, it is scattered again and the lost tasks are submitted again, up to
``RESUBMITS`` times; a cluster with no worker left, or that keeps losing them, fails the run
in one line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import CancelledError
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from typing import Any

from pa_batch.core.counts import Counts
from pa_batch.core.model import ReferenceData
from pa_batch.errors import TRANSIENT, RunError
from pa_batch.io.formats import PARQUET
from pa_batch.io.inputs import Extract, sha256_of_path
from pa_batch.io.storage import remove_tree
from pa_batch.runner.engines import LOCAL_DASHBOARD, OnReadOf
from pa_batch.runner.parts import (
    PartOutcome,
    PartsTarget,
    duplicates_by_part,
    first_occurrences,
    plan_parts,
    write_part,
)

# a worker reads fragments of about this many batches: it checks, scopes and decides what
# the screen leaves of consecutive batches together (as the local engine does), so a
# fragment of one batch would pay that fixed cost for each
FRAGMENT_BATCHES = 4
# partitions of the run's keys for the first-occurrence pass, per worker: a few, so that a
# worker that finishes early takes another
KEY_PARTITIONS_PER_WORKER = 2


@dataclass
class PartsWritten:
    """What the workers wrote: every part's outcome, in input order, and each input's
    SHA-256."""

    parts: list[PartOutcome]
    input_sha256: dict[int, str] = field(default_factory=dict)

    def counts_by_input(self) -> dict[int, Counts]:
        """Each input's counts, its parts' added up (an input without parts has none)."""
        counts: dict[int, Counts] = {}
        for part in self.parts:
            counts[part.index] = counts.get(part.index, Counts()) + part.counts
        return counts

    @property
    def results_written(self) -> int:
        return sum(part.results_written for part in self.parts)

    @property
    def sha256(self) -> dict[str, str]:
        return {name: digest for part in self.parts for name, digest in part.sha256.items()}


class DaskEngine(AbstractContextManager):
    """The workers of a cluster: an existing one (``scheduler``, or a connected ``client``,
    used and never closed here) or a local one of this machine's cores."""

    RESUBMITS = 3

    def __init__(self, reference: ReferenceData, scheduler: str | None, client=None):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise RunError(
                "the dask engine needs dask[distributed]: pip install 'pa-batch[dask]'"
            ) from None
        self._stack = ExitStack()
        self._where = scheduler or "the local Dask cluster"
        try:
            if client is not None:  # the caller's cluster: used, never closed here
                self.client = client
            elif scheduler:
                self.client = self._stack.enter_context(Client(scheduler, timeout="10s"))
            else:
                workers = max(1, min(os.cpu_count() or 1, 4))
                cluster = self._stack.enter_context(
                    LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=LOCAL_DASHBOARD,
                        # the run's own cluster stays quiet on the run's stderr: its worker
                        # processes would print the races of their shutdown (a heartbeat
                        # to a scheduler that has closed); a task's failure reaches the
                        # run as its error, in one line
                        silence_logs=logging.CRITICAL,
                    )
                )
                self.client = self._stack.enter_context(Client(cluster))
        except (OSError, TimeoutError) as error:
            self._stack.close()
            raise RunError(
                f"cannot reach the Dask scheduler ({type(error).__name__})",
                file=scheduler,
                category=TRANSIENT,
            ) from None
        except ValueError:  # an address distributed cannot parse or does not serve
            self._stack.close()
            raise RunError("not a Dask scheduler address", file=scheduler) from None
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.reference = reference
        self._resubmits = 0
        self.scattered = 0  # times the reference data was scattered: a task's "generation"
        self._scatter()

    def _scatter(self) -> None:
        """One copy of the reference data on every worker, not one per task."""
        if not self.client.scheduler_info().get("workers"):
            raise RunError(
                "the Dask cluster has no worker left", file=self._where, category=TRANSIENT
            )
        self._reference = self.client.scatter(self.reference, broadcast=True)
        self.scattered += 1

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def write_parts(
        self,
        extracts: list[Extract],
        batch_rows: int,
        target_for: Callable[[int], PartsTarget],
        on_read: OnReadOf = None,
    ) -> PartsWritten:
        """Every extract decided and written as parts by the workers, duplicates across the
        whole run found and their parts written again. ``target_for(partitions)`` gives
        where the parts go; ``on_read`` hears of each part's records once it is written."""
        jobs = plan_parts(extracts, FRAGMENT_BATCHES * batch_rows)
        target = target_for(KEY_PARTITIONS_PER_WORKER * self.workers)
        hashes = {
            index: _Task(self, sha256_of_path, extract.source.path)
            for index, extract in enumerate(extracts)
            if extract.source.format == PARQUET  # a CSV file is hashed as its worker reads it
        }
        parts = [_Task(self, write_part, job, target, batch_rows, _REFERENCE) for job in jobs]
        outcomes: list[PartOutcome] = []
        with _cancelled_on_exit([*hashes.values(), *parts]):
            for job, part in zip(jobs, parts, strict=True):
                outcome = part.result()  # in input order: the first bad input fails the run
                outcomes.append(outcome)
                if on_read:
                    on_read(job.index, outcome.counts.rows_read)
            key_files = [target.key_file(job.number) for job in jobs]
            passes = [
                _Task(self, first_occurrences, key_files, partition)
                for partition in range(target.partitions)
            ]
            with _cancelled_on_exit(passes):
                found = [task.result() for task in passes]
            labels = [extract.source.label for extract in extracts]
            fix_ups = [
                _Task(self, write_part, jobs[number], target, batch_rows, _REFERENCE, duplicates)
                for number, duplicates in duplicates_by_part(found, labels).items()
            ]
            with _cancelled_on_exit(fix_ups):
                for fix_up in fix_ups:
                    fixed = fix_up.result()
                    outcomes[fixed.number] = fixed
            input_sha256 = {index: task.result() for index, task in hashes.items()}
        remove_tree(target.keys)
        for outcome in outcomes:
            if outcome.input_sha256 is not None:
                input_sha256[outcome.index] = outcome.input_sha256
        return PartsWritten(outcomes, input_sha256)

    def _submit(self, function: Callable, args: tuple) -> Any:
        arguments = [self._reference if arg is _REFERENCE else arg for arg in args]
        return self.client.submit(function, *arguments, pure=False, retries=2)

    def _lost(self, error: BaseException, scattered: int) -> None:
        """The cluster lost what a task submitted after the ``scattered``-th scatter needed:
        the reference data is scattered again (once for all the tasks that used the lost
        copy; the caller submits its task again), unless it has been lost too often."""
        if scattered < self.scattered:  # already scattered again since that task's submit
            return
        if self._resubmits == self.RESUBMITS:
            raise RunError(
                f"the Dask cluster kept losing workers ({type(error).__name__}); nothing committed",
                file=self._where,
                category=TRANSIENT,
            ) from None
        self._resubmits += 1
        self._scatter()


_REFERENCE = object()  # in a task's arguments: the reference data scattered on the workers


class _Task:
    """A function submitted to the cluster, submitted again if the cluster loses it."""

    def __init__(self, engine: DaskEngine, function: Callable, *args: Any):
        self._engine = engine
        self._function = function
        self._args = args
        self._submit()

    def _submit(self) -> None:
        self.scattered = self._engine.scattered
        self.future = self._engine._submit(self._function, self._args)

    def result(self) -> Any:
        from dask.distributed import KilledWorker

        while True:
            try:
                return self.future.result()
            except (CancelledError, KilledWorker) as error:  # a lost task, or its data
                self._engine._lost(error, self.scattered)
                self._submit()


class _cancelled_on_exit(AbstractContextManager):
    """Tasks still running when the block is left by an error are cancelled: a failed run
    does not leave the cluster busy with its work."""

    def __init__(self, tasks: list[_Task]):
        self._tasks = tasks

    def __exit__(self, kind, *exc) -> None:
        if kind is not None:
            for task in self._tasks:
                task.future.cancel()
