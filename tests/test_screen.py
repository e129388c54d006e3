"""The screen (``core/screen.py``) takes out only records the full path would count out of
scope: a screened batch has the outcomes of the same batch taken whole through the full path,
reject for reject, line for line, on generated batches of every kind of record."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from helpers import FIXTURES, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pa_batch.core import batch as core_batch
from pa_batch.core import normalize, screen
from pa_batch.core.arrow_text import TextCells
from pa_batch.core.batch import Batch, scope_batch, scope_screened, screen_batch
from pa_batch.policy.reference import load_reference
from pa_batch.schemas.claim_extract import INPUT_COLUMNS

REFERENCE = load_reference(FIXTURES / "reference")  # lists NDC 51927-1004-00
LISTED = "51927100400"


@pytest.fixture(autouse=True)
def screen_every_batch(monkeypatch):
    """The screen stands aside for a batch of mostly powder lines (``WORTH_SCREENING``);
    these tests make it screen every batch, so that every generated batch tests it."""
    monkeypatch.setattr(screen, "WORTH_SCREENING", 0.0)


def mostly(valid: list, invalid: list) -> st.SearchStrategy:
    """Valid cells most of the time: a record is then often valid in every column, the one
    case where the screen may take it out, so a wrong screen is found quickly."""
    return st.sampled_from(valid * 4 + invalid)


NDCS = mostly(
    ["12345678901", "12345-6789-01", "1234-5678-90", "12345-678-90", "12345-6789-0",
     " 12345678901 ", "51927100400", "51927-1004-00", "51927-1004-0"],
    ["51927-100-00", "1234567890", "123456789012", "12345-67890-1", "ABCDE678901",
     "１２３４５６７８９０１", "12345_6789_01", "", "  ", None],
)  # fmt: skip
DRUG_NAMES = mostly(
    ["ASPIRIN 81 MG TAB", "BACLOFEN 10 MG TAB", "", None, "powdered sugar"],
    ["BACLOFEN POWDER", "baclofen usp bulk", "Powder, baclofen", "BACLOFEN\u00a0BULK",
     "İBACLOFEN POWDER"],
)  # fmt: skip
LINE_NUMBERS = st.one_of(
    mostly(["1", "2", "01", "+3", "1.0", " 4 "], ["0", "-1", "1.5", "x", "", None]),
    mostly([1, 2, 7, 10**18 - 1], [0, -1, 10**18, 2**63 - 1, 10**19, None]),
)
SERVICE_DATES = st.one_of(
    mostly(["2024-05-01", "20240501", "2024-02-29", " 2024-06-30"],
           ["2023-02-29", "2024-5-1", "0000-01-01", "", None]),
    st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)),
    st.none(),
)  # fmt: skip

RECORD = st.fixed_dictionaries(
    {
        "claim_id": mostly(["C1", "C2", " C3"], ["", "  ", None]),
        "line_number": LINE_NUMBERS,
        "member_id": mostly(["M1", " M2"], ["", None]),
        "service_date": SERVICE_DATES,
        "ndc": NDCS,
        "drug_name": DRUG_NAMES,
    }
)


def _batch(
    records: list[dict],
    typed_line: bool,
    typed_date: bool,
    first_row: int = 1,
    names_as_dictionary: bool = False,
) -> Batch:
    """A batch as a reader makes it: a typed column held as read (``TextCells`` turns it
    into its values' text where asked), and handed over typed for the checks; the drug
    names held as a Parquet dictionary column is read, if ``names_as_dictionary``."""
    length = len(records)
    raw, typed, dictionaries = {}, {}, {}
    for name in ("claim_id", "member_id", "ndc", "drug_name"):
        raw[name] = pa.array([r[name] for r in records], pa.string())
    lines = [r["line_number"] for r in records]
    dates = [r["service_date"] for r in records]
    if typed_line:
        lines = [v if isinstance(v, int) and v < 2**63 else None for v in lines]
    if typed_date:
        dates = [v if isinstance(v, dt.date) else None for v in dates]
    for name, values, kind, as_typed in (
        ("line_number", lines, pa.int64(), typed_line),
        ("service_date", dates, pa.date32(), typed_date),
    ):
        if as_typed:
            typed[name] = pa.array(values, kind)
        else:
            raw[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    for name in INPUT_COLUMNS:
        if name not in typed:
            raw.setdefault(name, pa.array(["G35"] * length, pa.string()))
    if names_as_dictionary:
        dictionaries["drug_name"] = raw.pop("drug_name").dictionary_encode()
    source_rows = (np.arange(length) + first_row) * 3
    return Batch(None, source_rows, raw=TextCells(raw, typed, dictionaries), typed=typed)


def _outcomes(scoped: core_batch.ScopedBatch) -> tuple:
    lines = scoped.lines
    return (
        scoped.rows_read,
        scoped.out_of_scope,
        lines.source_rows[scoped.positions].tolist(),
        scoped.rejects.to_dict("list"),
    )


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORD, min_size=1, max_size=30), st.booleans(), st.booleans(), st.booleans())
def test_a_screened_batch_has_the_outcomes_of_the_whole_batch(
    records, typed_line, typed_date, names_as_dictionary
):
    def batch() -> Batch:  # one each: the cells a path decodes stay decoded in its batch
        return _batch(records, typed_line, typed_date, names_as_dictionary=names_as_dictionary)

    whole = core_batch._scope_every_record(batch(), "generated.parquet", REFERENCE)
    screened = scope_batch(batch(), "generated.parquet", REFERENCE)
    assert _outcomes(screened) == _outcomes(whole)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(RECORD, min_size=0, max_size=12), min_size=2, max_size=4),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_what_the_screen_leaves_of_several_batches_is_scoped_as_each_alone(
    parts, typed_line, typed_date, names_as_dictionary
):
    """The local engine scopes what the screen leaves of consecutive batches together: the
    counts add up and the lines and rejects are those of each batch scoped alone."""
    batches, first_row = [], 1
    for records in parts:
        batches.append(_batch(records, typed_line, typed_date, first_row, names_as_dictionary))
        first_row += len(records)
    together = scope_screened(
        [screen_batch(b, REFERENCE) for b in batches], "generated.parquet", REFERENCE
    )
    alone = [scope_batch(b, "generated.parquet", REFERENCE) for b in batches]
    assert together.rows_read == sum(s.rows_read for s in alone) == sum(map(len, parts))
    assert together.out_of_scope == sum(s.out_of_scope for s in alone)
    assert together.lines.source_rows[together.positions].tolist() == [
        row for s in alone for row in s.lines.source_rows[s.positions].tolist()
    ]

    def cells(frames: list[pd.DataFrame], column: str) -> list:  # a missing cell is None
        return [None if pd.isna(v) else v for frame in frames for v in frame[column]]

    for column in together.rejects.columns:
        assert cells([together.rejects], column) == cells([s.rejects for s in alone], column)


def test_the_screen_takes_out_exactly_the_valid_records_of_other_drugs():
    """Input and expected screening side by side: only the first two records are taken out."""
    rows = [  # claim_id, line_number, member_id, service_date, ndc, drug_name -> screened out?
        (("C1", "1", "M1", "2024-05-01", "12345678901", "ASPIRIN"), True),
        (("C2", "01", "M1", "20240501", "1234-5678-90", None), True),
        (("C3", "1", "M1", "2024-05-01", "51927-1004-00", "ASPIRIN"), False),  # listed
        (("C4", "1", "M1", "2024-05-01", "12345678901", "baclofen bulk"), False),  # named
        (("C5", "0", "M1", "2024-05-01", "12345678901", "ASPIRIN"), False),  # line 0
        (("C6", "1", "M1", "2024-02-30", "12345678901", "ASPIRIN"), False),  # no such day
        (("C7", "1", "M1", "2024-05-01", "1234567890", "ASPIRIN"), False),  # 10 digits
        (("C8", "1", " ", "2024-05-01", "12345678901", "ASPIRIN"), False),  # no member
    ]
    names = ("claim_id", "line_number", "member_id", "service_date", "ndc", "drug_name")
    raw = {name: pa.array([r[i] for r, _ in rows], pa.string()) for i, name in enumerate(names)}
    got = screen.certainly_out_of_scope(raw, {}, REFERENCE)
    assert got.tolist() == [expected for _, expected in rows]


def test_a_batch_of_mostly_powder_lines_is_left_to_the_full_path(monkeypatch):
    monkeypatch.setattr(screen, "WORTH_SCREENING", 0.5)
    names = ("claim_id", "line_number", "member_id", "service_date", "ndc", "drug_name")
    other = ("C1", "1", "M1", "2024-05-01", "12345678901", "ASPIRIN")
    powder = ("C2", "1", "M1", "2024-05-01", "12345678901", "BACLOFEN POWDER")

    def screened(rows):
        raw = {name: pa.array([r[i] for r in rows], pa.string()) for i, name in enumerate(names)}
        got = screen.certainly_out_of_scope(raw, {}, REFERENCE)
        return None if got is None else got.tolist()

    assert screened([other, other, powder]) == [True, True, False]  # 2 of 3 may be screened
    assert screened([other, powder, powder]) is None  # 1 of 3: not worth it
    assert screened([]) is None
    # a batch's first records tell at once: two powder lines of the first two stand aside
    # for a batch that would otherwise be screened (4 of 6)
    monkeypatch.setattr(screen, "SAMPLE_RECORDS", 2)
    assert screened([powder, powder, other, other, other, other]) is None
    assert screened([other, powder, other, other, powder, other]) == [
        True, False, True, True, False, True
    ]  # fmt: skip


def test_every_spelling_of_a_listed_ndc_is_known_to_the_screen():
    spellings = screen.listed_spellings(frozenset({LISTED, "00002010001"}))
    assert sorted(spellings.to_pylist()) == sorted(
        [
            # 4-4-2 and 5-3-2 would drop a 5 and a 1: no such spelling
            "51927100400", "51927-1004-00", "51927-1004-0",
            # every segment has a leading zero to drop
            "00002010001", "00002-0100-01", "0002-0100-01", "00002-100-01", "00002-0100-1",
        ]
    )  # fmt: skip
    normalized = normalize.ndc(pd.Series(spellings.to_pylist(), dtype="str"))
    assert set(normalized) == {LISTED, "00002010001"}


@pytest.mark.parametrize("missing", ["claim_id", "line_number", "member_id", "service_date", "ndc"])
def test_a_batch_without_a_required_column_is_not_screened(missing):
    raw = {name: pa.array(["x"], pa.string()) for name in INPUT_COLUMNS if name != missing}
    assert screen.certainly_out_of_scope(raw, {}, REFERENCE) is None
