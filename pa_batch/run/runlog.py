"""What a run tells its operator while it works: lines for people, or JSON lines for schedulers.

Text (the default): a progress bar (rich) on stderr when it is a terminal, the outcome
table on stdout, a failure as one line on stderr.

Every event carries counts, codes, file paths and row numbers only, never a cell value: the
fields are chosen here, by name, so a caller cannot hand member data to the log by accident.

``--log-format json`` writes one JSON object per line to stdout and nothing else there; the
last line is always ``run_finished`` with ``status`` and ``exit_code``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from pa_batch.core.outcomes import OUTCOMES
from pa_batch.errors import RunError

TEXT = "text"
JSON = "json"


class RunLog:
    """Receives the run's progress events and renders them in one format."""

    def __init__(
        self,
        fmt: str = TEXT,
        out: TextIO | None = None,
        err: TextIO | None = None,
        *,
        run_id: str = "",
    ):
        self.format = fmt
        self.run_id = run_id  # on every JSON line, from the first
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        # why stdout could not be written (a closed pipe, a full device), once it could not:
        # the run goes on, and ends as it would have; the CLI says so on stderr
        self.out_error: str | None = None
        # progress is for someone watching a terminal: a bar per input, records read so far,
        # elapsed time and rate; a captured log gets the outcome table or the one error line
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if fmt == TEXT and self._err.isatty():
            self._bar = Progress(
                TextColumn("pa-batch: {task.description}"),
                BarColumn(),
                TextColumn("{task.completed:>12,} records"),
                TimeElapsedColumn(),
                console=Console(file=self._err),
            )

    # --- events the pipeline reports ---------------------------------------------------

    def input_started(self, file: str, fmt: str) -> None:
        if self._bar is not None:
            self._bar.start()  # again for each input: a no-op while it runs
            self._task = self._bar.add_task(f"{file} ({fmt})", total=None)
        self._emit("input_started", {"file": file, "format": fmt})

    def batch_done(self, file: str, records: int, file_records: int, run_records: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=file_records)
        self._emit(
            "batch_done",
            {
                "file": file,
                "records": records,
                "file_records": file_records,
                "run_records": run_records,
            },
        )

    def input_finished(self, file: str, records: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=records, total=records)
        self._emit("input_finished", {"file": file, "records": records})

    def _stop_bar(self) -> None:
        """The bar ends before anything else is written: no line lands inside it."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    # --- how the run ends --------------------------------------------------------------

    def committed(self, *, out: str, rows_read: int, outcomes: dict, reject_rate: float) -> None:
        self._stop_bar()
        if self.format == JSON:
            self._json(
                "run_committed",
                {
                    "out": out,
                    "rows_read": rows_read,
                    **{name: int(outcomes[name]) for name in OUTCOMES},
                    "reject_rate": round(reject_rate, 6),
                },
            )
            return
        table = [f"pa-batch: committed {rows_read:,} records to {out}\n"]
        table += [f"  {name:<16}{outcomes[name]:>12,}\n" for name in OUTCOMES]
        self._write_out("".join(table))

    def over_threshold(self, reject_rate: float, limit: float) -> None:
        self._stop_bar()
        self._emit(
            "reject_rate_exceeded",
            {"reject_rate": round(reject_rate, 6), "max_reject_rate": limit},
            f"reject rate {reject_rate:.2%} exceeds --max-reject-rate {limit:.2%}",
            level="error",
        )

    def warning(self, message: str, *, file: str | None = None) -> None:
        self._stop_bar()
        if self.format == JSON:
            self._json("run_warning", {"warning": message, "file": file}, "warning")
        else:
            where = RunError(_one_line(message), file=file)
            self._err.write(f"pa-batch: warning: {where}\n")
            self._err.flush()

    def failed(self, message: str, *, file: str | None = None, column: str | None = None) -> None:
        self._stop_bar()
        if self.format == JSON:
            self._json("run_failed", {"error": message, "file": file, "column": column}, "error")
        else:
            where = RunError(_one_line(message), file=file, column=column)
            self._err.write(f"pa-batch: error: {where}\n")
            self._err.flush()

    def finished(self, status: str, exit_code: int) -> None:
        self._stop_bar()
        if self.format == JSON:
            self._json("run_finished", {"status": status, "exit_code": exit_code})

    # --- rendering ---------------------------------------------------------------------

    def _emit(self, event: str, fields: dict, text: str | None = None, level: str = "info") -> None:
        if self.format == JSON:
            self._json(event, fields, level)
        elif level == "error":
            self._err.write(f"pa-batch: {text}\n")
            self._err.flush()

    def _json(self, event: str, fields: dict, level: str = "info") -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = {"ts": stamp, "level": level, "event": event, "run_id": self.run_id, **fields}
        self._write_out(json.dumps(line, ensure_ascii=False) + "\n")

    def _write_out(self, text: str) -> None:
        """Write to stdout unless it has failed; a failure is kept, never raised: what the
        run does must not depend on whether anyone still reads its log."""
        if self.out_error is not None:
            return
        try:
            self._out.write(text)
            self._out.flush()
        except (OSError, ValueError) as error:  # ValueError: the stream was closed
            self.out_error = getattr(error, "strerror", None) or type(error).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())
