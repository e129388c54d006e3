"""The bytes of an Arrow string array, as numpy arrays, for passes over all values at once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


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
