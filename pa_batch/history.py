"""A run directory's history: the committed runs kept under DIR/.pa-batch/runs and the
failure records beside them. Reads only what runs wrote; never re-decides anything."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from pa_batch.errors import RunError
from pa_batch.policy import OUTCOMES
from pa_batch.writers import COMMITTED_MARK, CONTROL_DIR, committed_runs


@dataclass(frozen=True)
class RunEntry:
    id: str
    finished_at: str
    status: str
    inputs: int
    rows_read: int | None
    outcomes: dict[str, int]
    policy_version: str
    current: bool
    recorded_ns: int  # when the commit mark or failure record was written: the order of runs


def list_runs(out_dir: Path) -> list[RunEntry]:
    """DIR's committed runs and failed runs, newest first."""
    control = out_dir / CONTROL_DIR
    if not control.is_dir():
        raise RunError("not a pa-batch output directory (no .pa-batch inside)", file=str(out_dir))
    current = control / "current"
    current_id = current.resolve().name if current.is_symlink() else None
    entries = []
    for run_dir in committed_runs(control):
        try:
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a run directory without its summary is no committed run
        run = summary.get("run", {})
        entries.append(
            RunEntry(
                id=run_dir.name,
                finished_at=run.get("finished_at") or run.get("started_at", ""),
                status=run.get("status", "committed"),
                inputs=len(summary.get("inputs", [])),
                rows_read=summary["counts"]["rows_read"],
                outcomes={o: summary["counts"][o] for o in OUTCOMES},
                policy_version=summary.get("policy", {}).get("version", ""),
                current=run_dir.name == current_id,
                recorded_ns=(run_dir / COMMITTED_MARK).stat().st_mtime_ns,
            )
        )
    for record_path in (control / "failures").glob("*.json"):
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        entries.append(
            RunEntry(
                id=record.get("run_id", record_path.stem),
                finished_at=record.get("failed_at", ""),
                status="failed",
                inputs=0,
                rows_read=None,
                outcomes={},
                policy_version="",
                current=False,
                recorded_ns=record_path.stat().st_mtime_ns,
            )
        )
    return sorted(entries, key=lambda e: e.recorded_ns, reverse=True)


def runs_table(entries: list[RunEntry]) -> str:
    header = ["run id", "finished at", "status", "inputs", "rows read", *OUTCOMES, "policy"]
    rows = [
        [
            entry.id + (" *" if entry.current else ""),
            entry.finished_at,
            entry.status,
            str(entry.inputs) if entry.status != "failed" else "",
            f"{entry.rows_read:,}" if entry.rows_read is not None else "",
            *[f"{entry.outcomes[o]:,}" if entry.outcomes else "" for o in OUTCOMES],
            entry.policy_version,
        ]
        for entry in entries
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    lines.append("* the run DIR's names show now" if entries else "no runs")
    return "\n".join(lines)


def resolve_run(argument: str, base: Path | None = None) -> Path:
    """The run directory an argument names: an output directory (its current run), a run's
    own directory (DIR/.pa-batch/runs/<id>), or a run id kept in ``base``'s history."""
    path = Path(argument)
    if path.is_dir():
        current = path / CONTROL_DIR / "current"
        if current.is_symlink() and (current / "summary.json").exists():
            return current.resolve()  # the run's own directory: its kept copies too
        if (path / "summary.json").exists():
            return path.resolve()
        if (path / CONTROL_DIR).is_dir():
            raise RunError("the output directory has no committed run", file=argument)
        raise RunError("not a pa-batch output directory (no summary.json)", file=argument)
    if base is not None:
        candidate = base / CONTROL_DIR / "runs" / argument
        if (candidate / "summary.json").exists() and candidate in committed_runs(
            base / CONTROL_DIR
        ):
            return candidate.resolve()
        raise RunError(f"no committed run with this id in {base}", file=argument)
    raise RunError("no such output directory or run", file=argument)


# the spreadsheet guard of CSV outputs: a ' put before a leading = + - @ tab CR LF
_SPREADSHEET_GUARD = r"^'(?=[=+\-@\t\r\n])"


def read_run_table(run_dir: Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A committed run's ``results`` or ``rejects``, whichever format it wrote. From CSV,
    every cell is text (empty: missing) with the spreadsheet guard undone, so a claim reads
    the same from either format."""
    parquet, text = run_dir / f"{name}.parquet", run_dir / f"{name}.csv"
    if parquet.exists():
        return pq.read_table(parquet, columns=columns).to_pandas()
    if not text.exists():
        raise RunError(f"no {name} file in the run", file=str(run_dir))
    frame = pd.read_csv(text, dtype="str", keep_default_na=False, usecols=columns)
    frame = frame.apply(lambda cells: cells.str.replace(_SPREADSHEET_GUARD, "", regex=True))
    return frame.replace({"": None})
