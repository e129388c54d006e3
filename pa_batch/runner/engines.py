"""Engines: where the pure part of each batch (``batch.decide_batch``) runs.

Engines differ only in scheduling. Both hand the pipeline its batches decided and in input
order; everything that spans batches (duplicate keys, counts, record numbers, the commit)
stays with the pipeline, so the outputs are the same bytes whichever engine ran.

- ``local``: in this process, the next batch read by a thread meanwhile (Arrow decodes and
  parses without holding the GIL). Each batch is screened as it comes
  (``batch.screen_batch``: the records certainly valid and out of scope only counted); what
  the screen leaves of consecutive batches is checked and scoped together
  (``batch.scope_screened``), and their powder lines decided together
  (``batch.decide_scoped``), each once there are enough records to be worth it.
- ``dask``: on the workers of a Dask cluster, an existing one (``--scheduler ADDRESS``) or a
  local one. A Parquet extract is planned here from its footer (row groups -> fragments,
  each with its exact first record number); each worker opens its own fragment through the
  file's filesystem (a path all workers see, or an object store's URL), decides it as the
  local engine decides a file, and hands back only the decided batch (the in-scope lines
  and the rejects); a worker takes the file's SHA-256 beside them. A CSV file is read here
  (its record numbers are exact only read from the start) and sent batch by batch. Either
  way the decided batches come back in order, a bounded number in flight.
"""

from __future__ import annotations

import functools
import os
import queue
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import Any

from pa_batch.core.batch import (
    Batch,
    DecidedBatch,
    ScopedBatch,
    ScreenedBatch,
    decide_batch,
    decide_scoped,
    scope_screened,
    screen_batch,
)
from pa_batch.core.model import ReferenceData
from pa_batch.errors import TRANSIENT, RunError
from pa_batch.io.formats import PARQUET
from pa_batch.io.inputs import (
    Extract,
    Fragment,
    fragment_batches,
    parquet_fragments,
    sha256_of_path,
)

OnRead = Callable[[int], None] | None  # told each batch's record count as it is read
OnReadOf = Callable[[int, int], None] | None  # told (extract index, records) as they are read

LOCAL = "local"
# the local engine decides in-scope lines in groups of at least this many (or at once if a
# batch has as many), and holds no more rejects than this while a group fills
GROUP_LINES = 1 << 15
# and checks and scopes the records its screen leaves (core/screen.py) in groups of at least
# this many: a nightly mix leaves about 1% of each batch, and the full path's fixed cost is
# that of thousands of records
SCREENED_ROWS = 1 << 15
DASK = "dask"
# a worker reads fragments of about this many batches: the local engine checks, scopes and
# decides what its screen leaves of consecutive batches together, so a fragment of one batch
# would pay that fixed cost for each; of many, a worker holds more decided lines at once
FRAGMENT_BATCHES = 4
# A local cluster's dashboard on a port the system picks, on loopback only: a fixed port
# (distributed's default 8787) is often taken by a notebook or another run, and distributed
# then warns and moves; a user who wants the dashboard reads its address from the client.
LOCAL_DASHBOARD = "127.0.0.1:0"
# a scheduler this command line can reach: TCP, by host (a name, IPv4 or [IPv6]) and port.
# tls:// needs certificates a command line does not carry; inproc:// lives in one process.
_SCHEDULER_ADDRESS = re.compile(r"(?:tcp://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")


def scheduler_address_problem(address: str) -> str | None:
    """Why ``address`` is no scheduler address a run can use, or None if it is one."""
    match = _SCHEDULER_ADDRESS.fullmatch(address)
    if match is None or not 0 < int(match.group(1)) < 65536:
        return "not a Dask scheduler address: expected tcp://HOST:PORT (or HOST:PORT)"
    return None


class LocalEngine(AbstractContextManager):
    def __init__(self, reference: ReferenceData):
        self.reference = reference

    def __exit__(self, *exc) -> None:
        return None

    def decide_extracts(
        self, extracts: list[Extract], batch_rows: int, on_read: OnReadOf = None
    ) -> Iterator[tuple[int, DecidedBatch | None]]:
        """(extract index, decided batch) in input order; (index, None) once an extract is
        done (its SHA-256 known)."""
        for index, extract in enumerate(extracts):
            told = functools.partial(on_read, index) if on_read else None
            for decided in self.decide(extract.batches(batch_rows), extract.source.label, told):
                yield index, decided
            yield index, None

    def decide(
        self, batches: Iterable[Batch], source_file: str, on_read: OnRead = None
    ) -> Iterator[DecidedBatch]:
        """Screen and scope the batches as they come (``_scoped``); decide the in-scope lines
        of consecutive batches together until there are ``GROUP_LINES`` of them (a nightly
        mix has a few hundred powder lines a batch, and deciding them costs about as much as
        deciding thousands). The outputs are the same bytes however batches are grouped."""
        group: list[ScopedBatch] = []
        for scoped in self._scoped(batches, source_file, on_read):
            if scoped.line_count >= GROUP_LINES and not group:
                yield decide_scoped([scoped], source_file, self.reference)
                continue
            group.append(scoped.compact())  # only its in-scope lines are kept
            del scoped
            held_lines = sum(s.line_count for s in group)
            held_rejects = sum(len(s.rejects) for s in group)
            if held_lines >= GROUP_LINES or held_rejects >= GROUP_LINES:
                yield decide_scoped(group, source_file, self.reference)
                group = []
        if group:
            yield decide_scoped(group, source_file, self.reference)

    def _scoped(
        self, batches: Iterable[Batch], source_file: str, on_read: OnRead
    ) -> Iterator[ScopedBatch]:
        """Screen each batch as it comes (``on_read`` hears its record count); check and
        scope what the screen leaves of consecutive batches together, once there are
        ``SCREENED_ROWS`` such records."""
        held: list[ScreenedBatch] = []
        for batch in read_ahead(batches):
            screened = screen_batch(batch, self.reference)
            del batch  # the records go before the next batch is read
            if on_read:
                on_read(screened.rows_read)
            held.append(screened)
            if sum(s.rest.rows_read for s in held) >= SCREENED_ROWS:
                yield scope_screened(held, source_file, self.reference)
                held = []
        if held:
            yield scope_screened(held, source_file, self.reference)


_DONE = object()


def read_ahead(items: Iterable, depth: int = 1) -> Iterator:
    """``items`` in order, the next ``depth`` produced by a thread while the caller works.

    The producer starts an item only once there is room for it: with ``depth`` 1, one item
    is being worked on and one read, never more (a batch read is a batch held in memory).
    An exception in the producer is raised here, in the caller's thread, at the point the
    item would have come; a caller that stops early stops the producer too.
    """
    handoff: queue.Queue = queue.Queue()
    room = threading.Semaphore(depth)
    stop = threading.Event()

    def wait_for_room() -> bool:
        """Take a place for one more item unless the caller has stopped; False if it has."""
        while not stop.is_set():
            if room.acquire(timeout=0.1):
                return True
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            while wait_for_room():
                item = next(iterator, _DONE)
                handoff.put((item, None))
                if item is _DONE:
                    return
        except BaseException as error:  # handed to the caller, raised there
            handoff.put((_DONE, error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:  # a generator closes in the thread that ran it
                close()

    producer = threading.Thread(target=produce, name="pa-batch-read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item, error = handoff.get()
            room.release()  # the producer may start the next item while this one is worked
            if error is not None:
                raise error
            if item is _DONE:
                return
            held = [item]
            del item
            yield held.pop()  # this frame keeps no reference while the caller works
    finally:
        stop.set()
        producer.join()


class DaskEngine(AbstractContextManager):
    """Decides batches on a Dask cluster; at most ``in_flight`` batches are out at once.

    A batch whose worker dies is decided again (its future is retried by the scheduler); if
    the workers holding the scattered reference data all die, the reference data is
    scattered again and the batches in flight are resubmitted, up to ``RESUBMITS`` times.
    A cluster with no worker left, or that keeps losing them, fails the run in one line.
    """

    RESUBMITS = 3

    def __init__(
        self, reference: ReferenceData, scheduler: str | None, in_flight: int = 0, client=None
    ):
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
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.in_flight = in_flight or 2 * workers
        self.reference = reference
        self._scatter()

    def _scatter(self) -> None:
        """One copy of the reference data on every worker, not one per batch."""
        if not self.client.scheduler_info().get("workers"):
            raise RunError(
                "the Dask cluster has no worker left", file=self._where, category=TRANSIENT
            )
        self._reference = self.client.scatter(self.reference, broadcast=True)

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _submit(self, batch: Batch, source_file: str):
        return self.client.submit(
            decide_batch, batch, source_file, self._reference, pure=False, retries=2
        )

    def _result(self, future, resubmit: Callable[[], object]):
        """What ``future`` computed; resubmitted (reference data scattered again) if the
        cluster lost what it needed."""
        from dask.distributed import KilledWorker

        for attempt in range(self.RESUBMITS + 1):
            try:
                return future.result()
            except (CancelledError, KilledWorker) as error:  # a lost future, or its data
                if attempt == self.RESUBMITS:
                    raise RunError(
                        f"the Dask cluster kept losing workers ({type(error).__name__}); "
                        "nothing committed",
                        file=self._where,
                        category=TRANSIENT,
                    ) from None
                self._scatter()
                future = resubmit()
        raise AssertionError("unreachable")

    def decide_extracts(
        self, extracts: list[Extract], batch_rows: int, on_read: OnReadOf = None
    ) -> Iterator[tuple[int, DecidedBatch | None]]:
        """(extract index, decided batch) in input order; (index, None) once an extract is
        done. One window of work in flight spans the files, so workers do not wait at a
        file's end for the next file's first fragment.

        A Parquet extract is read by the workers themselves, a fragment (row groups) each,
        planned here from its footer: no record passes through this process on its way to
        a worker. Its SHA-256 is taken by a worker too, beside them. A CSV file is read
        here (its record numbers are exact only read from the start) and sent in batches."""
        pending: deque[_Work] = deque()
        deciding = 0  # fragments and batches in flight (a file's end does not count)
        for work in self._work(extracts, batch_rows, on_read):
            pending.append(work)
            deciding += not work.done
            while deciding >= self.in_flight:
                oldest = pending.popleft()
                deciding -= not oldest.done
                yield from self._finished(oldest, extracts, on_read)
        while pending:
            yield from self._finished(pending.popleft(), extracts, on_read)

    def _work(self, extracts: list[Extract], batch_rows: int, on_read: OnReadOf) -> Iterator[_Work]:
        """Every extract's work, in input order, each submitted as it is asked for."""
        for index, extract in enumerate(extracts):
            path, label = extract.source.path, extract.source.label
            if extract.source.format == PARQUET:

                def hashed(path=path):
                    return self.client.submit(sha256_of_path, path, pure=False, retries=2)

                digest = hashed()
                for fragment in parquet_fragments(extract, FRAGMENT_BATCHES * batch_rows):

                    def decided(extract=extract, fragment=fragment):
                        return self.client.submit(
                            decide_fragment, extract, fragment, batch_rows, self._reference,
                            pure=False, retries=2,
                        )  # fmt: skip

                    yield _Work(index, decided(), decided, rows=fragment.rows)
                yield _Work(index, digest, hashed, done=True)
            else:
                for batch in extract.batches(batch_rows):
                    if on_read:
                        on_read(index, batch.rows_read)

                    def sent(batch=batch, label=label):
                        return self._submit(batch, label)

                    yield _Work(index, sent(), sent, rows=None)
                    del batch
                # the reader has hashed the file once its last batch is read
                yield _Work(index, None, None, done=True)

    def _finished(
        self, work: _Work, extracts: list[Extract], on_read: OnReadOf
    ) -> Iterator[tuple[int, DecidedBatch | None]]:
        if work.done:
            if work.future is not None:  # a Parquet file's SHA-256, taken by a worker
                extracts[work.index].sha256 = self._result(work.future, work.resubmit)
            yield work.index, None
            return
        decided = self._result(work.future, work.resubmit)
        if work.rows is None:  # a batch sent from here
            yield work.index, decided
            return
        if on_read:
            on_read(work.index, work.rows)
        for batch in decided:  # a fragment's batches
            yield work.index, batch

    def decide(
        self, batches: Iterable[Batch], source_file: str, on_read: OnRead = None
    ) -> Iterator[DecidedBatch]:
        pending: deque = deque()

        def oldest() -> DecidedBatch:
            batch, future = pending.popleft()
            return self._result(future, lambda: self._submit(batch, source_file))

        for batch in batches:
            if on_read:
                on_read(batch.rows_read)
            pending.append((batch, self._submit(batch, source_file)))
            while len(pending) >= self.in_flight:
                yield oldest()
        while pending:
            yield oldest()


@dataclass
class _Work:
    """One piece of a dask run in flight: a fragment, a batch, or a file's end (with the
    task hashing it, for Parquet)."""

    index: int  # the extract's
    future: Any
    resubmit: Any  # submits the same work again
    rows: int | None = None  # a fragment's records; None for a batch sent from here
    done: bool = False


def decide_fragment(
    extract: Extract, fragment: Fragment, batch_rows: int, reference: ReferenceData
) -> list[DecidedBatch]:
    """On a worker: read one fragment of a Parquet extract and decide it as the local engine
    decides a file (screened, scoped and decided in groups)."""
    batches = fragment_batches(extract, fragment, batch_rows)
    return list(LocalEngine(reference).decide(batches, extract.source.label))


def open_engine(
    name: str, reference: ReferenceData, scheduler: str | None = None, client=None
) -> LocalEngine | DaskEngine:
    if name == DASK:
        return DaskEngine(reference, scheduler, client=client)
    return LocalEngine(reference)
