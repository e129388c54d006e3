"""Outputs do not move unless the product means them to: a restructure or a speed-up changes
no byte. The sample's results and rejects (CSV) are kept under ``tests/golden/`` to read side by
side with the sample; a seeded 200,000-line extract's are kept as checksums. A change that
means to move an output regenerates them with ``make golden`` and says why in its commit.
``tools/same_outputs.py REF`` compares against any earlier commit, Parquet outputs too."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
from helpers import SAMPLE_DATA

from pa_batch import api

GOLDEN = Path(__file__).parent / "golden"
BENCH = Path(__file__).parent.parent / "bench"
GENERATED_LINES = 200_000
REGENERATE = "an output moved; if the change means it, run `make golden` and say why"


def _run_csv(extract: Path, reference: Path, folder: Path, monkeypatch) -> Path:
    """The run as ``pa-batch run claims.<ext> --format csv`` from ``folder``: the outputs
    carry the input's name as given, so it is the same wherever the checkout lives."""
    given = folder / f"claims{extract.suffix}"
    if extract != given:
        shutil.copyfile(extract, given)
    monkeypatch.chdir(folder)
    result = api.run(
        [given.name], "out", reference_dir=reference, output_format="csv", run_id="golden"
    )
    assert result.exit_code == 0
    return folder / result.run_dir


def test_the_sample_s_outputs_are_the_golden_ones(tmp_path, monkeypatch):
    run_dir = _run_csv(SAMPLE_DATA / "claims.csv", SAMPLE_DATA / "reference", tmp_path, monkeypatch)
    for name in ("results.csv", "rejects.csv"):
        assert (run_dir / name).read_bytes() == (GOLDEN / "sample" / name).read_bytes(), (
            f"{name}: {REGENERATE}"
        )


@pytest.mark.slow
def test_a_generated_extract_s_outputs_have_the_golden_checksums(tmp_path, monkeypatch):
    sys.path.insert(0, str(BENCH))
    try:
        from extracts import generate
    finally:
        sys.path.remove(str(BENCH))
    extract = generate(tmp_path / "claims.parquet", GENERATED_LINES, powder_share=0.05)
    run_dir = _run_csv(extract, BENCH / "reference", tmp_path, monkeypatch)
    found = {
        name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest()
        for name in ("results.csv", "rejects.csv")
    }
    expected = json.loads((GOLDEN / "generated_200k.json").read_text(encoding="utf-8"))
    assert found == expected["sha256"], REGENERATE
