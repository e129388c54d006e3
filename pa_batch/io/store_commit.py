"""The commit on an object store (``--out s3://...``), where there are no symbolic links and
no atomic renames: a run's objects go under its own prefix, and one object written last, the
pointer, makes it the current run.

Layout of an output prefix DIR on a store::

    DIR/.pa-batch/current                   the current run's directory name: written last,
                                            in one PUT, it is the commit
    DIR/.pa-batch/runs/<run id>/...         a run's results, rejects, summaries and its own
                                            copies of the policy and reference files
    DIR/.pa-batch/runs/<run id>/.committed  marks a run that was current at some time
    DIR/.pa-batch/failures/<run id>.json    what a failed run said
    DIR/.pa-batch/last_attempt.json         what the latest attempt came to

A run is written to a local staging directory first (the outputs stream there as on a local
DIR), then uploaded object by object under ``runs/<run id>/``, then the pointer is put. A PUT
is atomic, so a reader that follows the pointer sees the old run or the new one, never half:
a run killed before the pointer leaves objects no pointer names and no mark (never listed,
removed by a later run once they are older than ``STALE_SECONDS``). A run killed between the
pointer and the mark is committed (current counts as committed) and the next run marks it.
A retired run loses its mark first, so a kill while its objects are deleted leaves an
uncommitted prefix, never a half run in the history.

Stores give no lock: two runs writing one DIR at once each stay whole, and the pointer
written last wins. The store's conditional PUT (if-none-match), where it has one, is not
used: pyarrow's filesystems do not expose it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import cast

import pyarrow.fs as pafs

from pa_batch.errors import RunError, RunIdTaken
from pa_batch.io.commit import (
    COMMITTED_MARK,
    CONTROL_DIR,
    DEFAULT_KEEP_RUNS,
    OutputDirectory,
    StagedFiles,
    committed_runs,
    current_run_name,
    new_run_id,
    run_dir_name,
)
from pa_batch.io.storage import Location, StorePath, remove_tree, store_errors

POINTER = "current"
STALE_SECONDS = 24 * 3600  # an uncommitted run's objects older than this are a killed run's
_UPLOAD_CHUNK = 1 << 24


class StoreOutput(StagedFiles):
    """One run's outputs under an object-store prefix: local staging, upload, the pointer."""

    def __init__(
        self, out_dir: StorePath, run_id: str | None = None, keep_runs: int = DEFAULT_KEEP_RUNS
    ):
        self.out_dir = out_dir
        self.keep_runs = keep_runs
        self.control = out_dir / CONTROL_DIR
        self.run_id = run_id or new_run_id()
        self.name = run_dir_name(self.run_id)
        self.run_prefix = self.control / "runs" / self.name
        self._local = Path(tempfile.mkdtemp(prefix="pa-batch-store-"))
        self.staging = self._local / "staging"
        self.scratch = self._local / "scratch"  # working files (spilled claim keys): local
        self.warnings: list[str] = []

    def open(self, names: list[str]) -> StoreOutput:
        if (
            self.name == current_run_name(self.control)
            or (self.run_prefix / COMMITTED_MARK).exists()
        ):
            raise RunIdTaken(
                "a run with this id is already in the output directory; give a new --run-id",
                file=str(self.out_dir),
            )
        self._remove_stale_runs()
        # an uncommitted run of this very id (a retry after a kill before the pointer) is
        # no run: its objects are replaced
        remove_tree(self.run_prefix)
        self.staging.mkdir()
        return self

    def dataset(self, name: str) -> StorePath:
        """Workers write a dataset's parts under the run's prefix themselves: not staged."""
        return self.run_prefix / name

    def shared_scratch(self) -> StorePath:
        """Working files of the workers, under the run's prefix (removed before the commit
        by their user; a killed run's go with its stale prefix)."""
        return self.run_prefix / ".scratch"

    def commit(self, names: list[str]) -> None:
        """Upload every staged file under the run's prefix, then put the pointer: the
        commit. ``names`` (the published files) go last but one, summary.json last; a
        dataset the workers wrote is already there."""
        local = {path.name for path in self.staging.iterdir()}
        staged = sorted(local.difference(names))
        for name in [*staged, *(name for name in names if name in local)]:
            self._upload(self.staging / name, self.run_prefix / name)
        (self.control / POINTER).write_text(f"{self.name}\n")
        # Committed: DIR's pointer names the new run from here on. What follows is tidying;
        # a failure of it is a warning (the next run tidies again).
        try:
            mark_committed(self.run_prefix)
            self._retire_old_runs()
        except (OSError, RunError):
            self.warnings.append(
                "committed; tidying the output directory failed; the next run tidies it"
            )

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        # what was uploaded is no run (no pointer names it, no mark); if it cannot be
        # removed now, a later run removes it once stale
        with contextlib.suppress(OSError, RunError):
            remove_tree(self.run_prefix)

    def close(self) -> None:
        shutil.rmtree(self._local, ignore_errors=True)

    def _upload(self, source: Path, target: StorePath) -> None:
        with source.open("rb") as reading, target.open("wb") as writing:
            shutil.copyfileobj(reading, writing, _UPLOAD_CHUNK)

    def _remove_stale_runs(self) -> None:
        """Objects of runs killed before their pointer (no mark, not current), once stale."""
        runs = self.control / "runs"
        if not runs.is_dir():
            return
        current = current_run_name(self.control)
        newest_allowed = time.time_ns() - STALE_SECONDS * 10**9
        for entry in runs.iterdir():
            if (entry / COMMITTED_MARK).exists():
                continue
            if entry.name == current:  # a commit killed between its pointer and its mark
                mark_committed(entry)
                continue
            with store_errors(entry.url):
                objects = entry.filesystem.get_file_info(
                    pafs.FileSelector(entry.path, recursive=True)
                )
            if all((info.mtime_ns or 0) < newest_allowed for info in objects):
                remove_tree(entry)

    def _retire_old_runs(self) -> None:
        """Keep the newest ``keep_runs`` committed runs (the current one always); a retired
        run's mark goes first, then its objects."""
        committed = cast(list[StorePath], committed_runs(self.control))  # a store's
        for entry in committed[self.keep_runs :]:
            if entry.name != self.name:
                mark = entry / COMMITTED_MARK
                with store_errors(mark.url):
                    mark.filesystem.delete_file(mark.path)
                remove_tree(entry)


def output_for(
    out_dir: Location, run_id: str | None, keep_runs: int
) -> OutputDirectory | StoreOutput:
    """The committer of ``out_dir``: the atomic-rename commit of a local (or mounted)
    directory, or the pointer commit of an object store. Both take the same calls."""
    if isinstance(out_dir, StorePath):
        return StoreOutput(out_dir, run_id, keep_runs)
    return OutputDirectory(out_dir, run_id, keep_runs)


def mark_committed(run_prefix: StorePath) -> None:
    (run_prefix / COMMITTED_MARK).write_text(f"{time.time_ns()}\n")
