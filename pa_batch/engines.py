"""Engines: where the pure part of each batch (``batch.decide_batch``) runs.

Engines differ only in scheduling. Both hand the pipeline its batches decided and in input
order; everything that spans batches (duplicate keys, counts, record numbers, the commit)
stays with the pipeline, so the outputs are the same bytes whichever engine ran.

- ``local``: in this process, the next batch read by a thread meanwhile (Arrow decodes and
  parses without holding the GIL). Each batch is checked and scoped as it comes
  (``batch.scope_batch``); the powder lines of consecutive batches are decided together
  (``batch.decide_scoped``) once there are enough of them to be worth a decision.
- ``dask``: on the workers of a Dask cluster, an existing one (``--scheduler ADDRESS``) or a
  local one. The client reads the inputs (so CSV record numbers stay exact and workers need
  no access to the files), sends each batch to a worker, and takes the decided batches back
  in order, keeping a bounded number in flight.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack

from pa_batch.batch import DecidedBatch, ScopedBatch, decide_batch, decide_scoped, scope_batch
from pa_batch.errors import RunError
from pa_batch.readers import Batch
from pa_batch.reference import ReferenceData

OnRead = Callable[[int], None] | None  # told each batch's record count as it is read

LOCAL = "local"
# the local engine decides in-scope lines in groups of at least this many (or at once if a
# batch has as many), and holds no more rejects than this while a group fills
GROUP_LINES = 1 << 15
DASK = "dask"
ENGINES = (LOCAL, DASK)


class LocalEngine(AbstractContextManager):
    def __init__(self, reference: ReferenceData):
        self.reference = reference

    def __exit__(self, *exc) -> None:
        return None

    def decide(
        self, batches: Iterable[Batch], source_file: str, on_read: OnRead = None
    ) -> Iterator[DecidedBatch]:
        """Scope each batch as it comes (``on_read`` hears its record count); decide the
        in-scope lines of consecutive batches together until there are ``GROUP_LINES`` of
        them (a nightly mix has a few hundred powder lines a batch, and deciding them costs
        about as much as deciding thousands). The outputs are the same bytes however
        batches are grouped."""
        group: list[ScopedBatch] = []
        for batch in read_ahead(batches):
            scoped = scope_batch(batch, source_file, self.reference)
            del batch  # the records go before the next batch is read
            if on_read:
                on_read(scoped.rows_read)
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
    """Decides batches on a Dask cluster; at most ``in_flight`` batches are out at once."""

    def __init__(self, reference: ReferenceData, scheduler: str | None, in_flight: int = 0):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise RunError(
                "the dask engine needs dask[distributed]: pip install 'pa-batch[dask]'"
            ) from None
        self._stack = ExitStack()
        try:
            if scheduler:
                self.client = self._stack.enter_context(Client(scheduler, timeout="10s"))
            else:
                workers = max(1, min(os.cpu_count() or 1, 4))
                cluster = self._stack.enter_context(
                    LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                    )
                )
                self.client = self._stack.enter_context(Client(cluster))
        except (OSError, TimeoutError) as error:
            self._stack.close()
            raise RunError(
                f"cannot reach the Dask scheduler ({type(error).__name__})", file=scheduler
            ) from None
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.in_flight = in_flight or 2 * workers
        # one copy of the reference data on every worker, not one per batch
        self._reference = self.client.scatter(reference, broadcast=True)

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def decide(
        self, batches: Iterable[Batch], source_file: str, on_read: OnRead = None
    ) -> Iterator[DecidedBatch]:
        pending: deque = deque()
        for batch in batches:
            if on_read:
                on_read(batch.rows_read)
            pending.append(
                self.client.submit(decide_batch, batch, source_file, self._reference, pure=False)
            )
            while len(pending) >= self.in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def open_engine(
    name: str, reference: ReferenceData, scheduler: str | None = None
) -> LocalEngine | DaskEngine:
    if name == DASK:
        return DaskEngine(reference, scheduler)
    return LocalEngine(reference)
