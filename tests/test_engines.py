"""The scheduling pieces engines share: the read-ahead thread and the background writer hand
items and failures over in order, and never leave a thread behind."""

from __future__ import annotations

import errno
import hashlib
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


def test_a_dask_task_decides_and_writes_its_part_in_its_own_thread(tmp_path, monkeypatch):
    """A worker runs as many tasks at once as it has threads (cores): a part read, decided
    and written with a read-ahead or writer thread of its own would take a neighbour's core.
    The part written that way holds what the local run writes for the same file."""
    import pyarrow.parquet as pq

    from pa_batch.io import inputs
    from pa_batch.io.storage import locate
    from pa_batch.policy.reference import load_reference
    from pa_batch.runner.parts import (
        PartsTarget,
        duplicates_by_part,
        first_occurrences,
        plan_parts,
        write_part,
    )
    from tests.helpers import SAMPLE_DATA, read_table

    extract = tmp_path / "claims.parquet"
    pq.write_table(pq.read_table(SAMPLE_DATA / "claims.parquet"), extract, row_group_size=7)
    opened = inputs.open_extract(inputs.input_file(locate(extract)))
    reference = load_reference(locate(SAMPLE_DATA / "reference"))
    target = PartsTarget(
        results=locate(tmp_path / "results"),
        rejects=locate(tmp_path / "rejects"),
        keys=locate(tmp_path / "keys"),
        fmt="parquet",
        partitions=2,
    )
    for folder in ("results", "rejects", "keys"):
        (tmp_path / folder).mkdir()
    started: list[str] = []
    start = threading.Thread.start

    def recorded(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", recorded)
    jobs = plan_parts([opened], 14)
    # the parts, the first-occurrence pass, the parts fixed up: every task
    outcomes = [write_part(job, target, 5, reference) for job in jobs]
    found = [first_occurrences([target.key_file(job.number) for job in jobs], p) for p in (0, 1)]
    fixed = duplicates_by_part(found, [opened.source.label])
    for number, duplicates in fixed.items():
        outcomes[number] = write_part(jobs[number], target, 5, reference, duplicates)
    monkeypatch.undo()
    assert len(jobs) > 1 and len(fixed) == 1  # the sample repeats one key
    # none but the first-occurrence pass's readers of key files, which wait on the network
    assert started and all(name.startswith("pa-batch-keys") for name in started), started
    for outcome in outcomes:  # each part's SHA-256, taken as written, is its file's
        for name, digest in outcome.sha256.items():
            assert digest == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest(), name

    local = tmp_path / "local"
    from pa_batch import run

    run(extract, local, reference_dir=SAMPLE_DATA / "reference", batch_rows=5)
    for table in ("results", "rejects"):  # the parts in name order: the local rows
        parts = pq.read_table(tmp_path / table).to_pandas()
        assert parts.equals(read_table(local, table)), table


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_table_hashed_as_it_is_written_holds_the_same_bytes(tmp_path, fmt):
    """``digest``: the SHA-256 of the bytes as they pass, equal to the file's; and the file
    the same bytes as one written without it."""
    import pandas as pd

    from pa_batch.io.tables import TableWriter
    from pa_batch.schemas.outputs import REJECTS_SCHEMA

    frame = pd.DataFrame(
        {name: [None] * 3 for name in REJECTS_SCHEMA.names}
        | {"source_file": ["a.csv"] * 3, "source_row": [1, 2, 3], "error_code": ["=X", "Y", "Z"]}
    )
    written = {}
    for digest in (False, True):
        path = tmp_path / f"{digest}.{fmt}"
        writer = TableWriter(path, REJECTS_SCHEMA, fmt, digest=digest)
        for _ in range(3):
            writer.write(frame)
        writer.close()
        written[digest] = path.read_bytes()
        if digest:
            assert writer.sha256 == hashlib.sha256(written[digest]).hexdigest()
        else:
            assert writer.sha256 is None
    assert written[True] == written[False] and len(written[True]) > 100
