"""Run state: the only things that span batches.

Batches are decided by pure functions; what one batch must know of the ones before it is
kept here, explicitly: the (claim_id, line_number) keys already evaluated (contract §3
DUPLICATE_KEY), applied to each decided batch in input order by ``finish_batch``.
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import os
import shutil
import sys
import tempfile
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pa_batch.core.arrow_text import offsets_and_bytes, one_array
from pa_batch.core.batch import YES, DecidedBatch, line_counts, reject_rows
from pa_batch.core.counts import Counts
from pa_batch.core.outcomes import OUT_OF_SCOPE, REJECTED
from pa_batch.errors import RunError
from pa_batch.schemas.claim_extract import REJECT_CODES

_ROW_BITS = 40  # a location packs (input index, source_row) into one uint64
_ROW_MASK = np.uint64((1 << _ROW_BITS) - 1)


def pack_locations(input_index: int, source_rows: np.ndarray) -> np.ndarray:
    """Where records were read, each as one uint64: (input index, source_row)."""
    return (np.uint64(input_index) << np.uint64(_ROW_BITS)) | np.asarray(
        source_rows, dtype=np.uint64
    )


def location_rows(locations: np.ndarray) -> np.ndarray:
    """The source_row of each packed location."""
    return (locations & _ROW_MASK).astype(np.int64)


def describe_locations(locations: np.ndarray, labels: list[str]) -> np.ndarray:
    """Each packed location as a DUPLICATE_KEY message names it: ``<input label> row N``."""
    inputs = np.asarray(labels, dtype=object)[(locations >> np.uint64(_ROW_BITS)).astype(np.int64)]
    return inputs + " row " + location_rows(locations).astype(str).astype(object)


class _HashFilter:
    """Which 64-bit key hashes may have been added: a blocked Bloom filter that grows.

    Each hash sets 6 bits of one 64-bit word (the word from the hash's top bits, the bits
    from its low 36): 16 bits a key, so about 2 bytes a key in memory (100 MB at 50 million
    keys), and a hash never added is reported "maybe" about 0.35% of the time at capacity.
    A filter that reaches its capacity is kept, and a new one of twice the capacity takes
    the new hashes; a hash is asked of every filter. "No" is always exact.
    """

    _BITS_PER_KEY = 16
    _BITS_SET = 6
    _FIRST_CAPACITY = 1 << 23  # keys: a 16 MiB filter

    def __init__(self) -> None:
        self._filters: list[tuple[np.ndarray, np.uint64]] = []  # (words, shift to a word)
        self._room = 0  # keys the newest filter takes before it is full

    @staticmethod
    def _word_and_bits(hashes: np.ndarray, shift: np.uint64) -> tuple[np.ndarray, np.ndarray]:
        bits = np.zeros(len(hashes), dtype=np.uint64)
        for i in range(_HashFilter._BITS_SET):
            bits |= np.uint64(1) << ((hashes >> np.uint64(6 * i)) & np.uint64(63))
        return (hashes >> shift).astype(np.int64), bits

    def may_contain(self, hashes: np.ndarray) -> np.ndarray:
        maybe = np.zeros(len(hashes), dtype=bool)
        for words, shift in self._filters:
            word, bits = self._word_and_bits(hashes, shift)
            maybe |= (words[word] & bits) == bits
        return maybe

    def add(self, hashes: np.ndarray) -> None:
        """Add ``hashes`` (ascending, so that the words they set come in order)."""
        while len(hashes):
            if not self._room:
                capacity = self._FIRST_CAPACITY << len(self._filters)
                word_count = capacity * self._BITS_PER_KEY // 64
                shift = np.uint64(64 - (word_count.bit_length() - 1))
                self._filters.append((np.zeros(word_count, dtype=np.uint64), shift))
                self._room = capacity
            now, hashes = hashes[: self._room], hashes[self._room :]
            words, shift = self._filters[-1]
            word, bits = self._word_and_bits(now, shift)
            first = np.flatnonzero(np.r_[True, word[1:] != word[:-1]])
            words[word[first]] |= np.bitwise_or.reduceat(bits, first)
            self._room -= len(now)


def _mapped(path: Path, dtype: type, offset: int = 0, shape: int | None = None) -> np.ndarray:
    """A read-only memory map of ``path`` for scattered reads (no read-ahead). The pages
    read stay in the process's resident memory while the map lives, and the kernel may map
    a whole large folio for one page read: callers map a window, not a whole file."""
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    with contextlib.suppress(AttributeError, OSError, ValueError):  # not on every platform
        mapped._mmap.madvise(mmap.MADV_RANDOM)  # type: ignore[attr-defined]
    return mapped


@dataclass
class _Run:
    """A sorted run of the hash index: entries ``first``..``first + count`` of the main
    files (a segment as written), or, once runs are merged, its own files of hashes and the
    entries they belong to (``RUNS_DIR/<name>.hashes``, ``.entries``)."""

    level: int  # 0: a segment; n: merged from FAN_IN runs of level n - 1
    count: int
    fences: np.ndarray  # the first hash of every BLOCK entries, held in memory
    first: int = 0
    merged: Path | None = None  # the merged run's files, without suffix

    BLOCK = 64  # entries: 512 bytes of hashes read a hash asked; 1/8 byte a key in memory
    WINDOW = 1 << 20  # entries mapped (or read, when most pages are searched) at a time

    def lower_bounds(self, directory: Path, asked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each hash ``asked``, the first position of this run whose hash is not less
        (``np.searchsorted``'s "left") and the hash there (any other value past the end):
        the block that holds it found from the fences in memory, and that one block read,
        a window of the run mapped at a time (never the whole run: the kernel may map a
        large folio of a file for one page read). More hashes than the run has blocks
        read the run whole, a window at a time."""
        below = np.zeros(len(asked), dtype=np.int64)
        there = ~asked  # past the end: never the hash asked
        if len(asked) > len(self.fences):
            placed = np.zeros(len(asked), dtype=bool)
            for low in range(0, self.count, self.WINDOW):
                window, _ = self.read(directory, low, min(low + self.WINDOW, self.count))
                local = np.searchsorted(window, asked, side="left")
                here = ~placed & (local < len(window))  # the bound is in this window
                there[here] = window[local[here]]
                placed |= here
                below += local
            return below, there
        if not len(asked):
            return below, there
        block = np.maximum(np.searchsorted(self.fences, asked, side="left") - 1, 0)
        window = block * self.BLOCK // self.WINDOW  # a block never straddles two windows
        order = np.argsort(window, kind="stable")
        windows, starts = np.unique(window[order], return_index=True)
        path, base = self._file(directory, "hashes")
        for number, mine in zip(windows.tolist(), np.split(order, starts[1:]), strict=True):
            # a window mapped at a time: the pages the kernel maps for a page read (a
            # large folio's) stay inside it, and leave with it
            low = number * self.WINDOW
            size = min(self.WINDOW, self.count - low)
            mapped = _mapped(path, np.uint64, offset=base + 8 * low, shape=size)
            positions = block[mine, None] * self.BLOCK - low + np.arange(self.BLOCK)
            stored = np.asarray(mapped[np.minimum(positions, size - 1)])
            del mapped
            valid = positions < size
            below[mine] = ((stored < asked[mine, None]) & valid).sum(axis=1)
            in_block = below[mine] < valid.sum(axis=1)
            rows = np.flatnonzero(in_block)
            there[mine[rows]] = stored[rows, below[mine[rows]]]
            # a bound just past its block is the next block's first hash: its fence
            following = mine[~in_block]
            next_block = block[following] + 1
            has_next = next_block < len(self.fences)
            there[following[has_next]] = self.fences[next_block[has_next]]
        return block * self.BLOCK + below, there

    def hashes_at(self, directory: Path, at: np.ndarray) -> np.ndarray:
        """The run's hashes at positions ``at`` (a few), read one by one."""
        return self._values_at(directory, "hashes", at)

    def entries(self, directory: Path, at: np.ndarray) -> np.ndarray:
        """The main files' entries at positions ``at`` of this run."""
        if self.merged is None:
            return at + self.first
        return self._values_at(directory, "entries", at).astype(np.int64)

    def _values_at(self, directory: Path, kind: str, at: np.ndarray) -> np.ndarray:
        values = np.zeros(len(at), dtype=np.uint64)
        with self._opened(directory, kind) as (descriptor, base):
            for n, position in enumerate(at.tolist()):
                value = os.pread(descriptor, 8, base + 8 * position)
                values[n] = int.from_bytes(value, sys.byteorder)
        return values

    def _file(self, directory: Path, kind: str) -> tuple[Path, int]:
        """The file holding this run's ``kind`` (hashes, entries), and the run's first byte
        in it."""
        if self.merged is None:
            return directory / kind, 8 * self.first
        return self.merged.with_suffix(f".{kind}"), 0

    @contextlib.contextmanager
    def _opened(self, directory: Path, kind: str) -> Iterator[tuple[int, int]]:
        """The file holding this run's ``kind`` open, and the run's first byte in it."""
        path, base = self._file(directory, kind)
        descriptor = os.open(path, os.O_RDONLY)
        try:
            yield descriptor, base
        finally:
            os.close(descriptor)

    def hashes(self, directory: Path) -> np.ndarray:
        """The run's hashes mapped (a few boundaries searched while merging)."""
        path, base = self._file(directory, "hashes")
        return _mapped(path, np.uint64, offset=base, shape=self.count)

    def read(self, directory: Path, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``low``..``high`` of this run: hashes and entries, read (not mapped: a
        mapped page read stays in the process's memory while the map lives)."""
        path, base = self._file(directory, "hashes")
        hashes = np.fromfile(path, np.uint64, high - low, offset=base + 8 * low)
        if self.merged is None:
            return hashes, np.arange(self.first + low, self.first + high, dtype=np.int64)
        path, base = self._file(directory, "entries")
        entries = np.fromfile(path, np.uint64, high - low, offset=base + 8 * low)
        return hashes, entries.astype(np.int64)


class _SpilledKeys:
    """Every registered key on disk, written once, in segments of at least 262,144 keys (each
    sorted by hash): the hashes, where each key was first seen, and the key text. Read back
    only for hashes already known, through a memory map of one sorted run at a time. Keys
    wait in memory until they fill a segment.

    A lookup walks every sorted run of the hash index, so runs are merged as they come, an
    LSM tree's way: ``FAN_IN`` runs of one level become one run of the next (its own files
    of hashes and entries; the key text and locations are never rewritten). A lookup touches
    at most ``FAN_IN - 1`` runs a level, a few levels (16 runs at 50 million keys, not 190
    segments), and each key is merged once a level.
    """

    _FILES = ("hashes", "locations", "key_ends", "keys")
    _RUNS_DIR = "runs"
    _SEGMENT_KEYS = 1 << 18
    FAN_IN = 8
    _MERGE_CHUNK = 1 << 20  # entries sorted at a time while merging: bounds its memory

    def __init__(self, directory: Path | None):
        self._directory = directory  # None: a temporary one, made at the first segment
        self._files: dict[str, BinaryIO] = {}  # opened at the first segment
        self._runs: list[_Run] = []  # the hash index, in sorted runs
        self._merges = 0
        self.entries = 0
        self._key_bytes = 0
        self._finalizer: weakref.finalize | None = None
        # keys not yet written: (hashes, keys, locations) pieces, joined when looked up
        self._waiting: list[tuple[np.ndarray, pa.Array, np.ndarray]] = []

    def add(self, hashes: np.ndarray, keys: pa.Array, locations: np.ndarray) -> None:
        """Register keys (their hashes new to the registry)."""
        self._waiting.append((hashes, keys, locations))
        if sum(len(h) for h, _, _ in self._waiting) >= self._SEGMENT_KEYS:
            self._write_waiting()

    def _joined_waiting(self) -> tuple[np.ndarray, pa.Array, np.ndarray]:
        """The waiting keys as one piece, sorted by hash (and kept so)."""
        if len(self._waiting) > 1 or (self._waiting and not _ascending(self._waiting[0][0])):
            hashes = np.concatenate([h for h, _, _ in self._waiting])
            order = np.argsort(hashes, kind="stable")
            keys = pa.concat_arrays([k.cast(pa.string()) for _, k, _ in self._waiting])
            locations = np.concatenate([at for _, _, at in self._waiting])
            self._waiting = [(hashes[order], keys.take(pa.array(order)), locations[order])]
        return self._waiting[0]

    def _write_waiting(self) -> None:
        if self._waiting:
            self.append(*self._joined_waiting())
            self._waiting = []

    def _open(self) -> None:
        own = self._directory is None
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="pa-batch-keys-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files = {name: (self.directory / name).open("wb") for name in self._FILES}
        # closed and removed even if the owner forgets to (a test, an interrupted run)
        self._finalizer = weakref.finalize(
            self, _remove_spill, self.directory, list(self._files.values()), own
        )

    @property
    def directory(self) -> Path:
        """Where the segments are (once the first is written)."""
        if self._directory is None:
            raise RuntimeError("no key is spilled yet")
        return self._directory

    def append(self, hashes: np.ndarray, keys: pa.Array, locations: np.ndarray) -> None:
        """One segment: ``hashes`` ascending, ``keys`` and ``locations`` in the same order."""
        if not self._files:
            self._open()
        offsets, data = offsets_and_bytes(keys)
        start, end = int(offsets[0]), int(offsets[-1])
        hashes.astype(np.uint64).tofile(self._files["hashes"])
        locations.astype(np.uint64).tofile(self._files["locations"])
        key_ends = offsets[1:].astype(np.int64) - start + self._key_bytes
        key_ends.astype(np.uint64).tofile(self._files["key_ends"])
        if end > start:
            self._files["keys"].write(data[start:end].tobytes())
        fences = np.array(hashes[:: _Run.BLOCK], dtype=np.uint64)  # a copy, not a view
        self._runs.append(_Run(level=0, count=len(hashes), fences=fences, first=self.entries))
        self.entries += len(hashes)
        self._key_bytes += end - start
        self._merge_full_levels()

    def _merge_full_levels(self) -> None:
        """While a level holds ``FAN_IN`` runs, merge them into one of the next level."""
        level = 0
        while True:
            full = [run for run in self._runs if run.level == level]
            if len(full) < self.FAN_IN:
                return
            merged = self._merge(full, level + 1)
            self._runs = [run for run in self._runs if run.level != level] + [merged]
            level += 1

    def _merge(self, runs: list[_Run], level: int) -> _Run:
        """One sorted run of ``runs``' hashes and entries, written a hash range at a time
        (each range about ``_MERGE_CHUNK`` entries); the merged runs' own files removed."""
        self._files["hashes"].flush()
        folder = self.directory / self._RUNS_DIR
        folder.mkdir(exist_ok=True)
        self._merges += 1
        target = folder / f"run-{self._merges}"
        total = sum(run.count for run in runs)
        ranges = max(1, total // self._MERGE_CHUNK)
        # hash range boundaries: the ranges split 2**64 evenly (hashes are uniform)
        bounds = [(2**64 * piece) // ranges for piece in range(ranges + 1)]
        inner = np.array(bounds[1:-1], dtype=np.uint64)
        cuts = []
        for run in runs:  # a search of a few boundaries maps few pages
            mapped = run.hashes(self.directory)
            cuts.append(np.searchsorted(mapped, inner, side="left"))
            del mapped
        fences: list[np.ndarray] = []
        written = 0
        with (
            target.with_suffix(".hashes").open("wb") as hashes_file,
            target.with_suffix(".entries").open("wb") as entries_file,
        ):
            for piece in range(ranges):
                hashes_parts, entries_parts = [], []
                for run, cut in zip(runs, cuts, strict=True):
                    low = int(cut[piece - 1]) if piece else 0
                    high = int(cut[piece]) if piece < ranges - 1 else run.count
                    hashes_part, entries_part = run.read(self.directory, low, high)
                    hashes_parts.append(hashes_part)
                    entries_parts.append(entries_part)
                hashes_piece = np.concatenate(hashes_parts)
                # stable: equal hashes keep their runs' order (an older key first)
                order = np.argsort(hashes_piece, kind="stable")
                hashes_piece = hashes_piece[order]
                hashes_piece.tofile(hashes_file)
                fences.append(hashes_piece[(-written) % _Run.BLOCK :: _Run.BLOCK].copy())
                written += len(hashes_piece)
                np.concatenate(entries_parts).astype(np.uint64)[order].tofile(entries_file)
        for run in runs:
            if run.merged is not None:
                run.merged.with_suffix(".hashes").unlink()
                run.merged.with_suffix(".entries").unlink()
        return _Run(level=level, count=total, fences=np.concatenate(fences), merged=target)

    def find(self, hashes: np.ndarray, keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """For each (hash, key) asked: whether the key is registered, and its location."""
        known = np.zeros(len(hashes), dtype=bool)
        location = np.zeros(len(hashes), dtype=np.uint64)

        def look_in(stored: _SortedHashes, stored_at: _StoredAt) -> None:
            asked = np.flatnonzero(~known)
            found, where = _equal_keys(stored, hashes, keys, asked, stored_at)
            known[found], location[found] = True, where

        if self._waiting:
            waiting_hashes, waiting_keys, waiting_locations = self._joined_waiting()
            look_in(
                _SortedHashes(
                    len(waiting_hashes),
                    lambda asked: _searched(waiting_hashes, asked),
                    lambda at: waiting_hashes[at],
                ),
                lambda at, asked_keys: (
                    pc.equal(waiting_keys.take(pa.array(at)), asked_keys).to_numpy(
                        zero_copy_only=False
                    ),
                    waiting_locations[at],
                ),
            )
        for file in self._files.values():
            file.flush()
        for run in self._runs:
            if known.all():
                break
            look_in(
                _SortedHashes(
                    run.count,
                    functools.partial(run.lower_bounds, self.directory),
                    functools.partial(run.hashes_at, self.directory),
                ),
                functools.partial(self._stored_at, run=run),
            )
        return known, location

    def _stored_at(
        self, at: np.ndarray, keys: pa.Array, run: _Run
    ) -> tuple[np.ndarray, np.ndarray]:
        """Whether the stored key at each position ``at`` of ``run`` is the key asked, and
        its location."""
        entries = run.entries(self.directory, at)
        stored = {
            name: _mapped(self.directory / name, np.uint64) for name in ("locations", "key_ends")
        }
        stored_keys = (
            _mapped(self.directory / "keys", np.uint8) if self._key_bytes else np.zeros(0, np.uint8)
        )
        try:
            same_key = pc.equal(
                _gather_text(stored["key_ends"], stored_keys, entries), keys
            ).to_numpy(zero_copy_only=False)
            return same_key, np.asarray(stored["locations"][entries], dtype=np.uint64)
        finally:
            del stored, stored_keys  # unmapped: the pages read leave this process

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()


# whether the stored keys at some positions equal the keys asked, and their locations
_StoredAt = Callable[[np.ndarray, pa.Array], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class _SortedHashes:
    """Ascending hashes, as a lookup reads them: how many, where each hash asked would go
    (``np.searchsorted``'s "left") with the hash there, and the hashes at some positions."""

    count: int
    lower_bounds: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    at: Callable[[np.ndarray], np.ndarray]


def _equal_keys(
    stored: _SortedHashes,
    hashes: np.ndarray,
    keys: pa.Array,
    asked: np.ndarray,
    stored_at: _StoredAt,
) -> tuple[np.ndarray, np.ndarray]:
    """Which of the ``asked`` positions (into ``hashes`` and ``keys``) have their key among
    entries with ``stored`` hashes (ascending), and the locations stored with them. Equal
    hashes (almost always none or one) are walked in turn until the key text matches."""
    found: list[np.ndarray] = []
    where: list[np.ndarray] = []
    pending = asked
    at, there = stored.lower_bounds(hashes[pending])
    while True:
        inside = at < stored.count
        pending, at, there = pending[inside], at[inside], there[inside]
        same_hash = there == hashes[pending]
        pending, at = pending[same_hash], at[same_hash]
        if not len(pending):
            break
        same_key, location = stored_at(at, keys.take(pa.array(pending)))
        found.append(pending[same_key])
        where.append(location[same_key])
        # an equal hash of another key (a collision, almost never): the next entry
        pending, at = pending[~same_key], at[~same_key] + 1
        there = stored.at(np.minimum(at, stored.count - 1)) if len(at) else at.astype(np.uint64)
    if not found:
        return asked[:0], np.zeros(0, dtype=np.uint64)
    return np.concatenate(found), np.concatenate(where).astype(np.uint64)


def _searched(hashes: np.ndarray, asked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.searchsorted's "left" bounds of ``asked`` in ``hashes``, and the hash at each
    (any other value past the end)."""
    at = np.searchsorted(hashes, asked, side="left")
    there = hashes[np.minimum(at, len(hashes) - 1)] if len(hashes) else ~asked
    return at, np.where(at < len(hashes), there, ~asked)


def _ascending(values: np.ndarray) -> bool:
    return bool(len(values) < 2 or (values[1:] >= values[:-1]).all())


def _remove_spill(directory: Path, files: list[BinaryIO], own_directory: bool) -> None:
    for file in files:
        file.close()
    for name in _SpilledKeys._FILES:
        (directory / name).unlink(missing_ok=True)
    shutil.rmtree(directory / _SpilledKeys._RUNS_DIR, ignore_errors=True)
    if own_directory:
        shutil.rmtree(directory, ignore_errors=True)


def _gather_text(key_ends: np.ndarray, key_bytes: np.ndarray, entries: np.ndarray) -> pa.Array:
    """The stored keys at ``entries``, as one Arrow string array (no per-key Python)."""
    ends = np.asarray(key_ends[entries], dtype=np.int64)
    before = entries - 1
    starts = np.where(entries > 0, np.asarray(key_ends[np.maximum(before, 0)], np.int64), 0)
    lengths = ends - starts
    offsets = np.zeros(len(entries) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    data = np.asarray(key_bytes[positions], dtype=np.uint8)
    return pa.LargeStringArray.from_buffers(
        len(entries), pa.py_buffer(offsets), pa.py_buffer(data)
    ).cast(pa.string())


class ClaimKeyRegistry:
    """The first occurrence of every evaluated (claim_id, line_number) key in the run.

    Memory holds only a filter of the keys' 64-bit hashes (about 2 bytes a key: 100 MB at
    50 million keys). The hashes, the key text and where each key was first seen are
    written to disk once, and read back only where the filter says a batch's key may be
    known (its duplicates, and about 0.35% of the rest): there the hash is looked up and
    confirmed on the key text, so neither a filter false positive nor a hash collision can
    make a false duplicate.
    """

    def __init__(self, spill_dir: Path | None = None) -> None:
        self._filter = _HashFilter()
        self._keys = 0
        self._inputs: list[str] = []  # input labels, by index
        self._spilled = _SpilledKeys(spill_dir)

    def __enter__(self) -> ClaimKeyRegistry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._spilled.close()

    def __len__(self) -> int:
        return self._keys

    def claim(self, keys: pd.Series, source_file: str, source_rows: np.ndarray) -> pd.Series:
        """Register ``keys`` (of ``source_file``, at ``source_rows``) in order; for each, where
        the key was first seen (``file row N``), or NA where this is its first occurrence."""
        n = len(keys)
        if n == 0:
            return pd.Series([], dtype="str")
        if not self._inputs or self._inputs[-1] != source_file:
            self._inputs.append(source_file)
        locations = pack_locations(len(self._inputs) - 1, source_rows)

        # within the batch: keys numbered by first appearance, exactly
        text = one_array(pa.array(keys, type=pa.string(), from_pandas=True))
        codes, first_position, hashes = _distinct_keys(text)
        found = np.zeros(n, dtype=np.uint64)
        seen = np.zeros(n, dtype=bool)
        repeat = first_position[codes] != np.arange(n)
        found[repeat] = locations[first_position[codes[repeat]]]
        seen[repeat] = True

        # the batch's distinct keys, in hash order, against the keys of earlier batches
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        first = first_position[order]  # each distinct key's first row in this batch
        distinct = text.take(pa.array(first))
        maybe = self._filter.may_contain(hashes)
        known = np.zeros(len(hashes), dtype=bool)
        earlier = np.zeros(len(hashes), dtype=np.uint64)
        if maybe.any():
            candidates = np.flatnonzero(maybe)
            found_known, found_at = self._spilled.find(
                hashes[candidates], distinct.take(pa.array(candidates))
            )
            known[candidates] = found_known
            earlier[candidates] = found_at
        seen[first[known]] = True
        found[first[known]] = earlier[known]
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))  # distinct key (factorize code) -> hash order
        repeat_of_earlier = known[rank[codes]] & repeat
        found[repeat_of_earlier] = earlier[rank[codes[repeat_of_earlier]]]

        new = ~known
        if new.any():
            self._spilled.add(hashes[new], distinct.filter(pa.array(new)), locations[first[new]])
            self._filter.add(hashes[new])
            self._keys += int(np.count_nonzero(new))
        return pd.Series(self._describe(found, seen), dtype="str")

    def _describe(self, found: np.ndarray, seen: np.ndarray) -> np.ndarray:
        described = np.full(len(found), None, dtype=object)
        described[seen] = describe_locations(found[seen], self._inputs)
        return described


def _distinct_keys(text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each key's number among the distinct keys (by first appearance), each distinct key's
    first position, and its hash. Numbered by hash, which is exact unless two different
    keys share one: that is checked on the text, and then the keys are numbered by their
    text instead."""
    hashes = key_hashes(text)
    codes, distinct_hashes = pd.factorize(hashes)
    first_position = _first_of_each(codes, len(distinct_hashes))
    same_text = pc.equal(text, text.take(pa.array(first_position[codes])))
    if pc.all(same_text).as_py() is not False:
        return codes, first_position, distinct_hashes.astype(np.uint64)
    codes, distinct = pd.factorize(pd.Series(text, dtype="str"))
    first_position = _first_of_each(codes, len(distinct))
    return codes, first_position, key_hashes(text.take(pa.array(first_position)))


def _first_of_each(codes: np.ndarray, count: int) -> np.ndarray:
    """Where each of ``count`` codes first appears in ``codes`` (a factorize's)."""
    first = np.empty(count, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    return first


# a polynomial over a key's bytes (mod 2**64), its length added, then splitmix64's
# finalizer, so that every bit of the key reaches every bit of the hash (the filter and the
# runs take bits of it from both ends)
_MULTIPLIER = np.uint64(0x100000001B3)  # FNV's 64-bit prime: odd, so no byte is lost
_LENGTH_WEIGHT = np.uint64(0x9E3779B97F4A7C15)
_powers = np.cumprod(np.full(64, _MULTIPLIER, dtype=np.uint64))


_HASH_CHUNK = 1 << 14  # values hashed at once: a few MB of byte-wide temporaries


def key_hashes(text: pa.Array) -> np.ndarray:
    """A 64-bit hash of each text value, computed over many at once from the Arrow buffers
    (a null hashes as the empty text: keys are never null)."""
    text = one_array(text)
    if len(text) <= _HASH_CHUNK:
        return _chunk_hashes(text)
    return np.concatenate(
        [
            _chunk_hashes(text.slice(start, _HASH_CHUNK))
            for start in range(0, len(text), _HASH_CHUNK)
        ]
    )


def _chunk_hashes(text: pa.Array) -> np.ndarray:
    global _powers
    offsets, data = offsets_and_bytes(text)
    offsets = offsets.astype(np.int64)
    lengths = np.diff(offsets)
    sums = np.zeros(len(lengths), dtype=np.uint64)
    used = data[offsets[0] : offsets[-1]].astype(np.uint64)
    if len(used):
        if int(lengths.max()) > len(_powers):
            _powers = np.cumprod(np.full(2 * int(lengths.max()), _MULTIPLIER, dtype=np.uint64))
        starts = offsets[:-1] - offsets[0]
        within = np.arange(len(used), dtype=np.int64) - np.repeat(starts, lengths)
        present = lengths > 0
        sums[present] = np.add.reduceat(used * _powers[within], starts[present])
    return _mixed(sums + lengths.astype(np.uint64) * _LENGTH_WEIGHT)


def _mixed(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


class FoundDuplicates:
    """A stretch of input's duplicates, already found (the dask engine's first-occurrence
    pass over the whole run, ``runner.parts``): ``claim`` answers as ``ClaimKeyRegistry``
    would have, from the source rows that repeat an earlier key and where that key was
    first seen. With none given, every key is taken as its first occurrence."""

    def __init__(self, source_rows: np.ndarray | None = None, first_seen: np.ndarray | None = None):
        rows = np.zeros(0, np.int64) if source_rows is None else np.asarray(source_rows, np.int64)
        order = np.argsort(rows, kind="stable")
        self._rows = rows[order]
        self._first_seen = (
            np.zeros(0, object) if first_seen is None else np.asarray(first_seen, object)[order]
        )

    def claim(self, keys: pd.Series, source_file: str, source_rows: np.ndarray) -> pd.Series:
        rows = np.asarray(source_rows, dtype=np.int64)
        described = np.full(len(rows), None, dtype=object)
        if len(self._rows):
            at = np.minimum(np.searchsorted(self._rows, rows), len(self._rows) - 1)
            repeat = self._rows[at] == rows
            described[repeat] = self._first_seen[at[repeat]]
        return pd.Series(described, dtype="str")


class _Claims(Protocol):
    def claim(self, keys: pd.Series, source_file: str, source_rows: np.ndarray) -> pd.Series: ...


@dataclass
class BatchOutcome:
    """A decided batch with the run state applied: every record of it has one outcome."""

    decided: pd.DataFrame  # RESULTS_SCHEMA columns, input order, duplicates included
    kept: np.ndarray | None  # the rows of ``decided`` that are results; None: all
    rejects: pd.DataFrame  # REJECTS_SCHEMA columns, by source_row then check order
    counts: Counts


INVALID_STRENGTH_UNIT = "INVALID_STRENGTH_UNIT"


def finish_batch(decided: DecidedBatch, claim_keys: _Claims) -> BatchOutcome:
    """Apply the run state (batches in input order): a line whose key an earlier line of the
    run holds is rejected DUPLICATE_KEY instead of decided; then count every outcome."""
    results = decided.results
    first_seen = claim_keys.claim(
        decided.keys, decided.source_file, results["source_row"].to_numpy()
    )
    repeated = first_seen.notna().to_numpy()
    rejects = decided.rejects
    counts = decided.counts
    kept = None
    if repeated.any():
        duplicates = _duplicate_rejects(decided, repeated, first_seen[repeated])
        rejects = reject_rows(**pd.concat([rejects, duplicates], ignore_index=True))
        kept = ~repeated  # the writer leaves the rest out, in its own thread
        counts = counts - line_counts(results[repeated])

    rejected = rejects.drop_duplicates("source_row")  # one row per rejected record
    counts = counts + Counts(
        rows_read=decided.rows_read,
        outcomes=Counter({OUT_OF_SCOPE: decided.out_of_scope, REJECTED: len(rejected)}),
        errors=Counter(rejects["error_code"].value_counts().to_dict()),
        rejected_by_powder_line=Counter(rejected["powder_line"].value_counts().to_dict()),
        unknown_units=Counter(
            rejects.loc[rejects["error_code"] == INVALID_STRENGTH_UNIT, "value"]
            .astype("str")
            .str.strip()
            .value_counts()
            .to_dict()
        ),
    )
    if counts.outcomes.total() != decided.rows_read:
        raise RunError(
            f"reconciliation failed: {counts.outcomes.total()} outcomes for "
            f"{decided.rows_read} records",
            file=decided.source_file,
        )
    return BatchOutcome(decided=results, kept=kept, rejects=rejects, counts=counts)


def _duplicate_rejects(
    decided: DecidedBatch, repeated: np.ndarray, first_seen: pd.Series
) -> pd.DataFrame:
    """The reject rows of result rows whose key an earlier line of the run holds."""
    lines = decided.results[repeated]
    given = decided.line_numbers_given.filter(pa.array(repeated)).to_numpy(zero_copy_only=False)
    return reject_rows(
        source_file=decided.source_file,
        source_row=lines["source_row"].to_numpy(),
        claim_id=lines["claim_id"].to_numpy(dtype=object),
        line_number=pd.Series(given, dtype="str").str.strip().to_numpy(dtype=object),
        column="line_number",
        error_code="DUPLICATE_KEY",
        message=(REJECT_CODES["DUPLICATE_KEY"] + " (first at " + first_seen + ")").to_numpy(
            dtype=object
        ),
        value=given,
        powder_line=YES,
    )
