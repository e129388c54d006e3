"""The commit: a run's files are written to a staging directory, then made the output
directory's current run in one atomic step; the history of committed runs is kept beside.

Layout of an output directory DIR::

    DIR/results.parquet  -> .pa-batch/current/results.parquet   (and rejects, summaries;
                                                                  a dask run: DIR/results/,
                                                                  a folder of parts)
    DIR/.pa-batch/current -> runs/<run id>                       (one atomic symlink swap)
    DIR/.pa-batch/runs/<run id>/                                 (a committed run; .committed
                                                                  marks it; --keep-runs newest)
    DIR/.pa-batch/failures/<run id>.json                         (what a failed run said)
    DIR/.pa-batch/staging-<run id>/                              (a run being written)
    DIR/.pa-batch/scratch-<run id>/                              (its spilled claim keys)
    DIR/.pa-batch/lock                                           (held while a run writes)

Files are written under staging, fsynced, and become visible only when ``current`` is
swapped to the new run with a single rename(2): a reader of DIR sees the previous run or the
new one, never a mix, and no temporary file ever sits under a final name. A failed or killed
run leaves at most a staging directory, an uncommitted ``runs/<run id>`` or a temporary
symlink behind, all invisible to readers of DIR; the next run removes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import cast

from pa_batch.errors import TRANSIENT, RunError, RunIdTaken, os_error_category
from pa_batch.io.formats import CSV, PARQUET
from pa_batch.io.storage import Location, StorePath

CONTROL_DIR = ".pa-batch"
COMMITTED_MARK = ".committed"  # in runs/<id>: the run was committed (current at some time)
DEFAULT_KEEP_RUNS = 30
KEEP_FAILURES = 30
FILE_MODE = 0o640  # never world-readable: these files hold PHI
DIR_MODE = 0o750
_TEMPORARY_LINK_SUFFIX = ".pa-batch-tmp"
_JSON_TEMPORARY_SUFFIX = ".tmp"  # .last_attempt.json.1a2b3c4d.tmp, while it is written
_JSON_TEMPORARY_GLOB = f".*.json.*{_JSON_TEMPORARY_SUFFIX}"
# every name a run's results or rejects may have in DIR: one file in either format, or a
# dataset of parts (the dask engine's)
TABLE_NAMES = (
    *(f"{table}.{fmt}" for table in ("results", "rejects") for fmt in (PARQUET, CSV)),
    "results",
    "rejects",
)
# every name an output directory may publish
PUBLISHED_NAMES = (
    *TABLE_NAMES,
    "summary.json",
    "summary.md",
    "summary.html",
)
RETIRED_PREFIX = "retired-"  # a run being removed by --keep-runs: out of runs/ first


class StagedFiles:
    """What a committer writes before its commit: files in a local staging directory."""

    staging: Path
    scratch: Path  # working files of this process (spilled claim keys), never published

    def path(self, name: str) -> Path:
        return self.staging / name

    def write_text(self, name: str, text: str) -> None:
        self.path(name).write_text(text, encoding="utf-8")

    def write_bytes(self, name: str, payload: bytes) -> None:
        self.path(name).write_bytes(payload)

    def write_json(self, name: str, payload: dict) -> None:
        self.write_text(name, json.dumps(payload, indent=2, sort_keys=False) + "\n")

    def dataset(self, name: str) -> Location:
        """A staged folder that the workers of a cluster write parts into."""
        folder = self.staging / name
        folder.mkdir(mode=DIR_MODE)
        return folder

    def shared_scratch(self) -> Location:
        """Working files the workers of a cluster write and read (never published)."""
        folder = self.scratch / "shared"
        folder.mkdir(parents=True, mode=DIR_MODE)
        return folder


class OutputDirectory(StagedFiles):
    """One run's outputs in DIR: a lock, a staging directory, and the atomic commit."""

    def __init__(
        self, out_dir: Path, run_id: str | None = None, keep_runs: int = DEFAULT_KEEP_RUNS
    ):
        self.out_dir = out_dir
        self.keep_runs = keep_runs
        self.control = out_dir / CONTROL_DIR
        self.run_id = run_id or new_run_id()  # exactly as given: summary.json keeps it
        self.name = run_dir_name(self.run_id)  # the run's directory name under runs/
        self.staging = self.control / f"staging-{self.name}"
        self.scratch = self.control / f"scratch-{self.name}"  # working files, never published
        self.warnings: list[str] = []  # cleanup problems after the commit: the run stands
        self._lock_file: int | None = None

    def open(self, names: list[str]) -> OutputDirectory:
        """Lock DIR for this run and stage it; ``names`` are the files it will publish.

        A file under one of those names that this tool did not write fails the run before
        anything is created: a run never replaces what it did not write.
        """
        if self.out_dir.is_symlink() and not self.out_dir.exists():
            raise RunError("output path is a broken symbolic link", file=str(self.out_dir))
        self.refuse_foreign_files(names)
        try:
            make_directories(self.control)
            self._lock_file = os.open(self.control / "lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as error:
            where = self.control if self.out_dir.is_dir() else self.out_dir
            raise _not_writable(error, where) from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_file)
            self._lock_file = None
            raise RunError(
                "another pa-batch run is writing to this output directory",
                file=str(self.out_dir),
                category=TRANSIENT,  # it will be done: a retry later goes through
            ) from None
        try:
            # first: a run directory a killed commit left uncommitted must not block its id
            self._remove_leftovers()
        except OSError as error:
            self.close()
            raise _not_writable(error, self.control) from None
        if (self.control / "runs" / self.name).exists():
            self.close()
            raise RunIdTaken(
                "a run with this id is already in the output directory; give a new --run-id",
                file=str(self.out_dir),
            )
        try:
            self.staging.mkdir(mode=DIR_MODE)
        except OSError as error:
            self.close()
            raise _not_writable(error, self.control) from None
        return self

    def refuse_foreign_files(self, names: list[str]) -> None:
        """Fail, naming it, if a name to publish is taken by something this tool did not write
        (or a table's name in the other layout: a reader of DIR would take it for ours)."""
        for name in [*names, *(table for table in TABLE_NAMES if table not in names)]:
            path = self.out_dir / name
            if not (path.exists() or path.is_symlink()):
                continue
            ours = path.is_symlink() and Path(os.readlink(path)) == _published_target(name)
            if not ours:
                raise RunError(
                    "a file pa-batch did not write is in the way of an output; move it or "
                    "choose another --out",
                    file=str(path),
                )

    def commit(self, names: list[str]) -> None:
        """Make the staged files the directory's current run, in one atomic step.

        ``names`` are published in order; the commit marker (summary.json) goes last.
        """
        self.refuse_foreign_files(names)
        for staged in self.staging.iterdir():  # the published names and the run's own copies
            _settle(staged)
        run_dir = self.control / "runs" / self.name
        run_dir.parent.mkdir(exist_ok=True, mode=DIR_MODE)
        os.rename(self.staging, run_dir)
        _fsync(run_dir.parent)
        # Name links first: each resolves through `current`, so a link new to this run
        # dangles until the swap below and every name changes at that one instant.
        for name in names:
            link = self.out_dir / name
            target = _published_target(name)
            if not (link.is_symlink() and Path(os.readlink(link)) == target):
                _atomic_symlink(target, link)
        _fsync(self.out_dir)
        previous = self._current_target()
        _atomic_symlink(Path("runs") / self.name, self.control / "current")
        # Committed: the directory serves the new run from here on. What follows is tidying;
        # a failure of it is a warning (the next run tidies again), never "nothing committed".
        del previous  # kept in the history until --keep-runs retires it
        try:
            _mark_committed(run_dir)
            _fsync(self.control)
            self._unlink_stale_names(names)
            self._retire_old_runs()
        except OSError as error:
            self.warnings.append(
                f"committed; tidying the output directory failed ({error.strerror or 'I/O error'})"
                "; the next run tidies it"
            )

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    def _current_target(self) -> Path | None:
        current = self.control / "current"
        return Path(os.readlink(current)) if current.is_symlink() else None

    def _remove_leftovers(self) -> None:
        """Staging of killed runs, run directories a killed commit never made current,
        half-made symlinks of a killed commit (we hold the lock). Committed runs stay."""
        current = self._current_target()
        for directory in (self.out_dir, self.control):
            for entry in directory.glob(f".*{_TEMPORARY_LINK_SUFFIX}"):
                if entry.is_symlink():
                    entry.unlink()
        for pattern in ("staging-*", "scratch-*", f"{RETIRED_PREFIX}*"):
            for entry in self.control.glob(pattern):
                shutil.rmtree(entry, ignore_errors=True)
        # a kill while a record was written atomically leaves its temporary behind
        for directory in (self.control, self.control / "failures"):
            for entry in directory.glob(_JSON_TEMPORARY_GLOB):
                entry.unlink(missing_ok=True)
        runs = self.control / "runs"
        if runs.is_dir():
            for entry in runs.iterdir():
                if (entry / COMMITTED_MARK).exists():
                    continue
                if current is not None and entry.name == current.name:
                    _mark_committed(entry)  # a commit killed between swap and mark
                else:
                    shutil.rmtree(entry, ignore_errors=True)

    def _retire_old_runs(self) -> None:
        """Keep the newest ``keep_runs`` committed runs (the current one always).

        A retired run leaves ``runs/`` in one rename before its files are removed: a kill
        while removing them leaves debris outside the history (the next run clears it),
        never a half-deleted run that still looks committed.
        """
        committed = cast(list[Path], committed_runs(self.control))  # local: Paths
        for entry in committed[self.keep_runs :]:
            if entry.name != self.name:
                retired = self.control / f"{RETIRED_PREFIX}{entry.name}"
                os.rename(entry, retired)
                shutil.rmtree(retired)

    def _unlink_stale_names(self, names: list[str]) -> None:
        """Links to files the current run does not have (e.g. results.csv after a Parquet run)."""
        prefix = Path(CONTROL_DIR) / "current"
        for link in self.out_dir.iterdir():
            if link.name in names or not link.is_symlink():
                continue
            if Path(os.readlink(link)).parent == prefix and not link.exists():
                link.unlink()


def committed_runs(control: Location) -> list[Location]:
    """The committed run directories under ``control``, newest first.

    Committed means marked, or current: a commit killed between the swap of ``current`` and
    its mark has made its run the one DIR serves (the next run marks it).
    """
    runs = control / "runs"
    if not runs.is_dir():
        return []
    current = current_run_name(control)
    newest = float("inf")  # current but not yet marked: the last committed

    def committed_at(entry: Location) -> float:
        at = committed_at_ns(entry)
        if at is None:
            return newest if entry.name == current else -1
        return at

    stamped = [(committed_at(entry), entry) for entry in runs.iterdir()]
    return [entry for at, entry in sorted(stamped, key=lambda p: p[0], reverse=True) if at >= 0]


def current_run_name(control: Location) -> str | None:
    """The id of the run ``control/current`` points to (a symbolic link; on an object store,
    the pointer object naming it), or None."""
    if isinstance(control, StorePath):
        try:
            name = (control / "current").read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return name if run_dir_name(name) == name else None  # a name, never a path
    try:
        return Path(os.readlink(control / "current")).name
    except OSError:
        return None


def _mark_committed(run_dir: Path) -> None:
    # the mark holds the commit time: the history's order comes from what the runs recorded,
    # which a copy (cp -r, a restore) keeps, not from file times, which it does not
    descriptor = os.open(run_dir / COMMITTED_MARK, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.write(descriptor, f"{time.time_ns()}\n".encode())
    finally:
        os.close(descriptor)


def committed_at_ns(run_dir: Location) -> int | None:
    """When ``run_dir`` was committed, as its mark records it; None if it is not marked. A
    mark without a time (written before marks held one, or cut short) gives its mtime."""
    mark = run_dir / COMMITTED_MARK
    try:
        text = mark.read_bytes()
        return int(text.strip())
    except FileNotFoundError:
        return None
    except ValueError:
        try:
            return mark.stat().st_mtime_ns
        except FileNotFoundError:
            return None


def failure_recorded_ns(record_path: Location) -> int:
    """When a failure record was written, as it records it (older records: the file's mtime)."""
    try:
        recorded = json.loads(record_path.read_bytes()).get("recorded_ns")
        if isinstance(recorded, int):
            return recorded
    except (ValueError, AttributeError):
        pass
    return record_path.stat().st_mtime_ns


def record_failure(out_dir: Location, record: dict) -> None:
    """Leave what a failed run said beside the history, for an operator without the console.

    Best effort: a directory that cannot take it (the very failure, perhaps) is left alone.
    ``record`` carries codes, paths and the one-line message, never a cell value.
    """
    failures = out_dir / CONTROL_DIR / "failures"
    if isinstance(failures, StorePath):
        record = {**record, "recorded_ns": time.time_ns()}
        with contextlib.suppress(OSError, RunError):  # a PUT replaces an object whole
            if (out_dir / CONTROL_DIR).is_dir():
                name = f"{run_dir_name(record['run_id'])}.json"
                (failures / name).write_text(json.dumps(record, indent=2) + "\n")
        return
    try:
        if not (out_dir / CONTROL_DIR).is_dir():  # no history to stand beside: nothing made
            return
        make_directories(failures)
        record = {**record, "recorded_ns": time.time_ns()}
        _write_json_atomically(failures / f"{run_dir_name(record['run_id'])}.json", record)
        for old in sorted(failures.glob("*.json"), key=failure_recorded_ns)[:-KEEP_FAILURES]:
            old.unlink()
    except OSError:
        return


LAST_ATTEMPT = "last_attempt.json"  # in DIR/.pa-batch: what the latest attempt came to
MAX_RUN_ID = 250
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def run_id_problem(run_id: str) -> str | None:
    """Why ``run_id`` cannot name a run, or None: any printable text of 1 to 250 characters
    (an orchestrator's own id, ``scheduled__2024-01-01T00:00:00+00:00``, is one)."""
    if not 0 < len(run_id) <= MAX_RUN_ID or not run_id.isprintable() or run_id != run_id.strip():
        return f"1 to {MAX_RUN_ID} printable characters, no leading or trailing space"
    return None


def run_dir_name(run_id: str) -> str:
    """The directory (and file) name of a run id under DIR/.pa-batch.

    An id of letters, digits, ``.``, ``_`` and ``-`` (at most 64, not starting with a mark) is
    its own name. Any other id is named by a readable slug, ``~`` and 16 hex digits of its
    SHA-256 (``scheduled__2024-01-01T00_00_00_00_00~3f2a...``): ``~`` never occurs in an id
    named by itself, so two ids never share a name (short of a 64-bit hash collision), and
    the name is safe on every file system and object store.
    """
    if _SAFE_NAME.fullmatch(run_id):
        return run_id
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._-")[:48] or "run"
    return f"{slug}~{hashlib.sha256(run_id.encode('utf-8')).hexdigest()[:16]}"


def write_last_attempt(out_dir: Location, record: dict) -> None:
    """``DIR/.pa-batch/last_attempt.json``: what the latest attempt came to, committed or
    failed, first run included (DIR and its control directory are made for it). Best
    effort: a directory that cannot take it (the very failure, perhaps) is left alone."""
    control = out_dir / CONTROL_DIR
    if isinstance(control, StorePath):
        with contextlib.suppress(OSError, RunError):
            (control / LAST_ATTEMPT).write_text(json.dumps(record, indent=2) + "\n")
        return
    try:
        make_directories(control)
        _write_json_atomically(control / LAST_ATTEMPT, record)
    except OSError:
        return


def _write_json_atomically(path: Path, record: dict) -> None:
    """``record`` as ``path``, 0640, replacing any earlier one in one rename: a reader sees
    the old record or the new, never half of one."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{_JSON_TEMPORARY_SUFFIX}")
    temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.chmod(temporary, FILE_MODE)
    os.replace(temporary, path)


def _not_writable(error: OSError, where: Path) -> RunError:
    return RunError(
        f"output directory is not writable ({error.strerror})",
        file=str(where),
        category=os_error_category(error),
    )


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def make_directories(path: Path) -> None:
    """``mkdir -p`` where every directory created gets DIR_MODE, parents included."""
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE)
        os.chmod(directory, DIR_MODE)  # the umask must not widen or narrow it


def _published_target(name: str) -> Path:
    return Path(CONTROL_DIR) / "current" / name


def _atomic_symlink(target: Path, link: Path) -> None:
    temporary = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}{_TEMPORARY_LINK_SUFFIX}")
    os.symlink(target, temporary)
    os.replace(temporary, link)


def _settle(path: Path) -> None:
    """A staged file (or a dataset's folder, and its parts) private and on disk."""
    if path.is_dir():
        for part in path.iterdir():
            _settle(part)
    os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
    _fsync(path)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
