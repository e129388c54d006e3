"""Outputs: nothing lost, atomic commit, duplicates across files, malformed CSV records with
their true record numbers, and no member data in the console or the summaries."""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from helpers import HEADER, SAMPLE_DATA

LINE = "C1,1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35"


def test_failed_run_leaves_the_previous_committed_run_intact(run_cli, write_csv, tmp_path):
    out = tmp_path / "out"
    first = run_cli(write_csv([LINE]), out=out)
    assert first.exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    failed = run_cli(write_csv([LINE]), tmp_path / "missing.csv", out=out)
    assert failed.exit_code == 1
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before
    assert not list((out / ".pa-batch").glob("staging-*"))


def test_a_record_half_written_by_a_killed_run_is_cleared_by_the_next(run_cli, write_csv, tmp_path):
    """A SIGKILL while last_attempt.json or a failure record was written leaves its
    temporary; the next run, holding the lock, removes it: the history holds no debris."""
    out = tmp_path / "out"
    assert run_cli(write_csv([LINE]), out=out).exit_code == 0
    control = out / ".pa-batch"
    (control / "failures").mkdir(exist_ok=True)
    debris = [
        control / ".last_attempt.json.9494f265.tmp",
        control / "failures" / ".run1.json.0a1b2c3d.tmp",
    ]
    for path in debris:
        path.write_text('{"run_id": "ki')
    keep = control / "failures" / "notes.tmp"  # not a record's temporary: not ours to remove
    keep.write_text("x")
    assert run_cli(write_csv([LINE]), out=out).exit_code == 0
    assert [path for path in debris if path.exists()] == []
    assert keep.exists()
    assert (control / "last_attempt.json").exists()


def test_outputs_are_not_world_readable(run_cli, write_csv):
    run = run_cli(write_csv([LINE]))
    for name in ("results.parquet", "rejects.parquet", "summary.json", "summary.md"):
        mode = os.stat(run.out / name).st_mode
        assert not mode & stat.S_IROTH, name


def test_duplicate_key_spans_files_and_names_the_first(run_cli, write_csv, engine):
    first = write_csv([LINE])
    second = write_csv([LINE.replace(",1,M1", ",1.0,M2")])
    run = run_cli(first, second)
    assert run.exit_code == 0
    rejects = run.rejects
    assert rejects["error_code"].tolist() == ["DUPLICATE_KEY"]
    assert rejects["source_file"].tolist() == [str(second)]
    assert f"{first} row 1" in rejects["message"].iloc[0]


def test_malformed_records_keep_true_record_numbers(run_cli, write_csv, engine):
    body = "\n".join([
        LINE,
        'C2,1,M1,1980-01-02,2024-05-01,00000-0000-00,"BACLOFEN\nPOWDER",oral,5,mg,G35',
        "C3,1,M1,1980-01-02",
        LINE.replace("C1", "C4") + ",extra",
        LINE.replace("C1", "C5"),
    ]) + "\n"  # fmt: skip
    run = run_cli(write_csv(body))
    assert run.exit_code == 0
    assert run.results["source_row"].tolist() == [1, 2, 5]
    assert run.results["claim_id"].tolist() == ["C1", "C2", "C5"]
    malformed = run.rejects[run.rejects["error_code"] == "MALFORMED_RECORD"]
    assert malformed["source_row"].tolist() == [3, 4]
    assert run.summary["counts"]["rows_read"] == 5


SECRETS = ("MEMBERSECRET77", "1931-07-04", "CLAIMSECRET88", "RXSECRET99", "NOTADATESECRET")
SECRET_ROWS = [
    "CLAIMSECRET88,1,MEMBERSECRET77,1931-07-04,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35",
    "CLAIMSECRET88,x,MEMBERSECRET77,1931-07-04,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35",
    "CLAIMSECRET88,2,MEMBERSECRET77,1931-07-04,NOTADATESECRET,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35",
    "X,1,MEMBERSECRET77,1931-07-04,2024-05-01,00000-0000-00,RXSECRET99,oral,5,mg,G35",
    "CLAIMSECRET88,3,MEMBERSECRET77",
]  # fmt: skip


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_member_data_appears_only_in_results_and_rejects(run_cli, write_csv, engine, log_format):
    run = run_cli(write_csv(SECRET_ROWS), "--log-format", log_format, "--format", "csv")
    assert run.exit_code == 0
    counts = run.summary["counts"]
    outcomes = ("approved", "denied", "investigational", "out_of_scope", "rejected")
    assert sum(counts[k] for k in outcomes) == counts["rows_read"] == 5
    assert (counts["approved"], counts["out_of_scope"], counts["rejected"]) == (1, 1, 3)

    def is_data(path: Path) -> bool:  # results.csv, or a dask run's results/part-000000.csv
        tables = {"results", "rejects"}
        return path.stem in tables or (path.parent.name in tables and path.stem.startswith("part-"))

    everything_else = run.stdout + run.stderr
    in_data = ""
    for path in run.out.rglob("*"):
        if path.is_file() and path.name != "lock":
            if is_data(path):
                in_data += path.read_text()
            else:
                everything_else += path.read_text()
    for secret in SECRETS:
        assert secret not in everything_else, secret
    for secret in ("MEMBERSECRET77", "1931-07-04", "CLAIMSECRET88", "NOTADATESECRET"):
        assert secret in in_data, secret  # the values are where they belong


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_failure_messages_carry_no_member_data(run_cli, tmp_path, log_format):
    undecodable = tmp_path / "latin1.csv"
    rows = [HEADER, *SECRET_ROWS[:1], SECRET_ROWS[0].replace("BACLOFEN", "BACLOF\xc8N")]
    undecodable.write_bytes("\n".join(rows).encode("latin-1"))
    truncated = tmp_path / "truncated.csv.gz"
    whole = gzip.compress("\n".join([HEADER, *SECRET_ROWS * 500]).encode())
    truncated.write_bytes(whole[: len(whole) // 2])
    for extract in (undecodable, truncated):
        run = run_cli(extract, "--log-format", log_format)
        assert run.exit_code == 1
        assert extract.name in run.output
        for secret in SECRETS:
            assert secret.lower() not in run.output.lower(), (extract.name, secret)


def test_second_run_into_a_busy_directory_fails_fast(run_cli, write_csv, tmp_path):
    from pa_batch.io.commit import OutputDirectory

    out = tmp_path / "out"
    holder = OutputDirectory(out).open([])  # another run in progress holds the lock
    try:
        run = run_cli(write_csv([LINE]), out=out)
    finally:
        holder.abort()
        holder.close()
    assert run.exit_code == 75  # EX_TEMPFAIL: the lock will be released; retry later
    assert "another pa-batch run is writing" in run.stderr
    assert run_cli(write_csv([LINE]), out=out).exit_code == 0


def test_csv_outputs_neutralize_spreadsheet_formulas_and_parquet_keeps_raw_values(
    run_cli, write_csv, tmp_path
):
    rows = [
        '"=HYPERLINK(""http://x"")",1,+M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35',
        "C2,@1,M2,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35",
        "-C3,1,M3",
        "C4,1,M4,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35",
    ]  # fmt: skip
    extract = write_csv(rows)
    as_csv = run_cli(extract, "--format", "csv", out=tmp_path / "csv")
    as_parquet = run_cli(extract, out=tmp_path / "parquet")
    assert as_csv.exit_code == as_parquet.exit_code == 0

    csv_results, raw_results = as_csv.results, as_parquet.results
    assert csv_results["claim_id"].tolist() == ['\'=HYPERLINK("http://x")', "C4"]
    assert csv_results["member_id"].tolist() == ["'+M1", "M4"]
    assert raw_results["claim_id"].tolist() == ['=HYPERLINK("http://x")', "C4"]
    assert raw_results["member_id"].tolist() == ["+M1", "M4"]

    csv_values = as_csv.rejects.set_index("error_code")["value"]
    raw_values = as_parquet.rejects.set_index("error_code")["value"]
    assert csv_values["INVALID_LINE_NUMBER"] == "'@1"
    assert csv_values["MALFORMED_RECORD"] == "'-C3,1,M3"
    assert raw_values["INVALID_LINE_NUMBER"] == "@1"
    assert raw_values["MALFORMED_RECORD"] == "-C3,1,M3"
    # every text cell of both CSV files is safe: nothing starts with a trigger character
    for table in (as_csv.results, as_csv.rejects):
        text = table.select_dtypes(include="str").stack().astype(str)
        assert not text.str.match(r"[=+\-@\t\r\n]").any()


def test_a_full_disk_while_writing_fails_cleanly_and_keeps_the_previous_run(
    run_cli, write_csv, tmp_path, monkeypatch
):
    import errno

    from pa_batch.io import tables

    out = tmp_path / "out"
    assert run_cli(write_csv([LINE]), out=out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def disk_full(self, frame, keep=None):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tables.TableWriter, "write", disk_full)
    run = run_cli(write_csv([LINE, LINE.replace("C1", "C2")]), out=out)
    assert run.exit_code == 75  # a full disk passes: retry once there is room
    assert (
        run.stderr.strip()
        == f"pa-batch: error: {out}: cannot write outputs (No space left on device)"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not list((out / ".pa-batch").glob("staging-*"))


def test_the_dask_engine_writes_the_local_engines_rows_as_parts(run_cli, tmp_path, dask_scheduler):
    """Same inputs, same options: the workers' parts, in name order, hold the local run's
    rows value for value; duplicates found across inputs decided on different workers."""
    sample = SAMPLE_DATA / "claims.csv"
    args = [sample, sample, "--reference-dir", SAMPLE_DATA / "reference", "--batch-rows", "40"]
    for fmt in ("csv", "parquet"):
        local = run_cli(*args, "--format", fmt, out=tmp_path / f"local_{fmt}")
        on_dask = run_cli(*args, "--format", fmt, "--engine", "dask",
                          "--scheduler", dask_scheduler, out=tmp_path / f"dask_{fmt}")  # fmt: skip
        assert local.exit_code == on_dask.exit_code == 0, on_dask.output
        for table in ("results", "rejects"):
            parts = sorted(p.name for p in (on_dask.out / table).iterdir())
            assert parts == [f"part-000000.{fmt}", f"part-000001.{fmt}"]  # a CSV file a part
            pd.testing.assert_frame_equal(on_dask.table(table), local.table(table))
        assert on_dask.summary["counts"] == local.summary["counts"]
        assert on_dask.summary["errors"]["DUPLICATE_KEY"] > 0
        assert set(on_dask.summary["outputs"]["sha256"]) == {
            "results/part-000000." + fmt, "results/part-000001." + fmt,
            "rejects/part-000000." + fmt, "rejects/part-000001." + fmt, "summary.md",
        }  # fmt: skip


def test_parquet_statistics_are_kept_where_a_reader_can_skip_by_them(run_cli):
    """Dates, numbers and few-valued text carry min/max; free text (member ids) does not."""
    import pyarrow.parquet as pq

    run = run_cli(SAMPLE_DATA / "claims.csv", "--reference-dir", SAMPLE_DATA / "reference")
    assert run.exit_code == 0
    group = pq.ParquetFile(run.out / "results.parquet").metadata.row_group(0)
    kept = {
        group.column(i).path_in_schema
        for i in range(group.num_columns)
        if group.column(i).is_stats_set
    }
    assert {"service_date", "source_row", "decision", "age_years", "policy_version"} <= kept
    assert not {"member_id", "claim_id", "diagnosis_codes"} & kept
