"""The bad-input corpus: each file in tests/bad_inputs beside what it must do (cases.csv).

Record-level damage commits (exit 0) with the listed outcome counts and reject codes by
record number; file-level damage fails (exit 1) with one line naming the file (and column),
no traceback, nothing committed and the previous committed run left as it was; a bad option
value is a usage error (exit 2). No case ever reaches "internal error".

A case with an ``env`` runs the installed console script in a subprocess with that
environment, because some switches (pandera's) are read when a library is imported.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import Run
from typer.testing import CliRunner

from pa_batch.cli import app

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = pd.read_csv(CORPUS / "cases.csv", dtype="str", keep_default_na=False)
OUTCOMES = ("approved", "denied", "investigational", "out_of_scope", "rejected")
DATA_VALUES = ("1980-01-02", "BACLOFEN", "G35")  # in every corpus record; never in a message


def invoke(
    file: Path, args: str, out: Path, env: str = "", engine: list[str] = (), scratch: Path = CORPUS
) -> Run:
    """Run one case. ``{corpus}`` in its arguments is the corpus; ``{scratch}``, a copy of it
    made for the case, where the run may leave records (an output directory of the corpus:
    the failed attempt's last_attempt.json must not land in the repository)."""
    arguments = args.replace("{corpus}", str(CORPUS)).replace("{scratch}", str(scratch))
    extra = [*shlex.split(arguments), *engine]
    if "--out" not in extra:
        extra += ["--out", str(out)]
    if env:
        script = Path(sys.executable).with_name("pa-batch")
        variables = dict(item.split("=", 1) for item in env.split())
        done = subprocess.run(
            [str(script), "run", str(file), *extra],
            capture_output=True,
            text=True,
            env={**os.environ, **variables},
        )
        return Run(out, done.returncode, done.stdout + done.stderr, done.stdout, done.stderr)
    result = CliRunner().invoke(app, ["run", str(file), *extra])
    return Run(out, result.exit_code, result.output, result.stdout, result.stderr)


def visible_state(out: Path) -> dict[str, bytes]:
    """What a reader of DIR sees: every name and the bytes behind it."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def test_corpus_files_all_have_a_case():
    listed = set(CASES["file"])
    on_disk = {p.name for p in CORPUS.iterdir() if p.name not in {"cases.csv", "make_corpus.py"}}
    folders_named_in_args = " ".join(CASES["args"])
    assert {name for name in on_disk - listed if name not in folders_named_in_args} == set()


# a case with an environment runs the console script in a process of its own
CASE_PARAMS = [
    pytest.param(case, id=case["case"], marks=[pytest.mark.subprocess] if case["env"] else [])
    for case in CASES.to_dict("records")
]


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_bad_input(case, tmp_path, engine):
    out = tmp_path / "out"
    expected_exit = int(case["exit"])
    if expected_exit == 1:  # a committed run that the failure must leave alone
        assert invoke(CORPUS / "crlf.csv", "", out).exit_code == 0
    before = visible_state(out) if out.exists() else None

    scratch = tmp_path / "corpus"
    if "{scratch}" in case["args"]:
        shutil.copytree(CORPUS, scratch, symlinks=True)
    run = invoke(CORPUS / case["file"], case["args"], out, case["env"], engine, scratch)

    assert run.exit_code == expected_exit, run.output
    assert "internal error" not in run.output
    if expected_exit == 2:
        assert case["message"] in run.output
        assert not out.exists() or visible_state(out) == before
        return
    if expected_exit == 0:
        counts = run.summary["counts"]
        assert counts["rows_read"] == int(case["rows_read"])
        assert {o: counts[o] for o in OUTCOMES} == {o: int(case[o]) for o in OUTCOMES}
        rejects = run.rejects
        found = " ".join(
            f"{r}:{c}" for r, c in zip(rejects["source_row"], rejects["error_code"], strict=True)
        )
        assert found == case["rejects"]
        assert len(run.results) == counts["approved"] + counts["denied"] + counts["investigational"]
        return
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.output
    assert lines[0].startswith("pa-batch: error: ")
    assert case["message"] in lines[0]
    assert not any(value in lines[0] for value in DATA_VALUES)
    if before is not None:
        assert visible_state(out) == before
        leftovers = {p.name for p in (out / ".pa-batch").iterdir()} - {"failures"}
        assert leftovers == {"current", "lock", "runs", "last_attempt.json"}
        assert len(os.listdir(out / ".pa-batch" / "runs")) == 1  # a failed run adds none
