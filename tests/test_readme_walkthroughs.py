"""The README's explain walkthrough reproduces exactly: each `pa-batch explain out/sample ID`
block, replayed on a run of the sample as `make run` makes it (from a copy of the checkout's
sample_data, paths as the README gives them), prints what the README shows, run id aside."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import SAMPLE_DATA
from typer.testing import CliRunner

from pa_batch.cli import app

README = Path(__file__).parent.parent / "README.md"
COMMAND = re.compile(r"^    pa-batch explain out/sample (\S+)$")
RUN_ID = re.compile(r"in run [0-9a-f]{16}")


def _walkthroughs() -> list[tuple[str, str]]:
    """(claim, the output shown): the indented lines after each command, up to the next
    command or the end of the indented block."""
    lines = README.read_text(encoding="utf-8").split("\n")
    found = []
    for number, line in enumerate(lines):
        command = COMMAND.match(line)
        if not command:
            continue
        shown: list[str] = []
        for following in lines[number + 2 :]:
            if COMMAND.match(following) or (following and not following.startswith("    ")):
                break
            shown.append(following[4:])
        found.append((command.group(1), "\n".join(shown).strip("\n")))
    return found


WALKTHROUGHS = _walkthroughs()


def test_the_readme_has_explain_walkthroughs():
    assert len(WALKTHROUGHS) >= 3


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(SAMPLE_DATA, folder / "sample_data")
    return folder


@pytest.mark.parametrize(("claim", "shown"), WALKTHROUGHS, ids=[c for c, _ in WALKTHROUGHS])
def test_each_explain_walkthrough_prints_what_the_readme_shows(
    sample_run, monkeypatch, claim, shown
):
    monkeypatch.chdir(sample_run)
    if not (sample_run / "out" / "sample").exists():
        made = CliRunner().invoke(app, ["run", "sample_data/claims.csv", "--out", "out/sample",
                                        "--reference-dir", "sample_data/reference"])  # fmt: skip
        assert made.exit_code == 0, made.output
    printed = CliRunner().invoke(app, ["explain", "out/sample", claim])
    assert printed.exit_code == 0, printed.output
    assert RUN_ID.sub("in run ID", printed.stdout.rstrip("\n")) == RUN_ID.sub("in run ID", shown)


# --- the "what changes if…" walkthroughs: runs, then runs / diff, and what they print ------


def _command_blocks() -> list[tuple[list[list[str]], str]]:
    """Each indented block of `pa-batch` commands that runs something, and the indented block
    printed after it (the output of its commands other than `run`)."""
    lines = README.read_text(encoding="utf-8").split("\n")
    found = []
    number = 0
    while number < len(lines):
        if not lines[number].startswith("    pa-batch run sample_data/claims.csv --out out/"):
            number += 1
            continue
        commands, joined = [], ""
        while number < len(lines) and lines[number].startswith("    "):
            joined += lines[number].strip().rstrip("\\").strip() + " "
            if not lines[number].rstrip().endswith("\\"):
                commands.append(joined.split()[1:])
                joined = ""
            number += 1
        number += 1  # the blank line
        if number < len(lines) and lines[number] == "which prints":
            number += 2
        shown = []
        while number < len(lines) and lines[number].startswith("    "):
            shown.append(lines[number][4:])
            number += 1
        found.append((commands, "\n".join(shown)))
    return found


COMMAND_BLOCKS = _command_blocks()
TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def _normalized(text: str) -> list[str]:
    return [" ".join(TIMES.sub("TIME", line).split()) for line in text.strip().split("\n")]


def test_the_readme_has_what_changes_if_walkthroughs():
    assert len(COMMAND_BLOCKS) == 3
    assert all(shown for _, shown in COMMAND_BLOCKS)


@pytest.mark.parametrize(
    ("commands", "shown"), COMMAND_BLOCKS, ids=["shortages", "market", "policy"]
)
def test_each_what_changes_if_walkthrough_prints_what_the_readme_shows(
    tmp_path, monkeypatch, commands, shown
):
    shutil.copytree(SAMPLE_DATA, tmp_path / "sample_data")
    monkeypatch.chdir(tmp_path)
    printed = []
    for command in commands:
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 0, (command, result.output)
        if command[0] != "run":
            printed.append(result.stdout)
    assert _normalized("".join(printed)) == _normalized(shown)
