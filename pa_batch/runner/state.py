"""Run state: the only things that span batches.

Batches are decided by pure functions; what one batch must know of the ones before it is
kept here, explicitly: the (claim_id, line_number) keys already evaluated (contract §3
DUPLICATE_KEY), applied to each decided batch in input order by ``finish_batch``.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pa_batch.core.arrow_text import offsets_and_bytes
from pa_batch.core.batch import YES, DecidedBatch, line_counts, reject_rows
from pa_batch.core.counts import Counts
from pa_batch.core.outcomes import OUT_OF_SCOPE, REJECTED
from pa_batch.errors import RunError
from pa_batch.schemas.claim_extract import REJECT_CODES

_ROW_BITS = 40  # a location packs (input index, source_row) into one uint64


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


class _SpilledKeys:
    """Every registered key on disk, written once, in segments of at least 262,144 keys (each
    sorted by hash): the hashes, where each key was first seen, and the key text. Read back
    only for hashes already known, through a memory map of one segment at a time. Keys wait
    in memory until they fill a segment, so a lookup walks few segments, whatever the batch
    size."""

    _FILES = ("hashes", "locations", "key_ends", "keys")
    _SEGMENT_KEYS = 1 << 18

    def __init__(self, directory: Path | None):
        self._directory = directory  # None: a temporary one, made at the first segment
        self._files: dict[str, BinaryIO] = {}  # opened at the first segment
        self._segments: list[tuple[int, int]] = []  # (first entry, entries)
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
        self._segments.append((self.entries, len(hashes)))
        self.entries += len(hashes)
        self._key_bytes += end - start

    def find(self, hashes: np.ndarray, keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """For each (hash, key) asked: whether the key is registered, and its location."""
        known = np.zeros(len(hashes), dtype=bool)
        location = np.zeros(len(hashes), dtype=np.uint64)

        def look_in(stored_hashes: np.ndarray, stored_at: _StoredAt) -> None:
            asked = np.flatnonzero(~known)
            found, where = _equal_keys(stored_hashes, hashes, keys, asked, stored_at)
            known[found], location[found] = True, where

        if self._waiting:
            waiting_hashes, waiting_keys, waiting_locations = self._joined_waiting()
            look_in(
                waiting_hashes,
                lambda at, asked_keys: (
                    pc.equal(waiting_keys.take(pa.array(at)), asked_keys).to_numpy(
                        zero_copy_only=False
                    ),
                    waiting_locations[at],
                ),
            )
        for file in self._files.values():
            file.flush()
        for first, count in self._segments:
            if known.all():
                break
            # one segment's hashes mapped at a time: a search touches most of the pages it
            # maps, and a page stays in this process's memory only while it is mapped
            segment = np.memmap(
                self.directory / "hashes", dtype=np.uint64, mode="r", offset=8 * first, shape=count
            )
            look_in(segment, functools.partial(self._stored_at, offset=first))
            del segment
        return known, location

    def _stored_at(
        self, at: np.ndarray, keys: pa.Array, offset: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Whether the stored key at each entry ``offset + at`` is the key asked, and its
        location."""
        entries = at + offset
        stored = {
            name: np.memmap(self.directory / name, dtype=np.uint64, mode="r")
            for name in ("locations", "key_ends")
        }
        stored_keys = (
            np.memmap(self.directory / "keys", dtype=np.uint8, mode="r")
            if self._key_bytes
            else np.zeros(0, np.uint8)
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


def _equal_keys(
    stored: np.ndarray, hashes: np.ndarray, keys: pa.Array, asked: np.ndarray, stored_at: _StoredAt
) -> tuple[np.ndarray, np.ndarray]:
    """Which of the ``asked`` positions (into ``hashes`` and ``keys``) have their key among
    entries with ``stored`` hashes (ascending), and the locations stored with them. Equal
    hashes (almost always none or one) are walked in turn until the key text matches."""
    found: list[np.ndarray] = []
    where: list[np.ndarray] = []
    pending = asked
    at = np.searchsorted(stored, hashes[pending], side="left")
    while True:
        inside = at < len(stored)
        pending, at = pending[inside], at[inside]
        same_hash = stored[at] == hashes[pending]
        pending, at = pending[same_hash], at[same_hash]
        if not len(pending):
            break
        same_key, location = stored_at(at, keys.take(pa.array(pending)))
        found.append(pending[same_key])
        where.append(location[same_key])
        pending, at = pending[~same_key], at[~same_key] + 1
    if not found:
        return asked[:0], np.zeros(0, dtype=np.uint64)
    return np.concatenate(found), np.concatenate(where).astype(np.uint64)


def _ascending(values: np.ndarray) -> bool:
    return bool(len(values) < 2 or (values[1:] >= values[:-1]).all())


def _remove_spill(directory: Path, files: list[BinaryIO], own_directory: bool) -> None:
    for file in files:
        file.close()
    for name in _SpilledKeys._FILES:
        (directory / name).unlink(missing_ok=True)
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
        here = np.uint64(len(self._inputs) - 1) << np.uint64(_ROW_BITS)
        locations = here | np.asarray(source_rows, dtype=np.uint64)

        # within the batch: factorize numbers keys by first appearance, exactly
        codes, uniques = pd.factorize(keys.reset_index(drop=True))
        first_position = np.empty(len(uniques), dtype=np.int64)
        first_position[codes[::-1]] = np.arange(n - 1, -1, -1)
        found = np.zeros(n, dtype=np.uint64)
        seen = np.zeros(n, dtype=bool)
        repeat = first_position[codes] != np.arange(n)
        found[repeat] = locations[first_position[codes[repeat]]]
        seen[repeat] = True

        # the batch's distinct keys, in hash order, against the keys of earlier batches
        distinct_keys = pd.Series(uniques, dtype="str")
        hashes = pd.util.hash_pandas_object(distinct_keys, index=False).to_numpy(np.uint64)
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        distinct = pa.array(distinct_keys, type=pa.string(), from_pandas=True).take(pa.array(order))
        first = first_position[order]  # each distinct key's first row in this batch
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
        index = (found[seen] >> np.uint64(_ROW_BITS)).astype(np.int64)
        rows = (found[seen] & np.uint64((1 << _ROW_BITS) - 1)).astype(np.int64)
        labels = np.asarray(self._inputs, dtype=object)[index]
        described[seen] = labels + " row " + rows.astype(str).astype(object)
        return described


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
