"""Engines: where the pure part of each batch (``batch.decide_batch``) runs.

The local engine hands the pipeline its batches decided and in input order; everything that
spans batches (duplicate keys, counts, record numbers, the commit) stays with the pipeline.
The dask engine's workers write parts of the outputs themselves; the rows of those parts in
name order equal the local engine's, value for value.

- ``local``: in this process, the next batch read by a thread meanwhile (Arrow decodes and
  parses without holding the GIL). Each batch is screened as it comes
  (``batch.screen_batch``: the records certainly valid and out of scope only counted); what
  the screen leaves of consecutive batches is checked and scoped together
  (``batch.scope_screened``), and their powder lines decided together
  (``batch.decide_scoped``), each once there are enough records to be worth it.
- ``dask`` (``dask_engine``): on the workers of a Dask cluster, each worker deciding its own
  fragments as the local engine decides a file and writing their parts itself
  (``parts``); this process only plans and commits.
"""

from __future__ import annotations

import functools
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager

from pa_batch.core.batch import (
    Batch,
    DecidedBatch,
    ScopedBatch,
    ScreenedBatch,
    decide_scoped,
    scope_screened,
    screen_batch,
)
from pa_batch.core.model import ReferenceData
from pa_batch.io.inputs import Extract

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
    """``read_ahead``: the next batch read by a thread while this one is worked (the
    local run's second core). A dask worker's task runs without it: the worker was given
    one core per thread, and a task that takes two makes its neighbours wait."""

    def __init__(self, reference: ReferenceData, *, read_ahead: bool = True):
        self.reference = reference
        self.read_ahead = read_ahead

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
        for batch in read_ahead(batches) if self.read_ahead else batches:
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
