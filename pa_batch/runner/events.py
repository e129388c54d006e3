"""What a run tells the world as it goes: events, each a small dict, sent to the standard
``logging`` logger ``pa_batch`` (the event in the record's ``extra``, as ``record.pa_batch``)
and to a caller's ``on_event``. The CLI renders them (``runlog.RunLog``); a notebook or an
orchestrator takes them as they are.

Every event carries ``event``, ``level``, ``run_id`` and a one-line human ``message``, and
otherwise counts, codes, file paths and row numbers only, never a cell value: the fields are
chosen here, by name, so a caller cannot hand member data to the log by accident.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pa_batch.core.outcomes import OUTCOMES

LOGGER = logging.getLogger("pa_batch")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

Event = dict[str, Any]
OnEvent = Callable[[Event], None]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class Events:
    """The run's events for one run id; the pipeline reports progress through it."""

    def __init__(self, run_id: str, on_event: OnEvent | None = None):
        self.run_id = run_id
        self._on_event = on_event

    def emit(self, event: str, message: str, *, level: str = "info", **fields: Any) -> Event:
        record: Event = {
            "event": event,
            "level": level,
            "run_id": self.run_id,
            "message": _one_line(message),
            **fields,
        }
        LOGGER.log(_LEVELS[level], record["message"], extra={"pa_batch": record})
        if self._on_event is not None:
            self._on_event(record)
        return record

    # --- progress, as the pipeline reads ---------------------------------------------------

    def input_started(self, file: str, fmt: str) -> None:
        self.emit("input_started", f"reading {file} ({fmt})", file=file, format=fmt)

    def batch_done(self, file: str, records: int, file_records: int, run_records: int) -> None:
        self.emit(
            "batch_done",
            f"{file}: {file_records:,} records read",
            file=file,
            records=records,
            file_records=file_records,
            run_records=run_records,
        )

    def input_finished(self, file: str, records: int) -> None:
        self.emit("input_finished", f"{file}: {records:,} records", file=file, records=records)


def outcome_counts(rows_read: int, outcomes: dict) -> dict[str, int]:
    """``rows_read`` and the five outcome counts, as events and summaries give them."""
    return {"rows_read": int(rows_read), **{name: int(outcomes.get(name, 0)) for name in OUTCOMES}}
