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


class ClaimKeyRegistry:
    """The first occurrence of every evaluated (claim_id, line_number) key in the run.

    Keys are held as sorted 64-bit hashes beside the key text, so a batch is checked with
    one vectorized binary search instead of a Python loop; equal hashes are confirmed on the
    key text, so a hash collision can never make a false duplicate.
    """

    def __init__(self) -> None:
        self._hashes = np.empty(0, dtype=np.uint64)
        self._keys = np.empty(0, dtype=object)
        self._first_seen = np.empty(0, dtype=object)

    def __len__(self) -> int:
        return len(self._hashes)

    def claim(self, keys: pd.Series, locations: pd.Series) -> pd.Series:
        """Register ``keys`` in order; for each, where the key was first seen (NA if here).

        ``locations`` describes each key's record (e.g. ``file row 12``) for later repeats.
        """
        keys = keys.reset_index(drop=True).astype("str")
        locations = locations.reset_index(drop=True).astype("str")
        hashes = pd.util.hash_pandas_object(keys, index=False).to_numpy()
        earlier = pd.Series(self._lookup(hashes, keys.to_numpy(dtype=object)), dtype="str")

        repeat_in_batch = keys.duplicated(keep="first")
        first_in_batch = locations.groupby(keys, sort=False).transform("first")
        earlier = earlier.fillna(first_in_batch.where(repeat_in_batch))

        new = earlier.isna().to_numpy()
        self._insert(
            hashes[new], keys.to_numpy(dtype=object)[new], locations.to_numpy(dtype=object)[new]
        )
        return earlier

    def _lookup(self, hashes: np.ndarray, keys: np.ndarray) -> np.ndarray:
        found = np.full(len(hashes), None, dtype=object)
        if len(self._hashes) == 0 or len(hashes) == 0:
            return found
        position = np.searchsorted(self._hashes, hashes, side="left")
        pending = np.arange(len(hashes))
        # walk runs of equal hashes (almost always length 0 or 1) until the key text matches
        while len(pending):
            at = position[pending]
            in_range = at < len(self._hashes)
            pending, at = pending[in_range], at[in_range]
            same_hash = self._hashes[at] == hashes[pending]
            pending, at = pending[same_hash], at[same_hash]
            same_key = self._keys[at] == keys[pending]
            found[pending[same_key]] = self._first_seen[at[same_key]]
            pending = pending[~same_key]
            position[pending] += 1
        return found

    def _insert(self, hashes: np.ndarray, keys: np.ndarray, locations: np.ndarray) -> None:
        order = np.argsort(hashes, kind="stable")
        at = np.searchsorted(self._hashes, hashes[order], side="right")
        self._hashes = np.insert(self._hashes, at, hashes[order])
        self._keys = np.insert(self._keys, at, keys[order])
        self._first_seen = np.insert(self._first_seen, at, locations[order])


@dataclass
class RunCounts:
    """Running counts, merged batch by batch; the summary is built from these."""

    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    advisories: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    rejected_by_powder_line: Counter[str] = field(default_factory=Counter)
    rows_read: int = 0
