"""The same records give the same outcomes whatever the container: CSV, gzip CSV, text
Parquet, typed Parquet (date and numeric columns); reruns are byte-identical; the sample
extract matches its reviewed golden outcomes."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import FIXTURES, SAMPLE_DATA, table_bytes

OUTCOME_COLUMNS = ["claim_id", "line_number", "service_date", "ndc", "route", "decision",
                   "reasons", "advisories", "approval_start", "approval_end", "source_row"]  # fmt: skip
TYPED_ROWS = """\
claim_id,line_number,member_id,member_birth_date,service_date,ndc,drug_name,route,strength,strength_unit,diagnosis_codes
T1,1,M1,1980-01-02,2024-05-01,12345678901,BACLOFEN POWDER,oral,5,mg,G35
T2,2,M1,2016-03-01,2024-05-01,12345678901,BACLOFEN POWDER,oral,0.015,g,G80.1
T3,3,M2,1980-01-02,2024-04-15,12345678901,BACLOFEN POWDER,oral,10,mg,G35
T4,1,M3,2021-01-01,2024-05-01,12345678901,BACLOFEN POWDER,intrathecal,0.5,mg/mL,G80.0
T5,1,M4,1980-01-02,2024-05-01,12345678901,BACLOFEN POWDER,oral,25,mg,G35
T6,1,M5,1980-01-02,2024-05-01,12345678901,ASPIRIN 81 MG,oral,81,mg,I10
T7,1,M6,1980-01-02,2024-05-01,12345678901,BACLOFEN POWDER,oral,20000,mcg,G35
T3,3,M2,1980-01-02,2024-04-16,12345678901,BACLOFEN POWDER,oral,10,mg,G35
"""


def _outcomes(run) -> pd.DataFrame:
    results = run.results[OUTCOME_COLUMNS].astype("str")
    rejects = run.rejects[["source_row", "error_code", "column"]].astype("str")
    return results.reset_index(drop=True), rejects.reset_index(drop=True)


def _typed_parquet(csv_path, path):
    frame = pd.read_csv(csv_path, dtype="str", keep_default_na=False)
    table = pa.table(
        {
            "Claim_ID ": pa.array(frame["claim_id"]),
            "line_number": pa.array(frame["line_number"].astype("int64")),
            "member_id": pa.array(frame["member_id"]),
            "member_birth_date": pa.array(pd.to_datetime(frame["member_birth_date"]).dt.date),
            "service_date": pa.array(pd.to_datetime(frame["service_date"]), pa.timestamp("us")),
            "ndc": pa.array(frame["ndc"]),
            "drug_name": pa.array(frame["drug_name"]).dictionary_encode(),
            "route": pa.array(frame["route"]),
            "strength": pa.array(frame["strength"].astype("float64")),
            "strength_unit": pa.array(frame["strength_unit"]),
            "diagnosis_codes": pa.array(frame["diagnosis_codes"]),
        }
    )
    pq.write_table(table, path)
    return path


def test_csv_gzip_text_parquet_and_typed_parquet_decide_alike(run_cli, tmp_path, engine):
    source = tmp_path / "typed.csv"
    source.write_text(TYPED_ROWS)
    gz = tmp_path / "typed.csv.gz"
    gz.write_bytes(gzip.compress(TYPED_ROWS.encode()))
    text_parquet = tmp_path / "text.parquet"
    pq.write_table(
        pa.Table.from_pandas(pd.read_csv(source, dtype="str"), preserve_index=False), text_parquet
    )
    typed = _typed_parquet(source, tmp_path / "typed.parquet")
    reference = ["--reference-dir", FIXTURES / "reference"]

    runs = [
        run_cli(path, *reference, out=tmp_path / f"out-{path.name}")
        for path in (source, gz, text_parquet, typed)
    ]
    assert all(run.exit_code == 0 for run in runs), [run.output for run in runs]
    first_results, first_rejects = _outcomes(runs[0])
    assert first_results["decision"].tolist() == ["approved"] * 3 + ["denied"] * 3
    assert first_rejects["error_code"].tolist() == ["DUPLICATE_KEY"]
    for run in runs[1:]:
        results, rejects = _outcomes(run)
        pd.testing.assert_frame_equal(results, first_results)
        pd.testing.assert_frame_equal(rejects, first_rejects)


def test_csv_output_format_has_the_same_rows(run_cli, tmp_path):
    sample = SAMPLE_DATA / "claims.csv"
    reference = ["--reference-dir", SAMPLE_DATA / "reference"]
    parquet = run_cli(sample, *reference, out=tmp_path / "p")
    csv = run_cli(sample, *reference, "--format", "csv", out=tmp_path / "c")
    assert (parquet.exit_code, csv.exit_code) == (0, 0)
    assert parquet.results["claim_id"].tolist() == csv.results["claim_id"].tolist()
    assert parquet.results["decision"].tolist() == csv.results["decision"].tolist()
    assert len(parquet.rejects) == len(csv.rejects)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_two_runs_of_the_same_input_are_byte_identical(run_cli, tmp_path, engine, fmt):
    sample = SAMPLE_DATA / "claims.csv"
    args = ["--reference-dir", SAMPLE_DATA / "reference", "--format", fmt]
    digests = []
    for name in ("a", "b"):
        run = run_cli(sample, *args, out=tmp_path / name)
        assert run.exit_code == 0
        digests.append(
            [hashlib.sha256(table_bytes(run.out, t)).hexdigest() for t in ("results", "rejects")]
        )
    assert digests[0] == digests[1]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_batch_size_changes_memory_never_an_output_byte(
    run_cli, tmp_path, engine, monkeypatch, fmt
):
    """Batches of 25 and 100 records (cutting through malformed records and duplicate keys)
    write the same bytes as one batch, Parquet included: its row groups have a fixed size
    (shrunk here to 7 rows so that every batch size cuts across row groups; in this process
    only, so on the local engine: a CSV file is one part on the dask engine's workers)."""
    import pyarrow.parquet as pq

    from pa_batch.io import tables

    monkeypatch.setattr(tables, "PARQUET_ROW_GROUP_ROWS", 7)
    sample = SAMPLE_DATA / "claims.csv"
    args = ["--reference-dir", SAMPLE_DATA / "reference", "--format", fmt]
    written = {}
    for rows in ("25", "100", "524288"):
        run = run_cli(sample, *args, "--batch-rows", rows, out=tmp_path / rows)
        assert run.exit_code == 0
        written[rows] = [table_bytes(run.out, t) for t in ("results", "rejects")]
        assert run.summary["counts"]["rows_read"] == 294
    assert written["25"] == written["100"] == written["524288"]
    if fmt == "parquet" and not engine:
        results = pq.ParquetFile(tmp_path / "25" / "results.parquet").metadata
        assert results.num_row_groups == -(-results.num_rows // 7)
        assert all(results.row_group(i).num_rows == 7 for i in range(results.num_row_groups - 1))


GOLDEN = FIXTURES / "golden_sample_outcomes.csv"


def test_sample_extract_matches_golden_outcomes(run_cli, tmp_path, engine):
    run = run_cli(SAMPLE_DATA / "claims.csv", "--reference-dir", SAMPLE_DATA / "reference")
    assert run.exit_code == 0
    results = run.results.assign(outcome=lambda r: r["decision"], codes=lambda r: r["reasons"])
    rejects = (
        run.rejects.groupby("source_row")["error_code"].agg("|".join).rename("codes").reset_index()
        .assign(outcome="rejected", advisories="", claim_id=lambda r: r["source_row"].map(lambda _: ""))
    )  # fmt: skip
    observed = (
        pd.concat([results[["source_row", "outcome", "codes", "advisories"]],
                   rejects[["source_row", "outcome", "codes", "advisories"]]])
        .sort_values("source_row").astype("str").reset_index(drop=True)
    )  # fmt: skip
    if os.environ.get("UPDATE_GOLDEN"):
        observed.to_csv(GOLDEN, index=False)
    golden = pd.read_csv(GOLDEN, dtype="str", keep_default_na=False)
    pd.testing.assert_frame_equal(observed, golden)
    counts = run.summary["counts"]
    assert counts["out_of_scope"] == counts["rows_read"] - len(golden)


LONG_LINE = "C{n},1,M1,1980-01-02,2024-05-01,00000-0000-00,{drug},oral,5,mg,G35"


def test_very_long_fields_are_read_whole(run_cli, write_csv):
    # 3 MiB: past Python csv's 128 KiB field limit and Arrow's 1 MiB default block, within
    # the reader's 4 MiB block
    drug = "BACLOFEN POWDER " + "X" * (3 << 20)
    quoted_with_breaks = '"BACLOFEN POWDER\n' + "Y, " * (1 << 20) + '"'
    rows = [LONG_LINE.format(n=1, drug=drug), LONG_LINE.format(n=2, drug=quoted_with_breaks),
            LONG_LINE.format(n=3, drug="BACLOFEN POWDER")]  # fmt: skip
    run = run_cli(write_csv(rows), "--format", "csv")
    assert run.exit_code == 0, run.output
    results = run.results
    assert results["claim_id"].tolist() == ["C1", "C2", "C3"]
    assert results["decision"].tolist() == ["approved"] * 3
    expected = [drug, quoted_with_breaks[1:-1].strip(), "BACLOFEN POWDER"]  # values are trimmed
    assert results["drug_name"].tolist() == expected
    assert run.summary["counts"]["rows_read"] == 3


def test_a_record_longer_than_the_read_block_fails_the_file_clearly(
    run_cli, write_csv, monkeypatch
):
    from pa_batch.io import inputs

    monkeypatch.setattr(inputs, "CSV_BLOCK_BYTES", 1 << 16)
    rows = [LONG_LINE.format(n=1, drug="BACLOFEN POWDER"),
            LONG_LINE.format(n=2, drug="BACLOFEN POWDER " + "X" * (1 << 17))]  # fmt: skip
    extract = write_csv(rows)
    run = run_cli(extract)
    assert run.exit_code == 1
    assert run.stderr.strip() == (
        f"pa-batch: error: {extract}: cannot read CSV file "
        "(a record is longer than 65,536 bytes, the reader's block size)"
    )
    assert not (run.out / "summary.json").exists()


@pytest.mark.parametrize("name", ["claims.csv", "claims.csv.gz", "claims.parquet"])
def test_the_summary_carries_each_inputs_sha256(run_cli, tmp_path, name):
    """Hashed from the bytes as the reader takes them, Parquet included."""
    import gzip
    import shutil

    source = SAMPLE_DATA / ("claims.parquet" if name.endswith("parquet") else "claims.csv")
    extract = tmp_path / name
    if name.endswith(".gz"):
        extract.write_bytes(gzip.compress(source.read_bytes(), mtime=0))
    else:
        shutil.copy(source, extract)
    run = run_cli(extract)
    assert run.exit_code == 0
    (listed,) = run.summary["inputs"]
    assert listed["sha256"] == hashlib.sha256(extract.read_bytes()).hexdigest()
    records = pq.ParquetFile(extract).metadata.num_rows if name.endswith("parquet") else 294
    assert listed["rows"] == records


@pytest.mark.parametrize("row_group_rows", [50, 1000, 100_000])
def test_a_parquet_input_is_read_once_hash_included(tmp_path, monkeypatch, row_group_rows):
    """The SHA-256 comes from the one pass the decoder makes: every byte before the footer
    (the data pages) is read from the system once, however the row groups fall, an ignored
    column's pages included; only the footer (metadata) and the decoder's first, speculative
    64 KiB read of the file's tail are read besides."""
    import os

    import pyarrow as pa

    from pa_batch.io import inputs

    table = pa.concat_tables([pq.read_table(SAMPLE_DATA / "claims.parquet")] * 40)
    notes = pa.array([hashlib.sha256(b"%d" % i).hexdigest() for i in range(table.num_rows)])
    table = table.append_column("note", notes)  # an ignored column: never decoded
    extract = tmp_path / "claims.parquet"
    pq.write_table(table, extract, row_group_size=row_group_rows)
    read_bytes = []
    real_pread = os.pread

    def counted_pread(fd, length, offset):
        chunk = real_pread(fd, length, offset)
        read_bytes.append((offset, len(chunk)))
        return chunk

    opened = inputs.open_extract(inputs.input_file(extract))
    monkeypatch.setattr(inputs.os, "pread", counted_pread)
    decided = sum(len(batch.records) for batch in opened.batches(50))
    assert decided == table.num_rows
    assert opened.sha256 == hashlib.sha256(extract.read_bytes()).hexdigest()
    data_end = opened.parquet_row_group_ends[-1]
    assert data_end > 1 << 17
    (tail_offset, tail_length), *hashing_pass = read_bytes
    assert tail_offset + tail_length == extract.stat().st_size and tail_length <= 1 << 16
    assert sum(max(0, min(o + n, data_end) - o) for o, n in hashing_pass) == data_end


def test_parquet_bytes_do_not_follow_batches_where_pages_split(run_cli, write_csv, tmp_path):
    """A row group made of several batches writes the same bytes as one made of one batch,
    even where its column chunks are long enough to be cut into several data pages (Arrow
    cuts pages at chunk ends too: the writer joins a row group's pieces before writing)."""
    import random

    rng = random.Random(7)
    rows = [
        f"C{n},1,M{n},1980-01-02,2024-05-01,00000-0000-00,"
        f"BACLOFEN POWDER {''.join(rng.choices('ABCDEFGHIJ', k=700))},oral,5,mg,G35"
        for n in range(3000)
    ]  # about 2 MB of drug names: more than one 1 MiB data page per column chunk
    extract = write_csv(rows)
    written = {}
    for batch in ("3000", "333"):
        run = run_cli(extract, "--batch-rows", batch, out=tmp_path / batch)
        assert run.exit_code == 0
        written[batch] = (run.out / "results.parquet").read_bytes()
    assert written["333"] == written["3000"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.slow
def test_grouping_batches_for_the_decision_changes_no_byte(run_cli, tmp_path, monkeypatch, fmt):
    """The local engine scopes what its screen leaves of consecutive batches together, and
    decides their powder lines together; whatever the group sizes (every batch alone, groups
    cut by a few records, lines or rejects, all in one group), results, rejects and counts
    are the same. The extract (the benchmark's
    generator: a third powder lines, every kind of record and line reject, repeated keys)
    interleaves record rejects and powder line rejects in every batch."""
    import subprocess
    import sys

    from pa_batch.io import tables
    from pa_batch.runner import engines

    extract = tmp_path / "extract.csv"
    generator = Path(__file__).parent.parent / "bench" / "extracts.py"
    subprocess.run(
        [sys.executable, str(generator), "--lines", "3000", "--powder-share", "0.3",
         "--out", str(extract)],
        check=True,
    )  # fmt: skip
    monkeypatch.setattr(tables, "PARQUET_ROW_GROUP_ROWS", 7)
    args = ["--reference-dir", Path(__file__).parent.parent / "bench" / "reference"]
    args += ["--format", fmt, "--batch-rows", "100"]
    written, counts = {}, {}
    for group_lines in (1, 50, 1 << 15):
        monkeypatch.setattr(engines, "GROUP_LINES", group_lines)
        # screened records grouped by 1 (each batch alone), 37 (a few batches) or all
        monkeypatch.setattr(engines, "SCREENED_ROWS", {1: 1, 50: 37, 1 << 15: 1 << 15}[group_lines])
        run = run_cli(extract, *args, out=tmp_path / str(group_lines))
        assert run.exit_code == 0
        written[group_lines] = [
            (run.out / f"{table}.{fmt}").read_bytes() for table in ("results", "rejects")
        ]
        counts[group_lines] = run.summary["counts"]
    assert written[1] == written[50] == written[1 << 15]
    assert counts[1] == counts[50] == counts[1 << 15]
    assert counts[1]["rows_read"] == 3000
    assert counts[1]["rejected"] > 100 and counts[1]["approved"] > 10


@pytest.mark.parametrize("row_group_rows", [7, 64, 1000])
def test_parquet_batches_hold_batch_rows_records_however_the_row_groups_fall(
    tmp_path, row_group_rows
):
    """Drug name, route and unit are read as dictionaries, which ends the reader's pieces at
    every row group: the batches are still ``batch_rows`` records each (the last fewer), in
    order, and their cells the text written."""
    from pa_batch.io import inputs

    table = pa.concat_tables([pq.read_table(SAMPLE_DATA / "claims.parquet")] * 3)
    extract = tmp_path / "claims.parquet"
    pq.write_table(table, extract, row_group_size=row_group_rows)
    opened = inputs.open_extract(inputs.input_file(extract))
    assert set(opened.parquet_dictionary_columns) == {"drug_name", "route", "strength_unit"}
    batches = list(opened.batches(50))
    sizes = [len(batch.source_rows) for batch in batches]
    assert sizes == [50] * (table.num_rows // 50) + (
        [table.num_rows % 50] * (table.num_rows % 50 > 0)
    )
    assert np.concatenate([b.source_rows for b in batches]).tolist() == list(
        range(1, table.num_rows + 1)
    )
    assert batches[0].raw.dictionary("drug_name") is not None  # held as read until asked for
    for name in ("drug_name", "route", "strength_unit", "claim_id"):
        read = pa.concat_arrays([batch.raw[name] for batch in batches]).to_pylist()
        assert read == table[name].to_pylist()
