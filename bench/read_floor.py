"""The benchmark's floor: read every column of every record of an extract, and nothing else.

Parquet through pyarrow's reader batch by batch (as pa-batch reads it), CSV through pyarrow's
streaming reader with every column as text (as pa-batch reads it), on all cores. No run of
the extract can take less than this; the bench reports it beside each shape.

    python bench/read_floor.py EXTRACT
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq


def read_all(extract: Path) -> int:
    """The records read (every column decoded)."""
    if extract.suffix == ".parquet":
        batches = pq.ParquetFile(extract).iter_batches(batch_size=98_304)
    else:
        header = extract.open().readline().rstrip("\r\n").split(",")
        batches = pa_csv.open_csv(
            extract,
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(header, pa.string())),
        )
    return sum(batch.num_rows for batch in batches)


if __name__ == "__main__":
    print(read_all(Path(sys.argv[1])))
