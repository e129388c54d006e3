"""The dask engine's outputs, written where they are decided: each worker writes the result
and reject parts of its own fragments, and the run's duplicate keys are found by a pass that
no single process holds.

1. **parts** (``write_part``, a fragment each): the fragment is decided as the local engine
   decides a file; its results and rejects go to ``results/part-NNNNNN.{fmt}`` and
   ``rejects/part-NNNNNN.{fmt}`` (NNNNNN: the fragment's place in input order), its keys
   (the (claim_id, line_number) of every decided line, with where it was read) to a key
   file hash-partitioned into ``partitions`` record batches. Back come only counts.
2. **first occurrences** (``first_occurrences``, a partition each): that partition's keys
   of every part; per key, the first in (input, record) order wins, every later occurrence
   is a duplicate of it. Back come only the duplicates: (part, record, first location).
3. **fix-up**: a part holding duplicates is written again (``write_part`` with the
   duplicates found): those lines become DUPLICATE_KEY rejects naming the first occurrence,
   exactly as ``state.finish_batch`` makes them for the local engine.

The parts in name order hold the local engine's rows, value for value, in input order.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from pa_batch.core.counts import Counts
from pa_batch.core.model import ReferenceData
from pa_batch.io.formats import PARQUET
from pa_batch.io.inputs import (
    Extract,
    Fragment,
    fragment_batches,
    parquet_fragments,
)
from pa_batch.io.storage import Location, arrow_source
from pa_batch.io.tables import TableWriter, part_name
from pa_batch.runner.engines import LocalEngine
from pa_batch.runner.state import (
    FoundDuplicates,
    describe_locations,
    finish_batch,
    key_hashes,
    location_rows,
    pack_locations,
)
from pa_batch.schemas.outputs import REJECTS_SCHEMA, RESULTS_SCHEMA

_KEYS_SCHEMA = pa.schema(
    [("key", pa.large_string()), ("location", pa.uint64()), ("part", pa.uint32())]
)
KEY_FILE_READERS = 8  # key files a first-occurrence task reads at once
_DUPLICATES_SCHEMA = pa.schema(
    [("part", pa.uint32()), ("source_row", pa.int64()), ("first", pa.uint64())]
)


@dataclass(frozen=True)
class PartJob:
    """One part of the run: a Parquet fragment (row groups) or a whole CSV file (its record
    numbers are exact only read from the start)."""

    number: int  # its place in input order: the name of its files
    index: int  # its extract's place in the run's inputs
    extract: Extract
    fragment: Fragment | None  # None: the whole file

    @property
    def planned_rows(self) -> int | None:
        """Its records, known from the footer (Parquet); None until read (CSV)."""
        return self.fragment.rows if self.fragment else None


@dataclass(frozen=True)
class PartsTarget:
    """Where parts go: the run's dataset folders (staged, published at the commit) and a
    scratch folder for key files (never published). All workers reach them: a shared path
    or an object store's prefix."""

    results: Location
    rejects: Location
    keys: Location
    fmt: str
    partitions: int  # of the run's keys, one first-occurrence task each

    def key_file(self, number: int) -> Location:
        return self.keys / part_name(number, "arrow")


@dataclass
class PartOutcome:
    """What a worker tells of a part it wrote: counts, never records."""

    number: int
    index: int
    counts: Counts
    results_written: int
    sha256: dict[str, str] = field(default_factory=dict)  # "results/part-…": its SHA-256
    input_sha256: str | None = None  # a whole file's (CSV), taken as the worker read it


def plan_parts(extracts: list[Extract], fragment_rows: int) -> list[PartJob]:
    """Every extract's parts in input order: Parquet fragments of about ``fragment_rows``
    records from the footers already read; a CSV file whole."""
    jobs: list[PartJob] = []
    for index, extract in enumerate(extracts):
        if extract.source.format == PARQUET:
            fragments: list[Fragment | None] = list(parquet_fragments(extract, fragment_rows))
        else:
            fragments = [None]
        for fragment in fragments:
            jobs.append(PartJob(len(jobs), index, extract, fragment))
    return jobs


def write_part(
    job: PartJob,
    target: PartsTarget,
    batch_rows: int,
    reference: ReferenceData,
    duplicates: FoundDuplicates | None = None,
) -> PartOutcome:
    """On a worker: decide one part and write its result and reject files (again, with the
    ``duplicates`` the first-occurrence pass found; the first time, also its key file)."""
    extract = job.extract
    if job.fragment is not None:
        batches = fragment_batches(extract, job.fragment, batch_rows)
    else:
        batches = extract.batches(batch_rows)
    names = {
        table: folder / part_name(job.number, target.fmt)
        for table, folder in (("results", target.results), ("rejects", target.rejects))
    }
    # one core: a worker runs as many tasks at once as it was given threads (cores), so a
    # task reads, decides and writes in its own thread (distributed starts its workers with
    # OMP_NUM_THREADS=1, which Arrow's pool follows); a read-ahead or writer thread would
    # take a neighbouring task's core (1 -> 2 workers on this 2-core machine: 1.2-1.5x
    # with them, about 1.75x without). Each part is hashed as it is written: never read
    # back for its SHA-256.
    results, rejects = (
        TableWriter(names[table], schema, target.fmt, background=False, digest=True)
        for table, schema in (("results", RESULTS_SCHEMA), ("rejects", REJECTS_SCHEMA))
    )
    counts = Counts()
    keys: list[pa.Array] = []
    hashes: list[np.ndarray] = []
    locations: list[np.ndarray] = []
    engine = LocalEngine(reference, read_ahead=False)
    try:
        for decided in engine.decide(batches, extract.source.label):
            outcome = finish_batch(decided, duplicates or FoundDuplicates())
            results.write(outcome.decided, keep=outcome.kept)
            rejects.write(outcome.rejects)
            counts = counts + outcome.counts
            if duplicates is None:
                keys.append(pa.array(decided.keys, type=pa.large_string(), from_pandas=True))
                hashes.append(key_hashes(keys[-1]))
                rows = decided.results["source_row"].to_numpy(dtype=np.uint64)
                locations.append(pack_locations(job.index, rows))
            del decided, outcome
    finally:
        results.close()
        rejects.close()
    if duplicates is None:
        _write_keys(target, job.number, keys, hashes, locations)
    return PartOutcome(
        number=job.number,
        index=job.index,
        counts=counts,
        results_written=results.rows,
        sha256={
            f"{table}/{writer.path.name}": str(writer.sha256)
            for table, writer in (("results", results), ("rejects", rejects))
        },
        input_sha256=extract.sha256 if job.fragment is None else None,
    )


def _write_keys(
    target: PartsTarget,
    number: int,
    keys: list[pa.Array],
    hashes: list[np.ndarray],
    locations: list[np.ndarray],
) -> None:
    """A part's keys in one Arrow IPC file, one record batch per partition (by the key's
    hash), so a first-occurrence task reads its own batch of every key file and no more."""
    key = pa.chunked_array(keys, type=pa.large_string()).combine_chunks()
    location = np.concatenate(locations) if locations else np.zeros(0, np.uint64)
    hashed = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    partition = (hashed.astype(np.uint64) % np.uint64(target.partitions)).astype(np.int64)
    order = np.argsort(partition, kind="stable")  # input order kept within a partition
    bounds = np.searchsorted(partition[order], np.arange(target.partitions + 1))
    table = pa.table(
        {
            "key": key.take(pa.array(order)),
            "location": location[order],
            "part": np.full(len(order), number, np.uint32),
        },
        schema=_KEYS_SCHEMA,
    )
    with target.key_file(number).open("wb") as stream, ipc.new_file(stream, _KEYS_SCHEMA) as writer:
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            piece = table.slice(start, end - start)  # empty for a partition it has no key of
            columns = [column.combine_chunks() for column in piece.columns]
            writer.write_batch(pa.record_batch(columns, schema=_KEYS_SCHEMA))


def first_occurrences(key_files: Iterable[Location], partition: int) -> pa.Table:
    """On a worker: one partition of the run's keys, from every part's key file; the later
    occurrences of each key in (input, record) order, with where the key was first seen."""

    def read(key_file: Location) -> pa.RecordBatch:
        with ipc.open_file(arrow_source(key_file)) as reader:
            return reader.get_batch(partition)

    # a few key files read at once, in order: on a store each is a round trip or two of
    # tens of milliseconds, and a run of thousands of parts would wait on them one by one
    # (threads that wait on the network, not a second core's work)
    with ThreadPoolExecutor(KEY_FILE_READERS, thread_name_prefix="pa-batch-keys") as readers:
        pieces = list(readers.map(read, key_files))
    table = pa.Table.from_batches(pieces, schema=_KEYS_SCHEMA)
    if table.num_rows == 0:
        return _DUPLICATES_SCHEMA.empty_table()
    location = table["location"].to_numpy()
    order = np.argsort(location, kind="stable")
    codes = table["key"].take(pa.array(order)).combine_chunks().dictionary_encode().indices
    codes = codes.to_numpy()  # each key numbered by its first appearance in input order
    count = len(codes)
    first_position = np.empty(int(codes.max()) + 1, dtype=np.int64)
    first_position[codes[::-1]] = np.arange(count - 1, -1, -1)
    later = np.flatnonzero(first_position[codes] != np.arange(count))
    return pa.table(
        {
            "part": table["part"].take(pa.array(order[later])),
            "source_row": location_rows(location[order[later]]),
            "first": location[order[first_position[codes[later]]]],
        },
        schema=_DUPLICATES_SCHEMA,
    )


def duplicates_by_part(found: list[pa.Table], labels: list[str]) -> dict[int, FoundDuplicates]:
    """The first-occurrence pass's duplicates, by the part that holds them, each described
    as the local engine describes where its key was first seen (``label row N``)."""
    table = pa.concat_tables([_DUPLICATES_SCHEMA.empty_table(), *found])
    if table.num_rows == 0:
        return {}
    described = describe_locations(table["first"].to_numpy(), labels)
    part = table["part"].to_numpy()
    source_row = table["source_row"].to_numpy()
    by_part: dict[int, FoundDuplicates] = {}
    for number in np.unique(part):
        mine = part == number
        by_part[int(number)] = FoundDuplicates(source_row[mine], described[mine])
    return by_part
