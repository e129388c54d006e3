"""Shared fixtures: run the real CLI on small inputs and read what it committed."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import HEADER, Run
from typer.testing import CliRunner

from pa_batch.cli import app


@pytest.fixture
def run_cli(tmp_path):
    """Invoke ``pa-batch run`` in-process via typer's CliRunner."""

    def invoke(*args: str | Path, out: Path | None = None) -> Run:
        out = out or tmp_path / "out"
        runner = CliRunner()
        result = runner.invoke(app, ["run", *map(str, args), "--out", str(out)])
        return Run(out, result.exit_code, result.output, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def write_csv(tmp_path):
    """Write CSV text to a file (header defaults to the common claim columns)."""

    counter = iter(range(10**6))

    def write(rows: list[str] | str, header: str = HEADER, name: str | None = None) -> Path:
        body = rows if isinstance(rows, str) else "\n".join(rows) + "\n"
        path = tmp_path / (name or f"extract_{next(counter)}.csv")
        path.write_text(f"{header}\n{body}" if header else body, encoding="utf-8")
        return path

    return write
