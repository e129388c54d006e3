"""Reconciliation under damage: hypothesis writes extracts of valid claim lines, corrupts them
at random, and runs the whole pipeline (reader, batches, writers, commit) on them.

Whatever the damage, no record is lost or counted twice: the five outcomes add up to the
records read, every record number from 1 to records read ends in exactly one place (a result
row, the rejects of that record, or out of scope), and results and rejects never share one.
Where the damage keeps record boundaries (fields dropped, added, emptied or garbled with
commas, quotes and line breaks; blank lines; CRLF; a BOM) the oracle is exact: as many records
as were written, and MALFORMED_RECORD on precisely the records whose field count was changed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from pa_batch.runner.pipeline import RunOptions, run

COLUMNS = ["claim_id", "line_number", "member_id", "member_birth_date", "service_date", "ndc",
           "drug_name", "route", "strength", "strength_unit", "diagnosis_codes"]  # fmt: skip
OUTCOMES = ("approved", "denied", "investigational", "out_of_scope", "rejected")

valid_rows = st.fixed_dictionaries({
    "claim_id": st.sampled_from(["C1", "C2", "C3", "C4", "C5", "C6"]),
    "line_number": st.sampled_from(["1", "2", "3"]),
    "member_id": st.sampled_from(["M1", "M2"]),
    "member_birth_date": st.sampled_from(["1980-01-02", "2019-06-30", "19500101"]),
    "service_date": st.sampled_from(["2024-05-01", "2024-03-15", "20240105"]),
    "ndc": st.sampled_from(["00000-0000-00", "51927-1004-00", "12345678901"]),
    "drug_name": st.sampled_from(["BACLOFEN POWDER", "baclofen bulk", "ASPIRIN 81 MG"]),
    "route": st.sampled_from(["oral", "PO", "intrathecal", "topical"]),
    "strength": st.sampled_from(["5", "10", "25", "0.05", "2"]),
    "strength_unit": st.sampled_from(["mg", "mg/mL", "mcg"]),
    "diagnosis_codes": st.sampled_from(["G35", "G80.1;M54.50", "E11.9", ""]),
})  # fmt: skip
messy_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
) | st.sampled_from(['"', '","', "\r\n", "a,b", ' "x" ', "=1+1", "\ufeff", ""])
damage = st.one_of(
    st.just(("none",)),
    st.tuples(st.just("drop"), st.integers(1, len(COLUMNS) - 1)),
    st.tuples(st.just("add"), st.lists(messy_text, min_size=1, max_size=3)),
    st.tuples(st.just("set"), st.sampled_from(COLUMNS), messy_text),
)


def _cells(row: dict[str, str], harm: tuple) -> list[str]:
    cells = [row[c] for c in COLUMNS]
    if harm[0] == "drop":
        return cells[: len(COLUMNS) - harm[1]]
    if harm[0] == "add":
        return cells + harm[1]
    if harm[0] == "set":
        cells[COLUMNS.index(harm[1])] = harm[2]
    return cells


def _field(value: str) -> str:
    """RFC 4180 quoting (Python's csv.writer leaves a bare CR unquoted when lines end in LF)."""
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _extract_text(rows, harms, *, crlf: bool, blank_every: int) -> str:
    end = "\r\n" if crlf else "\n"
    lines = [",".join(COLUMNS)]
    for number, (row, harm) in enumerate(zip(rows, harms, strict=True), start=1):
        cells = _cells(row, harm)
        # one empty field alone would be a blank line, which is no record
        lines.append('""' if cells == [""] else ",".join(_field(cell) for cell in cells))
        if blank_every and number % blank_every == 0:
            lines.append("")  # a blank line is no record
    return end.join(lines) + end


def _run(text: str, batch_rows: int, bom: bool) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    with tempfile.TemporaryDirectory() as folder:
        extract = Path(folder) / "messy.csv"
        extract.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        # Through the CLI, any exception but RunError is "internal error": here it would
        # propagate and fail the example, so no generated extract can reach one.
        report = run(RunOptions([extract], Path(folder) / "out", batch_rows=batch_rows))
        out = Path(folder) / "out"
        return (
            {
                "rows_read": report.counts.rows_read,
                **{o: report.counts.outcomes[o] for o in OUTCOMES},
            },
            pd.read_parquet(out / "results.parquet"),
            pd.read_parquet(out / "rejects.parquet"),
        )


def _assert_every_record_once(counts: dict, results: pd.DataFrame, rejects: pd.DataFrame):
    assert sum(counts[o] for o in OUTCOMES) == counts["rows_read"]
    decided = results["source_row"]
    rejected = set(rejects["source_row"])
    assert decided.is_unique
    assert len(decided) == counts["approved"] + counts["denied"] + counts["investigational"]
    assert len(rejected) == counts["rejected"]
    assert not rejected & set(decided)
    assert set(decided) | rejected <= set(range(1, counts["rows_read"] + 1))
    assert counts["out_of_scope"] == counts["rows_read"] - len(decided) - len(rejected)


@settings(max_examples=examples(60), deadline=None)
@given(
    rows_and_harms=st.lists(st.tuples(valid_rows, damage), max_size=30),
    batch_rows=st.sampled_from([4, 11, 1000]),
    crlf=st.booleans(),
    bom=st.booleans(),
    blank_every=st.sampled_from([0, 0, 3]),
)
@pytest.mark.slow
def test_damage_within_records_loses_nothing(rows_and_harms, batch_rows, crlf, bom, blank_every):
    rows = [row for row, _ in rows_and_harms]
    harms = [harm for _, harm in rows_and_harms]
    text = _extract_text(rows, harms, crlf=crlf, blank_every=blank_every)

    counts, results, rejects = _run(text, batch_rows, bom)

    assert counts["rows_read"] == len(rows)
    _assert_every_record_once(counts, results, rejects)
    wrong_width = {n for n, h in enumerate(harms, start=1) if h[0] in ("drop", "add")}
    malformed = set(rejects.loc[rejects["error_code"] == "MALFORMED_RECORD", "source_row"])
    assert malformed == wrong_width


@settings(max_examples=examples(40), deadline=None)
@given(
    rows=st.lists(valid_rows, min_size=1, max_size=20),
    cuts=st.lists(
        st.tuples(st.floats(0, 1), st.sampled_from(['"', ",", "\n", "\r", '""', "\r\n"])),
        min_size=1,
        max_size=4,
    ),
    batch_rows=st.sampled_from([3, 1000]),
)
@pytest.mark.slow
def test_damage_across_records_loses_nothing(rows, cuts, batch_rows):
    """Stray quotes, delimiters and line breaks spliced into the raw text anywhere after the
    header: record boundaries move, so only the accounting is known."""
    text = _extract_text(rows, [("none",)] * len(rows), crlf=False, blank_every=0)
    header_end = text.index("\n") + 1
    body = text[header_end:]
    for where, splice in cuts:
        at = int(where * len(body))
        body = body[:at] + splice + body[at:]

    counts, results, rejects = _run(text[:header_end] + body, batch_rows, bom=False)

    _assert_every_record_once(counts, results, rejects)
    # a splice can only add a record by a line break of its own, or as text after the last
    breaks = sum(s.count("\n") + s.count("\r") for _, s in cuts)
    assert counts["rows_read"] <= len(rows) + breaks + 1


# cells with and without surrounding whitespace: ASCII, Unicode spaces (NBSP, em space, the
# ideographic space), controls, multi-byte letters at either end, empty and missing cells
cells = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from(list("aZ09-. \t\r\n\x0b\x0c\x1f\x7f\u00a0\u2003\u3000é漢"))),
)


@settings(max_examples=examples(300), deadline=None)
@given(values=st.lists(cells, max_size=12), offset=st.integers(0, 3))
def test_trimming_equals_arrows_trim_whatever_the_cells(values, offset):
    """The reader's shortcut (no copy when no cell could need trimming) gives exactly what
    trimming every cell gives: Arrow's UTF-8 whitespace trim, an empty cell missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from pa_batch.core.arrow_text import trimmed

    given_cells = pa.array(["pad"] * offset + values, type=pa.string()).slice(offset)
    expected = pc.utf8_trim_whitespace(given_cells)
    expected = pc.if_else(pc.equal(expected, ""), pa.scalar(None, pa.string()), expected)
    assert trimmed(given_cells).to_pylist() == expected.to_pylist()
