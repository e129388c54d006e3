"""Write the golden outputs ``tests/test_same_outputs.py`` holds the product to (make golden).

Run it only when a change means to move an output, and say in the commit why it moved.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
LINES = 200_000


def main() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from extracts import generate

    from pa_batch import api

    def run_csv(extract: Path, reference: Path, folder: Path) -> Path:
        """As the test runs it: ``claims.<ext>`` given by name from its folder."""
        folder.mkdir()
        given = folder / f"claims{extract.suffix}"
        shutil.copyfile(extract, given)
        os.chdir(folder)
        result = api.run(
            [given.name], "out", reference_dir=reference, output_format="csv", run_id="golden"
        )
        os.chdir(ROOT)
        return folder / Path(str(result.run_dir))

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        sample_dir = run_csv(
            ROOT / "sample_data" / "claims.csv", ROOT / "sample_data" / "reference", folder / "a"
        )
        (GOLDEN / "sample").mkdir(parents=True, exist_ok=True)
        for name in ("results.csv", "rejects.csv"):
            shutil.copyfile(sample_dir / name, GOLDEN / "sample" / name)
        extract = generate(folder / "generated.parquet", LINES, powder_share=0.05)
        generated_dir = run_csv(extract, ROOT / "bench" / "reference", folder / "b")
        checksums = {
            name: hashlib.sha256((generated_dir / name).read_bytes()).hexdigest()
            for name in ("results.csv", "rejects.csv")
        }
    record = {
        "extract": f"bench/extracts.py generate(lines={LINES}, powder_share=0.05, seed=11)",
        "reference": "bench/reference",
        "sha256": checksums,
    }
    (GOLDEN / "generated_200k.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"golden outputs written under {GOLDEN.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
