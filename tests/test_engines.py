"""The scheduling pieces engines share: the read-ahead thread and the background writer hand
items and failures over in order, and never leave a thread behind."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from pa_batch.runner.engines import read_ahead

LINE = "C1,1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35"


def test_read_ahead_yields_every_item_in_order():
    assert list(read_ahead(iter(range(100)))) == list(range(100))


def test_a_producer_failure_is_raised_where_its_item_would_have_come():
    def items():
        yield 1
        yield 2
        raise OSError(errno.EIO, "disk")

    got = []
    with pytest.raises(OSError):
        for item in read_ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_and_closes_the_producer():
    closed = threading.Event()

    def items():
        try:
            yield from range(10**9)
        finally:
            closed.set()

    for item in read_ahead(items()):
        if item == 3:
            break
    assert closed.wait(5)
    assert not [t for t in threading.enumerate() if t.name == "pa-batch-read-ahead"]


def test_a_failure_in_the_background_writer_fails_the_run_cleanly(
    run_cli, write_csv, tmp_path, monkeypatch
):
    from pa_batch.io import tables

    out = tmp_path / "out"
    assert run_cli(write_csv([LINE]), out=out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def disk_full(self, frame, keep):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tables.TableWriter, "_write", disk_full)
    run = run_cli(write_csv([LINE]), out=out)
    assert run.exit_code == 75  # ENOSPC: transient
    assert (
        run.stderr.strip()
        == f"pa-batch: error: {out}: cannot write outputs (No space left on device)"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [t for t in threading.enumerate() if t.name.startswith("pa-batch-write")]


def test_a_consumer_failing_while_the_producer_waits_does_not_hang():
    """The producer is blocked handing over its last item when the caller fails."""
    consumer = read_ahead(iter(range(3)))
    assert next(consumer) == 0
    thread = threading.Thread(target=consumer.close)  # what an exception in the caller does
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "pa-batch-read-ahead"]
