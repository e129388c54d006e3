"""The claim-key registry against a plain dict: first occurrences, repeats within and across
batches and files, and hash collisions confirmed on the key text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from pa_batch.runner import state
from pa_batch.runner.state import ClaimKeyRegistry

keys_strategy = st.lists(st.sampled_from([f"C{i}\x1f{j}" for i in range(12) for j in (1, 2)]))


def _oracle(batches: list[tuple[str, list[str]]]) -> list[list[str | None]]:
    first: dict[str, str] = {}
    answers = []
    for file, keys in batches:
        answer = []
        for row, key in enumerate(keys, start=1):
            answer.append(first.get(key))
            first.setdefault(key, f"{file} row {row}")
        answers.append(answer)
    return answers


def _claimed(registry: ClaimKeyRegistry, batches) -> list[list[str | None]]:
    answers = []
    for file, keys in batches:
        seen = registry.claim(pd.Series(keys, dtype="str"), file, np.arange(1, len(keys) + 1))
        answers.append([None if pd.isna(v) else v for v in seen])
    return answers


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a.csv", "b.csv"]), keys_strategy), max_size=12))
def test_registry_names_the_first_occurrence_of_every_repeated_key(batches):
    assert _claimed(ClaimKeyRegistry(), batches) == _oracle(batches)


@pytest.mark.parametrize("segment_keys", [1, 1 << 16])
def test_equal_hashes_of_different_keys_are_never_duplicates(monkeypatch, segment_keys):
    """Every key hashes alike here: only the key text can tell them apart, on disk (a segment
    a batch) or waiting in memory."""
    monkeypatch.setattr(state._SpilledKeys, "_SEGMENT_KEYS", segment_keys)

    monkeypatch.setattr(state, "key_hashes", lambda text: np.zeros(len(text), dtype=np.uint64))
    batches = [
        ("a.csv", ["K1", "K2", "K1"]),
        ("a.csv", ["K3", "K2"]),
        ("b.csv", ["K4", "K3", "K5"]),
    ]
    registry = ClaimKeyRegistry()
    assert _claimed(registry, batches) == _oracle(batches)
    assert len(registry) == 5


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
@pytest.mark.slow
def test_the_filter_grows_without_losing_keys(batch_size, monkeypatch):
    """A filter of 64 keys fills and is followed by ones of 128, 256 ... 2048 keys; keys
    wait in memory until 500 fill a segment on disk, and are found waiting or written."""
    monkeypatch.setattr(state._HashFilter, "_FIRST_CAPACITY", 64)
    monkeypatch.setattr(state._SpilledKeys, "_SEGMENT_KEYS", 500)
    keys = [f"C{i}" for i in range(3000)] + [f"C{i}" for i in range(0, 3000, 3)]
    batches = [
        ("x.csv", keys[start : start + batch_size]) for start in range(0, len(keys), batch_size)
    ]
    registry = ClaimKeyRegistry()
    claimed = [v for answer in _claimed(registry, batches) for v in answer]
    assert claimed == [v for answer in _oracle(batches) for v in answer]
    assert sum(v is not None for v in claimed) == 1000
    assert len(registry) == 3000
    assert [len(words) * 64 // 16 for words, _ in registry._filter._filters] == [
        64 << i for i in range(6)
    ]


@pytest.mark.parametrize("segment_keys", [1, 1 << 16])
def test_a_filter_that_always_says_maybe_makes_no_false_duplicate(monkeypatch, segment_keys):
    """Every key goes to the lookup: the hashes and key text stored decide alone."""
    monkeypatch.setattr(state._SpilledKeys, "_SEGMENT_KEYS", segment_keys)
    monkeypatch.setattr(
        state._HashFilter, "may_contain", lambda self, hashes: np.ones(len(hashes), dtype=bool)
    )
    batches = [("a.csv", [f"C{i}" for i in range(500)] + ["C3", "C499"])] * 2
    assert _claimed(ClaimKeyRegistry(), batches) == _oracle(batches)


@settings(max_examples=examples(50), deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), unique=True, max_size=300))
def test_the_filter_never_forgets_a_hash(hashes):
    hash_filter = state._HashFilter()
    added = np.sort(np.array(hashes, dtype=np.uint64))
    hash_filter.add(added)
    assert hash_filter.may_contain(added).all()


def test_the_filter_says_maybe_for_few_hashes_never_added(monkeypatch):
    """At capacity, about 0.35% of hashes never added are reported "maybe"."""
    monkeypatch.setattr(state._HashFilter, "_FIRST_CAPACITY", 1 << 18)
    rng = np.random.default_rng(7)
    hashes = rng.integers(0, 2**64 - 1, 2 << 18, dtype=np.uint64, endpoint=True)
    hash_filter = state._HashFilter()
    hash_filter.add(np.sort(hashes[: 1 << 18]))
    assert 0.001 < hash_filter.may_contain(hashes[1 << 18 :]).mean() < 0.006


def test_only_a_filter_stays_in_memory_and_the_spill_is_removed(tmp_path, monkeypatch):
    """2 bytes a key of filter in memory; hashes, key text and locations on disk, gone when
    the registry is."""
    monkeypatch.setattr(state._HashFilter, "_FIRST_CAPACITY", 1024)
    monkeypatch.setattr(state._SpilledKeys, "_SEGMENT_KEYS", 1000)
    spill = tmp_path / "spill"
    keys = [f"C{i}\x1f1" for i in range(5000)]
    with ClaimKeyRegistry(spill) as registry:
        _claimed(registry, [("a.csv", keys[:2500]), ("a.csv", keys[2500:])])
        # filters of 1024, 2048 and 4096 keys, 16 bits a key
        assert sum(words.nbytes for words, _ in registry._filter._filters) == 2 * 7168
        assert (spill / "hashes").stat().st_size == 8 * 5000
        assert (spill / "keys").stat().st_size == sum(len(k) for k in keys)
        again = _claimed(registry, [("b.csv", keys[4990:] + ["new"])])
        assert again == [[f"a.csv row {row}" for row in range(2491, 2501)] + [None]]
    assert not any(spill.iterdir())


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a.csv", "b.csv"]), keys_strategy), max_size=20),
    st.sampled_from([2, 3]),
    st.booleans(),
)
def test_merged_runs_of_the_hash_index_answer_as_the_segments_would(batches, fan_in, collide):
    """A segment a key, runs merged two or three at a time, merged a hash range of three
    entries at a time, fences every two: the first occurrence of every key is found wherever
    its run went,
    also when every key hashes alike (only the key text tells them apart)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(state._SpilledKeys, "_SEGMENT_KEYS", 1)
        patch.setattr(state._SpilledKeys, "FAN_IN", fan_in)
        patch.setattr(state._SpilledKeys, "_MERGE_CHUNK", 3)
        patch.setattr(state._Run, "BLOCK", 2)  # fences of merged runs across pieces
        patch.setattr(  # every hash is "maybe": each lookup walks the runs
            state._HashFilter, "may_contain", lambda self, hashes: np.ones(len(hashes), bool)
        )
        if collide:
            patch.setattr(state, "key_hashes", lambda text: np.full(len(text), 7, np.uint64))
        assert _claimed(ClaimKeyRegistry(), batches) == _oracle(batches)


def test_a_lookup_walks_a_few_runs_however_many_segments(tmp_path, monkeypatch):
    """100 segments of ten keys, merged FAN_IN (4) at a time: at most 3 runs a level (100
    segments make 4 runs: 64 + 16 + 16 + 4), and only the live runs' files on disk."""
    monkeypatch.setattr(state._SpilledKeys, "_SEGMENT_KEYS", 1)
    monkeypatch.setattr(state._SpilledKeys, "FAN_IN", 4)
    spill = tmp_path / "spill"
    with ClaimKeyRegistry(spill) as registry:
        keys = [f"C{i}" for i in range(1000)]
        for start in range(0, 1000, 10):  # a batch of ten keys: a segment
            _claimed(registry, [("a.csv", keys[start : start + 10])])
        runs = registry._spilled._runs
        assert sum(run.count for run in runs) == 1000
        levels = [run.level for run in runs]
        assert sorted(levels) == [1, 2, 2, 3]
        merged = {run.merged.name for run in runs if run.merged is not None}
        on_disk = {path.stem for path in (spill / "runs").iterdir()}
        assert on_disk == merged
        again = _claimed(registry, [("b.csv", ["C0", "C555", "C999", "new"])])
        assert again == [["a.csv row 1", "a.csv row 6", "a.csv row 10", None]]
    assert not any(spill.iterdir())


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=60),
    st.integers(0, 5),
    st.lists(st.integers(0, 41), max_size=20),
    st.sampled_from([1, 3, 4, 16]),
)
def test_a_runs_fences_find_where_a_binary_search_would(stored, before, asked, block):
    """The fences in memory and one block read from the file a hash (or the whole run a
    window at a time, for more hashes than blocks) give np.searchsorted's answer and the
    hash there, equal hashes across blocks included, for a run that starts anywhere in its
    file."""
    import tempfile
    from pathlib import Path

    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as folder:
        patch.setattr(state._Run, "BLOCK", block)
        patch.setattr(state._Run, "WINDOW", 16 if block == 16 else 4 * block)
        hashes = np.sort(np.array(stored, dtype=np.uint64))
        np.concatenate([np.full(before, 99, np.uint64), hashes]).tofile(Path(folder) / "hashes")
        run = state._Run(level=0, count=len(hashes), fences=hashes[::block], first=before)
        wanted = np.array(asked, dtype=np.uint64)
        expected = np.searchsorted(hashes, wanted, side="left")
        at, there = run.lower_bounds(Path(folder), wanted)
        assert at.tolist() == expected.tolist()
        inside = expected < len(hashes)  # the hash there; past the end, never the hash asked
        assert there[inside].tolist() == hashes[expected[inside]].tolist()
        assert not (there[~inside] == wanted[~inside]).any()
        positions = np.arange(len(hashes))[::2]
        assert run.hashes_at(Path(folder), positions).tolist() == hashes[::2].tolist()


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(st.text(max_size=80), max_size=60), st.integers(0, 5), st.sampled_from([1, 7, 1 << 14])
)
def test_a_key_hashes_alike_wherever_it_sits(values, cut, chunk):
    """The same text gives the same hash in any array, at any offset (a slice, a take), and
    texts of a batch that differ get different hashes (64 bits: a clash among these few
    would be a broken hash, not bad luck)."""
    state._HASH_CHUNK, chunk_was = chunk, state._HASH_CHUNK  # hashed a few values at a time
    try:
        text = pa.array(values, pa.string())
        hashes = state.key_hashes(text)
        assert state.key_hashes(text.slice(0, 0)).tolist() == []
    finally:
        state._HASH_CHUNK = chunk_was
    assert state.key_hashes(text.slice(min(cut, len(values)))).tolist() == hashes[cut:].tolist()
    reversed_hashes = state.key_hashes(
        text.take(pa.array(range(len(values) - 1, -1, -1), pa.int64()))
    )
    assert reversed_hashes.tolist() == hashes[::-1].tolist()
    by_text = dict(zip(values, hashes.tolist(), strict=True))
    assert [by_text[value] for value in values] == hashes.tolist()
    assert len(set(by_text.values())) == len(by_text)
