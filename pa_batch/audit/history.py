"""A run directory's history: the committed runs kept under DIR/.pa-batch/runs and the
failure records beside them. Reads only what runs wrote; never re-decides anything.

Every problem of a history a reading command meets (a damaged summary, a truncated results
file, a run retired while it is read) is a RunError: one line, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pa_batch.core.outcomes import OUTCOMES
from pa_batch.errors import RunError
from pa_batch.io.commit import (
    CONTROL_DIR,
    PUBLISHED_NAMES,
    committed_at_ns,
    committed_runs,
    current_run_name,
    failure_recorded_ns,
    run_dir_name,
)
from pa_batch.io.storage import Location, arrow_source, locate
from pa_batch.io.tables import table_files

SUMMARY_JSON = "summary.json"
DAMAGED = "damaged"


@dataclass(frozen=True)
class RunEntry:
    id: str
    finished_at: str
    status: str
    current: bool
    recorded_ns: int  # when the commit mark or failure record was written: the order of runs
    # a committed run's summary; a failed or damaged run has none
    inputs: int = 0
    rows_read: int | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    policy_version: str = ""
    error: str = ""  # a failed run's one-line error, or what is damaged


def list_runs(out_dir: Location) -> list[RunEntry]:
    """DIR's committed runs and failed runs, newest first; a run whose summary cannot be read
    is listed as damaged, never left out."""
    control = out_dir / CONTROL_DIR
    if not control.is_dir():
        raise RunError("not a pa-batch output directory (no .pa-batch inside)", file=str(out_dir))
    current_id = current_run_name(control)
    entries = []
    for order, run_dir in enumerate(reversed(committed_runs(control))):
        try:
            entries.append(_committed_entry(run_dir, run_dir.name == current_id, order))
        except RunError as error:
            entries.append(_damaged_entry(run_dir, run_dir.name == current_id, order, error))
    for record_path in _failure_records(control / "failures"):
        entries.append(_failure_entry(record_path))
    return sorted(entries, key=lambda e: e.recorded_ns, reverse=True)


def _failure_records(failures: Location) -> list[Location]:
    if not failures.is_dir():
        return []
    return [entry for entry in failures.iterdir() if entry.name.endswith(".json")
            and not entry.name.startswith(".")]  # fmt: skip


def _committed_entry(run_dir: Location, current: bool, order: int) -> RunEntry:
    summary = read_summary(run_dir)
    try:
        run, counts = summary["run"], summary["counts"]
        return RunEntry(
            id=str(run.get("id") or run_dir.name),  # the id as given, not its directory name
            finished_at=str(run.get("finished_at") or run.get("started_at", "")),
            status=str(run.get("status", "committed")),
            inputs=len(summary.get("inputs", [])),
            rows_read=int(counts["rows_read"]),
            outcomes={o: int(counts[o]) for o in OUTCOMES},
            policy_version=str(summary.get("policy", {}).get("version", "")),
            current=current,
            recorded_ns=_recorded_ns(run_dir, order),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _damaged(run_dir / SUMMARY_JSON, "not the shape pa-batch writes") from None


def _damaged_entry(run_dir: Location, current: bool, order: int, error: RunError) -> RunEntry:
    return RunEntry(
        id=run_dir.name,
        finished_at="",
        status=DAMAGED,
        current=current,
        recorded_ns=_recorded_ns(run_dir, order),
        error=error.message,
    )


def _recorded_ns(run_dir: Location, order: int) -> int:
    """When the run was committed, as its mark records it (a current run not yet marked:
    after every other)."""
    try:
        at = committed_at_ns(run_dir)
    except OSError:
        at = None
    return 1 << 62 | order if at is None else at


def _failure_entry(record_path: Location) -> RunEntry:
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError
        run_id, failed_at, error = (
            str(record.get("run_id") or record_path.stem),
            str(record.get("failed_at") or ""),
            str(record.get("error") or ""),
        )
        status = "failed"
    except (OSError, ValueError):
        run_id, failed_at, error, status = record_path.stem, "", "unreadable record", DAMAGED
    try:
        recorded = failure_recorded_ns(record_path)
    except OSError:
        recorded = 0
    return RunEntry(
        id=run_id,
        finished_at=failed_at,
        status=status,
        current=False,
        recorded_ns=recorded,
        error=" ".join(error.split()),
    )


def runs_table(entries: list[RunEntry]) -> str:
    header = ["run id", "finished at", "status", "inputs", "rows read", *OUTCOMES, "policy"]
    rows = [
        [
            entry.id + (" *" if entry.current else ""),
            entry.finished_at,
            entry.status,
            str(entry.inputs) if entry.rows_read is not None else "",
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
    problems = [entry for entry in entries if entry.error]
    for entry in problems:
        lines.append(f"{entry.id} ({entry.status}): {entry.error}")
    return "\n".join(lines)


def _is_run_directory(path: Location) -> bool:
    return path.is_dir() and ((path / CONTROL_DIR).is_dir() or (path / SUMMARY_JSON).exists())


def _history_run(argument: str, base: Location) -> Location | None:
    """The committed run ``argument`` names by id in ``base``'s history, or None."""
    if not argument:
        return None
    candidate = base / CONTROL_DIR / "runs" / run_dir_name(argument)
    if candidate in committed_runs(base / CONTROL_DIR):
        return candidate
    return None


def resolve_run(argument: str, base: Location | None = None) -> Location:
    """The run directory an argument names: an output directory (its current run), a run's
    own directory (DIR/.pa-batch/runs/<id>), or a run id kept in ``base``'s history.

    With a history to look in, an id is looked up there first; an argument that names both
    a run there and a pa-batch directory here is refused as ambiguous.
    """
    path = locate(argument)
    if base is not None:
        by_id = _history_run(argument, base)
        if by_id is not None:
            if _is_run_directory(path):
                raise RunError(
                    f"names both a run id in {base} and a directory here; write ./{argument} "
                    "for the directory, or the run's own directory for the run",
                    file=argument,
                )
            return _resolved(by_id)
    if path.is_dir():
        current = _current_run(path)
        if current is not None:
            return current  # the run's own directory: its kept copies too
        if (path / SUMMARY_JSON).exists():
            return _resolved(path)
        if (path / CONTROL_DIR).is_dir():
            raise RunError("the output directory has no committed run", file=argument)
        raise RunError("not a pa-batch output directory (no summary.json)", file=argument)
    if base is not None:
        raise RunError(f"no committed run with this id in {base}", file=argument)
    raise RunError("no such output directory or run", file=argument)


def _resolved(run_dir: Location) -> Location:
    return run_dir.resolve() if isinstance(run_dir, Path) else run_dir


def _current_run(out_dir: Location) -> Location | None:
    """The run directory DIR's ``current`` names (a link; on a store, the pointer), if its
    summary is there."""
    control = out_dir / CONTROL_DIR
    if isinstance(control, Path):
        current: Location = control / "current"
        if not current.is_symlink():
            return None
    else:
        name = current_run_name(control)
        if name is None:
            return None
        current = control / "runs" / name
    return _resolved(current) if (current / SUMMARY_JSON).exists() else None


def refuse_history_path(path: Path, option: str = "--out") -> None:
    """A file a reading command writes must never land in a run's history, in a run's own
    directory, or under a name an output directory publishes: it would replace a committed
    run's file, or stand in the way of the next run."""
    absolute = Path(os.path.abspath(path))
    real = Path(os.path.realpath(path))  # a published name resolves into .pa-batch
    for where in (absolute, real):
        if CONTROL_DIR in where.parts:
            raise RunError(
                f"inside an output directory's history ({CONTROL_DIR}); choose another {option}",
                file=str(path),
            )
        if (where.parent / SUMMARY_JSON).exists() and (
            (where.parent / ".committed").exists() or (where.parent / "policy.toml").exists()
        ):
            raise RunError(f"inside a run's directory; choose another {option}", file=str(path))
        if where.name in PUBLISHED_NAMES and (where.parent / CONTROL_DIR).is_dir():
            raise RunError(
                f"a name the output directory publishes; choose another {option}",
                file=str(path),
            )


def _damaged(path: Location, problem: str) -> RunError:
    return RunError(f"damaged: {problem}", file=str(path))


def read_summary(run_dir: Location) -> dict:
    """A committed run's summary.json, checked to be a JSON object naming the run."""
    path = run_dir / SUMMARY_JSON
    with reading_run(run_dir):
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _damaged(path, "not JSON") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("run"), dict):
        raise _damaged(path, "not the shape pa-batch writes")
    return summary


@contextmanager
def reading_run(run_dir: Location) -> Iterator[None]:
    """Reading a committed run's files: a run retired meanwhile (--keep-runs of a run that
    committed since), or a file that cannot be read, fails in one line."""
    retired = RunError(
        "the run was retired from the history while it was read (--keep-runs of a newer run)",
        file=str(run_dir),
    )
    try:
        yield
    except RunError:
        if not run_dir.exists():
            raise retired from None
        raise
    except FileNotFoundError as error:
        if not run_dir.exists():
            raise retired from None
        raise RunError("a file of the run is missing", file=str(error.filename)) from None
    except OSError as error:
        raise RunError(
            f"cannot read the run ({error.strerror or type(error).__name__})",
            file=str(error.filename or run_dir),
        ) from None


def read_claim_rows(run_dir: Location, name: str, claim_id: str) -> pd.DataFrame:
    """The rows of a committed run's ``results`` or ``rejects`` whose claim_id is
    ``claim_id`` — and, for a malformed record, whose value contains it — as
    ``read_run_table`` would give them, read a row group or block at a time: memory follows
    one group and the claim's rows, not the file. A Parquet row group whose claim_id
    statistics exclude the id is skipped unread. A dataset's parts are read in turn."""
    with reading_run(run_dir):
        files = _table_files(run_dir, name)
        if files[0].name.endswith(".parquet"):
            return pd.concat(
                [_read_parquet(path, _parquet_claim_rows, claim_id) for path in files],
                ignore_index=True,
            )
        tables = []
        for path in files:
            try:
                tables.append(_csv_claim_rows(path, claim_id))
            except (pa.ArrowException, ValueError, KeyError):
                raise _damaged(path, "not a readable CSV file of this run") from None
    frame = pa.concat_tables(tables).to_pandas()
    frame = frame.apply(lambda cells: cells.str.replace(_SPREADSHEET_GUARD, "", regex=True))
    return frame.replace({"": None})


def _table_files(run_dir: Location, name: str) -> list[Location]:
    """The run's ``name`` table's files (one, or a dataset's parts); fails if it has none."""
    files = table_files(run_dir, name)
    if not files:
        if not run_dir.exists():
            raise FileNotFoundError(2, "retired", str(run_dir / name))
        raise RunError(f"no {name} file in the run", file=str(run_dir))
    return files


def _read_parquet(path: Location, read: Callable[..., pa.Table], *args: Any) -> pd.DataFrame:
    """``read(path, *args)`` as a frame; a file that is no Parquet fails naming it."""
    try:
        # dates as datetime64, not Python dates: those stop at year 9999
        return read(path, *args).to_pandas(date_as_object=False)
    except (pa.ArrowException, ValueError, OverflowError, KeyError) as error:
        problem = f"not a readable Parquet file ({type(error).__name__})"
        raise _damaged(path, problem) from None


def _claim_mask(keys: pa.Table, claim_id: str, written: str | None = None) -> pa.Array:
    """Rows whose claim_id cell is ``written`` (the id as the file wrote it; by default the
    id itself), or whose value cell contains the id."""
    mask = pc.equal(keys["claim_id"].cast(pa.string()), written or claim_id)
    if "value" in keys.column_names:
        mask = pc.or_kleene(mask, pc.match_substring(keys["value"].cast(pa.string()), claim_id))
    return pc.fill_null(mask, False)


def _parquet_claim_rows(path: Location, claim_id: str) -> pa.Table:
    file = pq.ParquetFile(arrow_source(path))
    names = file.schema_arrow.names
    keys = ["claim_id", *(["value"] if "value" in names else [])]
    position = names.index("claim_id")
    found = []
    for group in range(file.num_row_groups):
        if keys == ["claim_id"] and _excluded(file.metadata.row_group(group), position, claim_id):
            continue
        mask = _claim_mask(file.read_row_group(group, columns=keys), claim_id)
        if pc.any(mask).as_py():
            found.append(file.read_row_group(group).filter(mask))
    return pa.concat_tables(found) if found else file.schema_arrow.empty_table()


def _excluded(group: pq.RowGroupMetaData, position: int, claim_id: str) -> bool:
    """The group's exact claim_id statistics put ``claim_id`` outside it."""
    stats = group.column(position).statistics
    if stats is None or not stats.has_min_max:
        return False
    if not (
        getattr(stats, "is_min_value_exact", False) and getattr(stats, "is_max_value_exact", False)
    ):
        return False
    low, high = stats.min, stats.max
    if isinstance(low, bytes) or isinstance(high, bytes):
        return False
    return claim_id < low or claim_id > high


def _csv_claim_rows(path: Location, claim_id: str) -> pa.Table:
    header = pa_csv.open_csv(
        arrow_source(path), read_options=pa_csv.ReadOptions(block_size=1 << 16)
    )
    as_text = {field.name: pa.string() for field in header.schema}
    header.close()
    reader = pa_csv.open_csv(
        arrow_source(path),
        read_options=pa_csv.ReadOptions(block_size=1 << 22, use_threads=False),
        convert_options=pa_csv.ConvertOptions(
            column_types=as_text, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )
    found = []
    schema = pa.schema([(name, pa.string()) for name in as_text])
    # compared as written: a claim id the guard protects ("=x") was written "'=x"
    written = f"'{claim_id}" if re.match(_SPREADSHEET_GUARD, f"'{claim_id}") else claim_id
    for batch in reader:
        keys = pa.table(
            {name: batch.column(name) for name in ("claim_id", "value") if name in schema.names}
        )
        mask = _claim_mask(keys, claim_id, written)
        if pc.any(mask).as_py():
            found.append(pa.Table.from_batches([batch]).filter(mask))
    return pa.concat_tables(found) if found else schema.empty_table()


# the spreadsheet guard of CSV outputs: a ' put before a leading = + - @ tab CR LF or '
_SPREADSHEET_GUARD = r"^'(?=[=+\-@\t\r\n'])"


def read_run_table(run_dir: Location, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A committed run's ``results`` or ``rejects``, whichever format and layout it wrote
    (one file, or a dataset's parts in order). From CSV, every cell is text (empty:
    missing) with the spreadsheet guard undone, so a claim reads the same from either
    format. A damaged file fails naming it."""
    with reading_run(run_dir):
        files = _table_files(run_dir, name)
        if files[0].name.endswith(".parquet"):

            def read(path: Location) -> pa.Table:
                return pq.read_table(arrow_source(path), columns=columns)

            return pd.concat([_read_parquet(path, read) for path in files], ignore_index=True)
        frames = []
        for path in files:
            try:
                frames.append(
                    pd.read_csv(
                        arrow_source(path), dtype="str", keep_default_na=False, usecols=columns
                    )
                )
            except (
                pd.errors.ParserError,
                pd.errors.EmptyDataError,
                UnicodeDecodeError,
                ValueError,
            ):
                raise _damaged(path, "not a readable CSV file of this run") from None
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.apply(lambda cells: cells.str.replace(_SPREADSHEET_GUARD, "", regex=True))
    return frame.replace({"": None})
