"""Arrow text as the core reads it: a batch's columns as the text a CSV would carry (a typed
Parquet column turned into text only when asked for), the bytes of a string array as numpy
arrays (for passes over all values at once), cells trimmed with empty meaning missing
(contract §2), and a batch's trimmed text as the pandas records the record checks read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pa_batch.schemas.claim_extract import INPUT_COLUMNS


class TextCells(Mapping[str, pa.Array]):
    """A batch's contract columns, each as the text a CSV would carry it (untrimmed).

    A text column is held as text. A typed Parquet column (dates, numbers) is held as read
    and turned into text (``typed_as_text``) only when first asked for: the screen checks
    such columns as themselves, so the records it counts out of scope (most of a nightly
    mix) never pay for the conversion; the rest do, on their own rows (``take``). A text
    column read as a dictionary (a few distinct values) is held so too, decoded when asked
    for; the screen reads its distinct values (``dictionary``).
    """

    def __init__(
        self,
        text: Mapping[str, pa.Array],
        typed: Mapping[str, pa.Array] | None = None,
        dictionaries: Mapping[str, pa.DictionaryArray] | None = None,
    ):
        self._text = dict(text)
        self._typed = {n: cells for n, cells in (typed or {}).items() if n not in self._text}
        self._dictionaries = {
            n: cells
            for n, cells in (dictionaries or {}).items()
            if n not in self._text and n not in self._typed
        }
        self._names = [*self._text, *self._typed, *self._dictionaries]
        self._typed_names = frozenset(self._typed)

    def dictionary(self, name: str) -> pa.DictionaryArray | None:
        """The column as its distinct values and their indices, if it is held so."""
        return self._dictionaries.get(name)

    def is_typed(self, name: str) -> bool:
        """True if the column was typed (dates, numbers): its text, a cast, has no
        surrounding whitespace and no empty cell, so it needs no trimming."""
        return name in self._typed_names

    def __getitem__(self, name: str) -> pa.Array:
        if name not in self._text:
            if name in self._dictionaries:
                self._text[name] = self._dictionaries.pop(name).dictionary_decode()
            else:
                self._text[name] = typed_as_text(self._typed.pop(name), name)  # KeyError if absent
        return self._text[name]

    def __contains__(self, name: object) -> bool:
        return name in self._text or name in self._typed or name in self._dictionaries

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def take(self, at: pa.Array) -> TextCells:
        """The cells at positions ``at``, typed columns still as read."""
        return TextCells(
            {name: cells.take(at) for name, cells in self._text.items()},
            {name: cells.take(at) for name, cells in self._typed.items()},
            {name: cells.take(at) for name, cells in self._dictionaries.items()},
        )

    @staticmethod
    def concat(parts: list[TextCells]) -> TextCells:
        """Cells of consecutive batches of one file (the same columns, held alike) as one."""
        first = parts[0]
        return TextCells(
            {name: joined([p[name] for p in parts]) for name in first._text},
            {name: joined([p._cells_as_held(name) for p in parts]) for name in first._typed},
            {name: joined([p._cells_as_held(name) for p in parts]) for name in first._dictionaries},
        )

    def _cells_as_held(self, name: str) -> pa.Array:
        for held in (self._typed, self._dictionaries, self._text):
            if name in held:
                return held[name]
        raise KeyError(name)

    def __reduce__(self):  # pickled as held (Dask ships batches to workers)
        return (TextCells, (self._text, self._typed, self._dictionaries))


def joined(arrays: list[pa.Array]) -> pa.Array:
    """Arrays of one column of consecutive batches as one, of the first one's type."""
    kind = arrays[0].type
    return pa.concat_arrays([a if a.type == kind else a.cast(kind) for a in arrays])


def typed_as_text(column: pa.Array, name: str) -> pa.Array:
    """A typed Parquet column (not text) as the text a CSV would carry, so both decide alike.

    ``name`` is the contract column. An integer NDC is left-padded with zeros to 11 digits:
    a number can only have come from the 11-digit form, its leading zeros lost. A
    timestamp's calendar date is its date of service.
    """
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return column.cast(pa.date32()).cast(pa.string())
    if pa.types.is_integer(kind) and name == "ndc":
        digits = column.cast(pa.string())
        non_negative = pc.fill_null(pc.greater_equal(column, 0), False)
        return pc.if_else(non_negative, pc.utf8_lpad(digits, 11, "0"), digits)
    return column.cast(pa.string())


def is_typed_text_kind(kind: pa.DataType) -> bool:
    """True for the typed Parquet columns ``typed_as_text`` turns into text."""
    return (
        pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_null(kind)
    )


def one_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``values`` as one array (a chunked pandas column converts to a chunked array)."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def offsets_and_bytes(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``text``'s value offsets (one more than values; value ``i`` is
    ``bytes[offsets[i]:offsets[i + 1]]``) and its data buffer, both without a copy.

    ``text`` is a ``string`` or ``large_string`` array, maybe a slice: its own offset is
    applied, so the offsets index the data buffer as it is. A null's slot is empty or
    meaningless: callers mask nulls themselves.
    """
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(text.buffers()[1], dtype=width)[
        text.offset : text.offset + len(text) + 1
    ]
    data = text.buffers()[2]
    return offsets, (np.frombuffer(data, dtype=np.uint8) if data is not None else _NO_BYTES)


_NO_BYTES = np.zeros(0, dtype=np.uint8)


def text_records(columns: Mapping[str, pa.Array], length: int) -> pd.DataFrame:
    """Trimmed text columns (empty -> missing) for every contract column, absent ones NA."""
    data = {}
    for name in INPUT_COLUMNS:
        if isinstance(columns, TextCells) and columns.is_typed(name):
            data[name] = columns[name]
        elif name in columns:
            data[name] = trimmed(columns[name])
        else:
            data[name] = pa.nulls(length, pa.string())
    return pa.table(data).to_pandas()


def trimmed(given: pa.Array) -> pa.Array:
    """``given`` trimmed, an empty cell missing. Where there is nothing to trim and no empty
    cell (most columns of most files), ``given`` itself: the batch holds its text once."""
    check = may_need_trimming(given)
    if check is NOTHING_TO_DO:
        return given
    text = pc.utf8_trim_whitespace(given) if check is MAY_TRIM else given
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


# a cell whose first or last byte is one of these may start or end with whitespace: ASCII
# controls and space, DEL, and any byte of a multi-byte character (Unicode spaces are those)
_MAY_BE_SPACE = np.zeros(256, dtype=bool)
_MAY_BE_SPACE[: 0x20 + 1] = True
_MAY_BE_SPACE[0x7F:] = True


NOTHING_TO_DO, EMPTY_CELLS, MAY_TRIM = "nothing to do", "empty cells", "may trim"


def may_need_trimming(given: pa.Array) -> str:
    """What a column needs: nothing, its empty cells made missing, or trimming (where a
    present cell starts or ends with a byte that could be whitespace). Read from the offsets
    and the first and last bytes, without copying text."""
    if given.type != pa.string():
        return MAY_TRIM
    offsets, data = offsets_and_bytes(given)
    starts, ends = offsets[:-1], offsets[1:]
    if given.null_count:
        present = given.is_valid().to_numpy(zero_copy_only=False)
        starts, ends = starts[present], ends[present]
    empty = ends <= starts
    starts, ends = starts[~empty], ends[~empty]
    if len(starts) and (_MAY_BE_SPACE[data[starts]].any() or _MAY_BE_SPACE[data[ends - 1]].any()):
        return MAY_TRIM
    return EMPTY_CELLS if empty.any() else NOTHING_TO_DO
