"""Arrow text as the core reads it: the bytes of a string array as numpy arrays (for passes
over all values at once), cells trimmed with empty meaning missing (contract §2), and a
batch's trimmed text as the pandas records the record checks read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pa_batch.schemas.claim_extract import INPUT_COLUMNS


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


def text_records(columns: dict[str, pa.Array], length: int) -> pd.DataFrame:
    """Trimmed text columns (empty -> missing) for every contract column, absent ones NA."""
    data = {}
    for name in INPUT_COLUMNS:
        if name in columns:
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
