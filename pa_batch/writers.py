"""Writers: stream results and rejects to a staging directory, then commit atomically.

Layout of an output directory DIR::

    DIR/results.parquet  -> .pa-batch/current/results.parquet   (and rejects, summaries)
    DIR/.pa-batch/current -> runs/<run id>                       (one atomic symlink swap)
    DIR/.pa-batch/runs/<run id>/                                 (a complete committed run)
    DIR/.pa-batch/staging-<run id>/                              (a run being written)
    DIR/.pa-batch/lock                                           (held while a run writes)

Files are written under staging, fsynced, and become visible only when ``current`` is
swapped to the new run with a single rename(2): a reader of DIR sees the previous run or the
new one, never a mix, and no temporary file ever sits under a final name. A failed or killed
run leaves at most a staging directory, an uncommitted ``runs/<run id>`` or a temporary
symlink behind, all invisible to readers of DIR; the next run removes them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pa_batch.errors import RunError

PARQUET = "parquet"
CSV = "csv"
CONTROL_DIR = ".pa-batch"
FILE_MODE = 0o640  # never world-readable: these files hold PHI
DIR_MODE = 0o750
_SPREADSHEET_TRIGGER = r"^[=+\-@\t\r\n]"
_TEMPORARY_LINK_SUFFIX = ".pa-batch-tmp"


def to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """A frame as a table of exactly ``schema``: same types whatever the batch holds."""
    arrays = []
    for column in schema:
        values = frame[column.name]
        if pa.types.is_date32(column.type):
            days = values.to_numpy(dtype="datetime64[s]").astype("datetime64[D]")
            arrays.append(pa.array(days, type=pa.date32(), mask=values.isna().to_numpy()))
        elif pa.types.is_string(column.type):
            arrays.append(
                pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
            )
        else:
            arrays.append(pa.array(values, type=column.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


def neutralize_for_spreadsheets(table: pa.Table) -> pa.Table:
    """OWASP CSV-injection defence: a text cell starting with = + - @ tab CR LF gets a ' prefix."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type):
            risky = pc.match_substring_regex(column, _SPREADSHEET_TRIGGER)
            column = pc.if_else(
                pc.fill_null(risky, False), pc.binary_join_element_wise("'", column, ""), column
            )
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=table.schema)


class TableWriter:
    """Streams batches of one output table (Parquet or CSV) with a fixed schema."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: str):
        self.path = path
        self.schema = schema
        self.format = fmt
        self.rows = 0
        if fmt == PARQUET:
            self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        else:
            self._writer = pa_csv.CSVWriter(
                path, schema, write_options=pa_csv.WriteOptions(quoting_style="needed")
            )

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        table = to_arrow(frame, self.schema)
        if self.format == CSV:
            table = neutralize_for_spreadsheets(table)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()


class OutputDirectory:
    """One run's outputs in DIR: a lock, a staging directory, and the atomic commit."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.control = out_dir / CONTROL_DIR
        self.run_id = uuid.uuid4().hex[:16]
        self.staging = self.control / f"staging-{self.run_id}"
        self._lock_file: int | None = None

    def open(self) -> OutputDirectory:
        try:
            self.control.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            self._lock_file = os.open(self.control / "lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as error:
            raise RunError(
                f"output directory is not writable ({error.strerror})", file=str(self.out_dir)
            ) from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_file)
            self._lock_file = None
            raise RunError(
                "another pa-batch run is writing to this output directory", file=str(self.out_dir)
            ) from None
        self._remove_leftovers()
        self.staging.mkdir(mode=DIR_MODE)
        return self

    def path(self, name: str) -> Path:
        return self.staging / name

    def write_text(self, name: str, text: str) -> None:
        self.path(name).write_text(text, encoding="utf-8")

    def write_json(self, name: str, payload: dict) -> None:
        self.write_text(name, json.dumps(payload, indent=2, sort_keys=False) + "\n")

    def commit(self, names: list[str]) -> None:
        """Make the staged files the directory's current run, in one atomic step.

        ``names`` are published in order; the commit marker (summary.json) goes last.
        """
        for name in names:
            staged = self.path(name)
            os.chmod(staged, FILE_MODE)
            _fsync(staged)
        run_dir = self.control / "runs" / self.run_id
        run_dir.parent.mkdir(exist_ok=True, mode=DIR_MODE)
        os.rename(self.staging, run_dir)
        _fsync(run_dir.parent)
        # Name links first: each resolves through `current`, so a link new to this run
        # dangles until the swap below and every name changes at that one instant.
        for name in names:
            link = self.out_dir / name
            target = Path(CONTROL_DIR) / "current" / name
            if not (link.is_symlink() and Path(os.readlink(link)) == target):
                _atomic_symlink(target, link)
        _fsync(self.out_dir)
        previous = self._current_target()
        _atomic_symlink(Path("runs") / self.run_id, self.control / "current")
        _fsync(self.control)
        self._unlink_stale_names(names)
        if previous is not None and previous.name != self.run_id:
            shutil.rmtree(self.control / "runs" / previous.name, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def close(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    def _current_target(self) -> Path | None:
        current = self.control / "current"
        return Path(os.readlink(current)) if current.is_symlink() else None

    def _remove_leftovers(self) -> None:
        """Staging of killed runs, committed runs no longer current, half-made symlinks of a
        killed commit (we hold the lock)."""
        current = self._current_target()
        for directory in (self.out_dir, self.control):
            for entry in directory.glob(f".*{_TEMPORARY_LINK_SUFFIX}"):
                if entry.is_symlink():
                    entry.unlink()
        for entry in self.control.glob("staging-*"):
            shutil.rmtree(entry, ignore_errors=True)
        runs = self.control / "runs"
        if runs.is_dir():
            for entry in runs.iterdir():
                if current is None or entry.name != current.name:
                    shutil.rmtree(entry, ignore_errors=True)

    def _unlink_stale_names(self, names: list[str]) -> None:
        """Links to files the current run does not have (e.g. results.csv after a Parquet run)."""
        prefix = Path(CONTROL_DIR) / "current"
        for link in self.out_dir.iterdir():
            if link.name in names or not link.is_symlink():
                continue
            if Path(os.readlink(link)).parent == prefix and not link.exists():
                link.unlink()


def _atomic_symlink(target: Path, link: Path) -> None:
    temporary = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}{_TEMPORARY_LINK_SUFFIX}")
    os.symlink(target, temporary)
    os.replace(temporary, link)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
