"""The CLI's rendering of a run's events (``events.Events``): lines for people, or JSON lines
for schedulers.

Text (the default): a progress bar (rich) on stderr when it is a terminal, the outcome table
on stdout, warnings and a failure as one line each on stderr.

``--log-format json`` writes one JSON object per event to stdout and nothing else there;
each has ``ts`` (UTC), ``level``, ``event``, ``run_id`` and ``message``; the last line is
always ``run_finished`` with ``status``, ``exit_code``, ``counts`` and ``summary``.

If stdout cannot be written (a closed pipe, a full device), the run goes on and ends as it
would have; ``out_error`` says why, and the CLI says so on stderr.
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
from pa_batch.runner.events import Event

TEXT = "text"
JSON = "json"
_PROGRESS = ("input_started", "batch_done", "input_finished")


class RunLog:
    """Renders the events of one run in one format: call it with each event."""

    def __init__(self, fmt: str = TEXT, out: TextIO | None = None, err: TextIO | None = None):
        self.format = fmt
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self.out_error: str | None = None
        # progress is for someone watching a terminal: a bar per input, records read so far
        # and elapsed time; a captured log gets the outcome table or the one error line
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

    def __call__(self, event: Event) -> None:
        if self.format == JSON:
            self._json(event)
        elif event["event"] in _PROGRESS:
            self._progress(event)
        else:
            self._stop_bar()  # the bar ends before anything else is written
            self._text(event)

    # --- text ------------------------------------------------------------------------------

    def _progress(self, event: Event) -> None:
        if self._bar is None:
            return
        if event["event"] == "input_started":
            self._bar.start()  # again for each input: a no-op while it runs
            self._task = self._bar.add_task(f"{event['file']} ({event['format']})", total=None)
        elif self._task is not None and event["event"] == "batch_done":
            self._bar.update(self._task, completed=event["file_records"])
        elif self._task is not None:
            self._bar.update(self._task, completed=event["records"], total=event["records"])

    def _text(self, event: Event) -> None:
        name = event["event"]
        if name == "run_committed":
            table = [f"pa-batch: committed {event['rows_read']:,} records to {event['out']}\n"]
            table += [f"  {outcome:<16}{event[outcome]:>12,}\n" for outcome in OUTCOMES]
            self._write_out("".join(table))
        elif name == "run_already_committed":
            self._write_err(f"pa-batch: {event['message']}")
        elif name == "run_failed":
            where = RunError(event["error"], file=event.get("file"), column=event.get("column"))
            self._write_err(f"pa-batch: error: {where}")
        elif event["level"] == "warning":
            where = RunError(event["message"], file=event.get("file"))
            self._write_err(f"pa-batch: warning: {where}")
        elif event["level"] == "error":
            self._write_err(f"pa-batch: {event['message']}")

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    # --- json ------------------------------------------------------------------------------

    def _json(self, event: Event) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = {"ts": stamp, **event}
        self._write_out(json.dumps(line, ensure_ascii=False) + "\n")

    # --- the streams -----------------------------------------------------------------------

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

    def _write_err(self, line: str) -> None:
        try:
            self._err.write(" ".join(line.split()) + "\n")
            self._err.flush()
        except (OSError, ValueError):
            pass
