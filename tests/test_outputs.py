"""Outputs: nothing lost, atomic commit, duplicates across files, malformed CSV records with
their true record numbers, and no member data in the console or the summaries."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
from helpers import HEADER

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


def test_outputs_are_not_world_readable(run_cli, write_csv):
    run = run_cli(write_csv([LINE]))
    for name in ("results.parquet", "rejects.parquet", "summary.json", "summary.md"):
        mode = os.stat(run.out / name).st_mode
        assert not mode & stat.S_IROTH, name


def test_duplicate_key_spans_files_and_names_the_first(run_cli, write_csv):
    first = write_csv([LINE])
    second = write_csv([LINE.replace(",1,M1", ",1.0,M2")])
    run = run_cli(first, second)
    assert run.exit_code == 0
    rejects = run.rejects
    assert rejects["error_code"].tolist() == ["DUPLICATE_KEY"]
    assert rejects["source_file"].tolist() == [str(second)]
    assert f"{first} row 1" in rejects["message"].iloc[0]


def test_malformed_records_keep_true_record_numbers(run_cli, write_csv):
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


def test_counts_add_up_and_summaries_carry_no_member_data(run_cli, write_csv):
    secret_member, secret_birth, secret_claim = "MEMBERSECRET77", "1931-07-04", "CLAIMSECRET88"
    rows = [
        f"{secret_claim},1,{secret_member},{secret_birth},2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35",
        f"{secret_claim},x,{secret_member},{secret_birth},2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35",
        f"X,1,{secret_member},{secret_birth},2024-05-01,00000-0000-00,ASPIRIN,oral,5,mg,G35",
    ]  # fmt: skip
    run = run_cli(write_csv(rows, header=HEADER))
    assert run.exit_code == 0
    counts = run.summary["counts"]
    assert (
        sum(
            counts[k] for k in ("approved", "denied", "investigational", "out_of_scope", "rejected")
        )
        == counts["rows_read"]
        == 3
    )
    public = (
        run.output + run.stderr + (run.out / "summary.md").read_text() + json.dumps(run.summary)
    )
    for secret in (secret_member, secret_birth, secret_claim):
        assert secret not in public
    assert secret_member in pd.read_parquet(run.out / "results.parquet")["member_id"].tolist()


def test_second_run_into_a_busy_directory_fails_fast(run_cli, write_csv, tmp_path):
    from pa_batch.writers import OutputDirectory

    out = tmp_path / "out"
    holder = OutputDirectory(out).open()  # another run in progress holds the lock
    try:
        run = run_cli(write_csv([LINE]), out=out)
    finally:
        holder.abort()
        holder.close()
    assert run.exit_code == 1
    assert "another pa-batch run is writing" in run.stderr
    assert run_cli(write_csv([LINE]), out=out).exit_code == 0
