"""A run at its edges: names that look like markup, inputs that are links to nothing, and a
console that stops listening. The outputs stay right and the run says what happened in one
line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import HEADER, nothing_published
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from pa_batch.cli import app

LINE = "C1,1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,5,mg,G35"
SHIPPED_POLICY = (
    Path(__file__).parent.parent / "pa_batch" / "policy" / "data" / "baclofen-powder.toml"
).read_text()


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# --- summary.md escapes what it did not write ------------------------------------------------

MARKUP_NAME = "a`b|c <script>x *d*.csv"  # a file name cannot hold a /
MARKUP_COLUMN = "note`` <b>bold</b> | x"
MARKUP_TITLE = "Baclofen <img src=x onerror=alert(1)> `code` | *policy*"


def test_summary_md_shows_names_titles_and_columns_as_text_never_as_markup(tmp_path):
    extract = tmp_path / MARKUP_NAME
    extract.write_text(f'{HEADER},"{MARKUP_COLUMN}"\n{LINE},x\n')
    policy = tmp_path / "policy.toml"
    policy.write_text(
        SHIPPED_POLICY.replace(
            'title = "Baclofen Powder (compounded bulk baclofen)"',
            f"title = {json.dumps(MARKUP_TITLE)}",
        ).replace('version = "2024.1"', 'version = "2024`1 <i>"')
    )
    out = tmp_path / "out"
    result = _cli("run", extract, "--out", out, "--policy", policy)
    assert result.exit_code == 0, result.output
    rendered = MarkdownIt("commonmark").enable("table").render((out / "summary.md").read_text())
    for tag in ("<script", "<img", "<b>", "<i>", "<em>"):
        assert tag not in rendered, tag
    # the text is all there, as text
    for text in (
        "&lt;script&gt;x",
        "&lt;img src=x onerror=alert(1)&gt;",
        "&lt;b&gt;bold&lt;/b&gt;",
    ):
        assert text in rendered, text
    # the inputs table keeps its nine cells a row: no | in a name broke out of its cell
    rows = [row for row in rendered.split("<tr>") if "a`b|c" in row]
    assert len(rows) == 1 and rows[0].count("<td") == 9, rows


# --- a directory's links that lead nowhere ---------------------------------------------------


def test_a_directory_input_fails_on_a_broken_link_or_a_loop_naming_it(tmp_path):
    folder = tmp_path / "claims"
    folder.mkdir()
    (folder / "a.csv").write_text(f"{HEADER}\n{LINE}\n")
    (folder / "b.csv").symlink_to(tmp_path / "gone.csv")
    result = _cli("run", folder, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"pa-batch: error: {folder / 'b.csv'}: a symbolic link to no file, not an extract"
    )
    (folder / "b.csv").unlink()
    (folder / "c.csv").symlink_to(folder / "c.csv")  # a loop
    result = _cli("run", str(folder / "*.csv"), "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert f"{folder / 'c.csv'}: a symbolic link to no file" in result.stderr
    assert nothing_published(tmp_path / "out")
    (folder / "c.csv").unlink()
    (folder / "d.csv").mkdir()  # a subdirectory is passed over, as before
    assert _cli("run", folder, "--out", tmp_path / "out").exit_code == 0


# --- a console that stops listening ----------------------------------------------------------


def _run_with_stdout(tmp_path: Path, stdout, *extra: str) -> subprocess.CompletedProcess:
    extract = tmp_path / "a.csv"
    extract.write_text(f"{HEADER}\n{LINE}\n")
    command = [
        sys.executable,
        "-m",
        "pa_batch",
        "run",
        str(extract),
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]
    return subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


@pytest.mark.subprocess
def test_a_closed_stdout_leaves_the_run_committed_and_says_so(tmp_path):
    read, write = os.pipe()
    os.close(read)  # nobody reads: every write is EPIPE
    try:
        for log_format in ("text", "json"):
            finished = _run_with_stdout(tmp_path, write, "--log-format", log_format)
            assert finished.returncode == 0, finished.stderr
            assert "Traceback" not in finished.stderr and "Exception ignored" not in finished.stderr
            lines = finished.stderr.strip().splitlines()
            assert len(lines) == 1 and "is committed to" in lines[0], finished.stderr
            assert "standard output could not be written (Broken pipe)" in lines[0]
            assert (
                json.loads((tmp_path / "out" / "summary.json").read_text())["counts"]["approved"]
                == 1
            )
    finally:
        os.close(write)


@pytest.mark.subprocess
def test_a_full_stdout_device_leaves_the_run_committed_and_says_so(tmp_path):
    with open("/dev/full", "w") as full:
        finished = _run_with_stdout(tmp_path, full, "--log-format", "json")
    assert finished.returncode == 0, finished.stderr
    assert "Traceback" not in finished.stderr
    assert "could not be written (No space left on device)" in finished.stderr
    assert str(tmp_path / "out") not in finished.stderr.split("committed to")[0]
