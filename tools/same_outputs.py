"""Outputs byte-identical before and after a change: this checkout against a git ref.

Runs the package of this checkout and the package as of ``REF`` (exported from git into a
temporary folder, run from source) on the same inputs, each in its own process, and compares
the sha256 of every results and rejects file. The inputs: the bundled sample, and a generated
extract (``bench/extracts.py``, 200,000 lines, 5% baclofen powder, seeded), each as CSV and
as Parquet, each written as Parquet and as CSV. A restructure or a speed-up must change no
byte of them.

    python tools/same_outputs.py 0a0f36d            # or: make same-outputs REF=0a0f36d
    python tools/same_outputs.py 0a0f36d --lines 1000000

Exit 0 when every output is identical, 1 when one differs (each differing file is named).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "claims.csv"
SAMPLE_REFERENCE = ROOT / "sample_data" / "reference"
BENCH_REFERENCE = ROOT / "bench" / "reference"


def export(ref: str, into: Path) -> Path:
    """The tree of ``ref`` (its pa_batch package and top-level schemas), unpacked."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="tar")
    return into


def run(source: Path, extract: Path, reference: Path, out: Path, output_format: str) -> None:
    """One run of the package found at ``source``, in its own process."""
    environment = {**os.environ, "PYTHONPATH": str(source)}
    environment.pop("PA_BATCH_OUTPUT_FORMAT", None)
    script = (
        "import sys; from pa_batch.cli import main; sys.argv = ['pa-batch'] + sys.argv[1:]; main()"
    )
    subprocess.run(
        [sys.executable, "-c", script, "run", str(extract), "--out", str(out),
         "--reference-dir", str(reference), "--format", output_format, "--run-id", "same"],
        env=environment, cwd=out.parent, capture_output=True, check=False,
    )  # fmt: skip


def digests(out: Path) -> dict[str, str]:
    run_dir = out / ".pa-batch" / "runs" / "same"
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(run_dir.glob("re*.*"))
        if path.name.split(".")[0] in ("results", "rejects")
    }


def inputs(folder: Path, lines: int) -> list[tuple[str, Path, Path]]:
    """(label, extract, reference directory) of every input compared."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    sample_parquet = folder / "sample.parquet"
    as_text = {name: pa.string() for name in _header(SAMPLE)}
    sample = pa_csv.read_csv(  # a Parquet file cannot hold the sample's malformed records
        SAMPLE,
        convert_options=pa_csv.ConvertOptions(column_types=as_text),
        parse_options=pa_csv.ParseOptions(invalid_row_handler=lambda row: "skip"),
    )
    pq.write_table(sample, sample_parquet)
    generated = folder / f"generated_{lines}.parquet"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "extracts.py"), "--lines", str(lines),
         "--powder-share", "0.05", "--out", str(generated)],
        check=True, capture_output=True,
    )  # fmt: skip
    generated_csv = folder / f"generated_{lines}.csv"
    pa_csv.write_csv(pq.read_table(generated), generated_csv)
    return [
        ("sample, CSV", SAMPLE, SAMPLE_REFERENCE),
        ("sample, Parquet", sample_parquet, SAMPLE_REFERENCE),
        (f"generated {lines:,} lines, Parquet", generated, BENCH_REFERENCE),
        (f"generated {lines:,} lines, CSV", generated_csv, BENCH_REFERENCE),
    ]


def _header(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as stream:
        return stream.readline().strip().split(",")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ref", help="the git ref to compare against (a commit, tag or branch)")
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        before_source = export(args.ref, folder / "before")
        differing = 0
        for label, extract, reference in inputs(folder, args.lines):
            for output_format in ("parquet", "csv"):
                found = {}
                for side, source in (("before", before_source), ("after", ROOT)):
                    out = folder / "runs" / side / f"{extract.stem}_{output_format}"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    run(source, extract, reference, out, output_format)
                    found[side] = digests(out)
                same = found["before"] == found["after"] and len(found["after"]) == 2
                differing += not same
                files = ", ".join(f"{n} {d[:12]}" for n, d in found["after"].items())
                print(f"{'same' if same else 'DIFFERENT':9} {label} -> {output_format}: {files}")
                if not same:
                    print(f"          before: {found['before']}")
        return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
