"""The one exception that fails a whole run, how it reads on one line, and what kind of
failure it is: whether a scheduler should retry."""

from __future__ import annotations

import errno
from typing import Final

# what kind of failure: the input or the command is wrong (fix it; a retry fails the same),
# a passing condition of the machine or the cluster (retry), or a defect of pa_batch
INPUT: Final = "input"
TRANSIENT: Final = "transient"
INTERNAL: Final = "internal"
CATEGORIES: Final = (INPUT, TRANSIENT, INTERNAL)

# errno values that describe the moment, not the input: a full or failing disk, a busy or
# unreachable peer, memory pressure
_TRANSIENT_ERRNOS: Final = frozenset(
    getattr(errno, name)
    for name in (
        "EIO", "ENOSPC", "EDQUOT", "EAGAIN", "EBUSY", "ETIMEDOUT", "ECONNRESET",
        "ECONNREFUSED", "ECONNABORTED", "EHOSTUNREACH", "ENETUNREACH", "ENOMEM", "ENOBUFS",
        "ESTALE", "EINTR",
    )
    if hasattr(errno, name)
)  # fmt: skip


def os_error_category(error: OSError) -> str:
    """TRANSIENT for an OSError a retry may not meet again (ENOSPC, EIO, ...), else INPUT."""
    return TRANSIENT if error.errno in _TRANSIENT_ERRNOS else INPUT


class RunError(Exception):
    """A failure of the whole run: nothing is committed, the CLI prints one line and exits 1
    (75 when ``category`` is transient).

    The message must never carry cell values or member data: name the file, the column, a
    row number at most.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        category: str = INPUT,
    ):
        super().__init__(message)
        self.message = message
        self.file = file
        self.column = column
        self.category = category

    def __reduce__(self):
        # raised on a Dask worker, it crosses to the client whole: file and column included
        return (_rebuild, (self.message, self.file, self.column, self.category))

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return ": ".join([*where, self.message])


class RunIdTaken(RunError):
    """The run id names a run DIR already holds: a refusal to reuse it, not a failure of that
    run (nothing is recorded against the id)."""


def _rebuild(message: str, file: str | None, column: str | None, category: str = INPUT) -> RunError:
    return RunError(message, file=file, column=column, category=category)
