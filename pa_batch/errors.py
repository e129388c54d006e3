"""The one exception that fails a whole run (exit 1) and how it reads on one line."""

from __future__ import annotations


class RunError(Exception):
    """A failure of the whole run: nothing is committed, the CLI prints one line and exits 1.

    The message must never carry cell values or member data: name the file, the column, a
    row number at most.
    """

    def __init__(self, message: str, *, file: str | None = None, column: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.column = column

    def __reduce__(self):
        # raised on a Dask worker, it crosses to the client whole: file and column included
        return (_rebuild, (self.message, self.file, self.column))

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return ": ".join([*where, self.message])


def _rebuild(message: str, file: str | None, column: str | None) -> RunError:
    return RunError(message, file=file, column=column)
