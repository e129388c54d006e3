"""Run state: the only things that span batches.

Batches are decided by pure functions; what one batch must know of the ones before it is
kept here, explicitly: the (claim_id, line_number) keys already evaluated (contract §3
DUPLICATE_KEY) and the running counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_ROW_BITS = 40  # a location packs (input index, source_row) into one uint64


@dataclass
class _Run:
    """Keys sorted by hash: the hashes, the key text (for exactness) and where each was first."""

    hashes: np.ndarray  # uint64, ascending
    keys: pa.Array  # string, in hash order
    locations: np.ndarray  # uint64: input index << 40 | source_row


class ClaimKeyRegistry:
    """The first occurrence of every evaluated (claim_id, line_number) key in the run.

    Keys live in a few sorted runs (a log-structured merge): a batch adds one run, and runs
    of similar size are merged, so adding N keys costs O(N log N) in all, never a re-copy of
    everything per batch. A batch is checked with one binary search per run; equal hashes
    are confirmed on the key text, so a hash collision can never make a false duplicate.
    About 40 bytes a key.
    """

    def __init__(self) -> None:
        self._runs: list[_Run] = []
        self._inputs: list[str] = []  # input labels, by index

    def __len__(self) -> int:
        return sum(len(run.hashes) for run in self._runs)

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

        # the batch's distinct keys against the runs of earlier batches
        distinct_keys = pd.Series(uniques, dtype="str")
        distinct = pa.array(distinct_keys, type=pa.string(), from_pandas=True)
        hashes = pd.util.hash_pandas_object(distinct_keys, index=False).to_numpy()
        earlier = np.zeros(len(uniques), dtype=np.uint64)
        known = np.zeros(len(uniques), dtype=bool)
        for run in self._runs:
            self._lookup(run, hashes, distinct, earlier, known)
        first = first_position  # each distinct key's first row in this batch
        seen[first[known]] = True
        found[first[known]] = earlier[known]
        repeat_of_earlier = known[codes] & repeat
        found[repeat_of_earlier] = earlier[codes[repeat_of_earlier]]

        new = ~known
        self._add(hashes[new], distinct.filter(pa.array(new)), locations[first[new]])
        return pd.Series(self._describe(found, seen), dtype="str")

    def _describe(self, found: np.ndarray, seen: np.ndarray) -> np.ndarray:
        described = np.full(len(found), None, dtype=object)
        index = (found[seen] >> np.uint64(_ROW_BITS)).astype(np.int64)
        rows = (found[seen] & np.uint64((1 << _ROW_BITS) - 1)).astype(np.int64)
        labels = np.asarray(self._inputs, dtype=object)[index]
        described[seen] = labels + " row " + rows.astype(str).astype(object)
        return described

    @staticmethod
    def _lookup(
        run: _Run, hashes: np.ndarray, keys: pa.Array, earlier: np.ndarray, known: np.ndarray
    ) -> None:
        pending = np.flatnonzero(~known)
        at = np.searchsorted(run.hashes, hashes[pending], side="left")
        # walk runs of equal hashes (almost always length 0 or 1) until the key text matches
        while len(pending):
            in_range = at < len(run.hashes)
            pending, at = pending[in_range], at[in_range]
            same_hash = run.hashes[at] == hashes[pending]
            pending, at = pending[same_hash], at[same_hash]
            if not len(pending):
                break
            same_key = pc.equal(run.keys.take(pa.array(at)), keys.take(pa.array(pending))).to_numpy(
                zero_copy_only=False
            )
            earlier[pending[same_key]] = run.locations[at[same_key]]
            known[pending[same_key]] = True
            pending, at = pending[~same_key], at[~same_key] + 1

    def _add(self, hashes: np.ndarray, keys: pa.Array, locations: np.ndarray) -> None:
        if not len(hashes):
            return
        order = np.argsort(hashes, kind="stable")
        self._runs.append(_Run(hashes[order], keys.take(pa.array(order)), locations[order]))
        # merge while the newest run is at least half the one before: log-many runs
        while len(self._runs) > 1 and len(self._runs[-1].hashes) * 2 >= len(self._runs[-2].hashes):
            newer, older = self._runs.pop(), self._runs.pop()
            hashes = np.concatenate([older.hashes, newer.hashes])
            order = np.argsort(hashes, kind="stable")
            keys = pa.concat_arrays([older.keys, newer.keys]).take(pa.array(order))
            locations = np.concatenate([older.locations, newer.locations])[order]
            self._runs.append(_Run(hashes[order], keys, locations))


@dataclass
class RunCounts:
    """Running counts, merged batch by batch; the summary is built from these."""

    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    advisories: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    rejected_by_powder_line: Counter[str] = field(default_factory=Counter)
    by_month: Counter[tuple[str, str]] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    rows_read: int = 0
