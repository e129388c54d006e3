"""Awkward headers, output paths that cannot take a run, cleanup that fails after a commit,
and cells written to the rejects as given. The hostile files themselves
are in the bad-input corpus (tests/bad_inputs/cases.csv): a quoted line break in a header
cell, a file with no header row, upper-case extensions, a header-only file without its final
newline, invalid UTF-8 in Parquet, a reference row with an extra field, a blank line before
the header, and option values that are not usable."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat

import pandas as pd
import pytest
from helpers import HEADER
from typer.testing import CliRunner

from pa_batch.cli import app
from pa_batch.io import commit

LINE = "C1,1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35"


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_header_cell_with_a_line_break_keeps_every_record_number(write_csv, tmp_path):
    extract = write_csv(
        [f"{LINE},", "C2,1,M1", f"{LINE.replace('C1', 'C3')},"],
        header=f'{HEADER},"Reviewer\nnotes"',
    )
    out = tmp_path / "out"
    assert _cli("run", extract, "--out", out).exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["rows_read"] == 3
    assert pd.read_parquet(out / "results.parquet")["source_row"].tolist() == [1, 3]
    rejects = pd.read_parquet(out / "rejects.parquet")
    assert rejects[["source_row", "error_code"]].values.tolist() == [[2, "MALFORMED_RECORD"]]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_file_without_a_header_row_echoes_no_value(tmp_path, log_format):
    extract = tmp_path / "claims.csv"
    extract.write_text("mbr123456,1,mbr123456,1980-01-02\nC2,1,M2,1980-01-02\n")
    result = _cli("run", extract, "--out", tmp_path / "out", "--log-format", log_format)
    assert result.exit_code == 1
    assert "mbr123456" not in result.output and "1980-01-02" not in result.output
    assert "header columns 1 and 3 have the same name" in result.output
    assert "is the header row missing?" in result.output


def test_close_names_are_suggested_only_when_they_look_like_column_names(tmp_path):
    """A data row taken for a header carries no name-like text; nothing of it is echoed."""
    extract = tmp_path / "claims.csv"
    header = HEADER.replace(",route,", ",route_of_admin,").replace(",strength,", ",19800102,")
    extract.write_text(f"{header}\n{LINE}\n")
    result = _cli("run", extract, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "(close: 'route_of_admin'?)" in result.stderr
    assert "19800102" not in result.stderr


def test_a_cleanup_failure_after_the_commit_is_a_warning_not_a_failure(
    write_csv, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    assert _cli("run", write_csv([LINE]), "--out", out).exit_code == 0
    real_rmtree = shutil.rmtree

    def failing_rmtree(path, *args, **kwargs):
        if "retired-" in str(path):  # retiring an old run
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(commit.shutil, "rmtree", failing_rmtree)
    second = _cli(
        "run", write_csv([LINE, LINE.replace("C1", "C2")]), "--out", out, "--keep-runs", "1"
    )
    assert second.exit_code == 0, second.output
    assert "pa-batch: warning:" in second.stderr and "committed" in second.stderr
    assert json.loads((out / "summary.json").read_text())["counts"]["rows_read"] == 2

    monkeypatch.undo()
    # the next run tidies
    assert _cli("run", write_csv([LINE]), "--out", out, "--keep-runs", "1").exit_code == 0
    assert len(os.listdir(out / ".pa-batch" / "runs")) == 1


def test_a_cleanup_failure_is_a_warning_event_in_the_json_log(write_csv, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _cli("run", write_csv([LINE]), "--out", out).exit_code == 0

    def failing_fsync(path):
        if path.name == ".pa-batch":
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(commit, "_fsync", failing_fsync)
    result = _cli("run", write_csv([LINE]), "--out", out, "--log-format", "json")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 0
    assert [e["event"] for e in events][-3:] == ["run_warning", "run_committed", "run_finished"]
    assert events[-1]["status"] == "committed"


def test_an_unwritable_control_directory_is_named(write_csv, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    real_mkdir = type(out).mkdir

    def denied(self, *args, **kwargs):
        if self.name == ".pa-batch":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(type(out), "mkdir", denied)
    result = _cli("run", write_csv([LINE]), "--out", out)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"pa-batch: error: {out / '.pa-batch'}: output directory is not writable "
        "(Permission denied)"
    )


def test_an_unwritable_staging_area_is_named_not_an_internal_error(
    write_csv, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    assert _cli("run", write_csv([LINE]), "--out", out).exit_code == 0
    real_mkdir = type(out).mkdir

    def denied(self, *args, **kwargs):
        if self.name.startswith("staging-"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(type(out), "mkdir", denied)
    result = _cli("run", write_csv([LINE]), "--out", out)
    assert result.exit_code == 1
    assert "internal error" not in result.output
    assert f"{out / '.pa-batch'}: output directory is not writable" in result.stderr


def test_directories_the_run_creates_are_0750_parents_included(write_csv, tmp_path):
    old_umask = os.umask(0o022)
    try:
        out = tmp_path / "a" / "b" / "c"
        assert _cli("run", write_csv([LINE]), "--out", out).exit_code == 0
    finally:
        os.umask(old_umask)
    for directory in (tmp_path / "a", tmp_path / "a" / "b", out, out / ".pa-batch"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o750, directory


def test_a_broken_symlink_as_out_is_named_as_such(write_csv, tmp_path):
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "gone")
    result = _cli("run", write_csv([LINE]), "--out", out)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"pa-batch: error: {out}: output path is a broken symbolic link"


def test_a_whitespace_only_required_cell_is_written_to_rejects_as_given(write_csv, tmp_path):
    out = tmp_path / "out"
    extract = write_csv([LINE.replace(",M1,", ",   ,")])
    assert _cli("run", extract, "--out", out).exit_code == 0
    rejects = pd.read_parquet(out / "rejects.parquet")
    assert rejects[["column", "error_code", "value"]].values.tolist() == [
        ["member_id", "MISSING_REQUIRED_VALUE", "   "]
    ]


def test_a_padded_invalid_cell_is_written_to_rejects_with_its_spaces(write_csv, tmp_path):
    out = tmp_path / "out"
    assert _cli("run", write_csv([LINE.replace(",1,M1,", ", x ,M1,")]), "--out", out).exit_code == 0
    assert pd.read_parquet(out / "rejects.parquet")["value"].tolist() == [" x "]


def test_of_many_inputs_opened_together_the_first_bad_one_in_order_fails_the_run(tmp_path):
    """Headers and footers are read several files at a time; the run still fails on the
    first bad input in the order given (here the second of six, though the fifth is bad
    too and smaller), before any record is decided."""
    inputs = []
    for n in range(6):
        path = tmp_path / f"claims_{n}.csv"
        header = HEADER.replace("ndc,", "") if n in (1, 4) else HEADER  # no ndc column
        path.write_text(header + "\n" + (LINE + "\n") * (1000 if n == 1 else 1))
        inputs.append(path)
    result = _cli("run", *inputs, "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1].startswith(f"pa-batch: error: {inputs[1]}:")
    assert not (tmp_path / "out" / "results.parquet").exists()
