"""Output tables: results, rejects and diffs streamed to Parquet or CSV with a fixed Arrow
schema, the bytes independent of how rows arrived in batches; CSV cells guarded against
spreadsheet formulas, reversibly.

A run's table is one file (``results.parquet``: the local engine) or a dataset of parts
(``results/part-000000.parquet``, ...: the dask engine, each part written by the worker that
decided it), the parts in input order by name; ``table_files`` finds either."""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pa_batch.io.formats import CSV, PARQUET
from pa_batch.io.storage import Location, StorePath

# a leading ' is guarded too, so the guard is reversible: reading strips one ' before any of
# these (audit.history.read_run_table), and '=x and =x never read back as the same cell
_SPREADSHEET_TRIGGER = r"^[=+\-@\t\r\n']"
# a plain number (-30, -0.5, +1e3) is no formula: it keeps its sign
_PLAIN_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
# Parquet row groups have a fixed size, so the bytes written never depend on --batch-rows;
# half a default batch, so the writer never holds more than one batch of results waiting
PARQUET_ROW_GROUP_ROWS = 1 << 16
PART_PREFIX = "part-"


def part_name(number: int, fmt: str) -> str:
    """A dataset part's file name: in input order when sorted by name."""
    return f"{PART_PREFIX}{number:06d}.{fmt}"


def table_files(run_dir: Location, name: str) -> list[Location]:
    """The files of a run's ``name`` table (results or rejects), in input order: the one
    file a local run wrote, or the parts of a dataset; none if the run has neither."""
    for fmt in (PARQUET, CSV):
        single = run_dir / f"{name}.{fmt}"
        if single.exists():
            return [single]
    dataset = run_dir / name
    if not dataset.is_dir():
        return []
    parts = [
        part
        for part in dataset.iterdir()
        if part.name.startswith(PART_PREFIX) and part.name.endswith((f".{PARQUET}", f".{CSV}"))
    ]
    return sorted(parts, key=lambda part: part.name)


def to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """A frame as a table of exactly ``schema``: same types whatever the batch holds."""
    arrays = []
    for column in schema:
        values = frame[column.name]
        if pa.types.is_date32(column.type):
            days = values.to_numpy(dtype="datetime64[s]").astype("datetime64[D]")
            arrays.append(pa.array(days, type=pa.date32(), mask=values.isna().to_numpy()))
        elif isinstance(values.dtype, pd.CategoricalDtype):  # a few values, held once
            arrays.append(pa.array(values, from_pandas=True).cast(column.type))
        elif pa.types.is_string(column.type):
            # an Arrow-backed str column converts without a Python object per cell
            arrays.append(pa.array(values, type=pa.string(), from_pandas=True))
        else:
            arrays.append(pa.array(values, type=column.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


def neutralize_for_spreadsheets(table: pa.Table) -> pa.Table:
    """OWASP CSV-injection defence: a text cell starting with = + - @ tab CR LF gets a ' prefix,
    unless it is a plain number, which a spreadsheet reads as that number. A cell that starts
    with ' gets one too, so that reading back strips exactly the prefixes written."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type):
            risky = pc.and_not(
                pc.match_substring_regex(column, _SPREADSHEET_TRIGGER),
                pc.match_substring_regex(column, _PLAIN_NUMBER),
            )
            column = pc.if_else(
                pc.fill_null(risky, False), pc.binary_join_element_wise("'", column, ""), column
            )
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=table.schema)


# Parquet min/max statistics let a reader skip row groups (`WHERE service_date >= ...`).
# They are kept for every date and number column and for these few-valued text columns;
# min/max of free text (claim ids, member ids) would cost a fifth of the write and skip
# nothing.
STATISTICS_TEXT_COLUMNS = ("decision", "policy_version", "source_file", "error_code")


def statistics_columns(schema: pa.Schema) -> list[str]:
    return [
        field.name
        for field in schema
        if not pa.types.is_string(field.type) or field.name in STATISTICS_TEXT_COLUMNS
    ]


class _Digesting:
    """A writable file that hashes (SHA-256) what passes through it to ``stream``."""

    def __init__(self, stream):
        self._stream = stream
        self._sha256 = hashlib.sha256()
        self._written = 0
        self.closed = False

    def write(self, data) -> int:
        self._sha256.update(data)
        self._stream.write(data)
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        self._stream.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._stream.close()

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


class TableWriter:
    """Streams batches of one output table (Parquet or CSV) with a fixed schema.

    Each batch is converted and written by a thread while the caller decides the next one
    (Arrow compresses and writes without holding the GIL); one batch at most is in flight,
    and a failure of it is raised by the next ``write`` or by ``close``. With ``background``
    False, each batch is written before ``write`` returns (a dask task's one core). With
    ``digest``, the bytes are hashed as they are written: ``sha256`` once closed, without
    reading the file back (on a store, a GET of the whole object saved).
    """

    def __init__(
        self,
        path: Location,
        schema: pa.Schema,
        fmt: str,
        *,
        background: bool = True,
        digest: bool = False,
    ):
        self.path = path
        self.schema = schema
        self.format = fmt
        self.rows = 0
        self.sha256: str | None = None
        # a store's object is a stream (one upload, whole when closed); a local file, a path
        self._sink = path.open("wb") if isinstance(path, StorePath) else None
        self._digesting = None
        if digest:
            self._digesting = _Digesting(self._sink if self._sink is not None else path.open("wb"))
            self._sink = pa.PythonFile(self._digesting, mode="w")
        where = self._sink if self._sink is not None else path
        self._pending: list[pa.Table] = []  # Parquet rows not yet making a whole row group
        self._pending_rows = 0
        self._thread = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="pa-batch-write")
            if background
            else None
        )
        self._in_flight: Future | None = None
        if fmt == PARQUET:
            self._writer = pq.ParquetWriter(
                where, schema, compression="zstd", write_statistics=statistics_columns(schema)
            )
        else:
            self._writer = pa_csv.CSVWriter(
                where, schema, write_options=pa_csv.WriteOptions(quoting_style="needed")
            )

    def write(self, frame: pd.DataFrame, keep: np.ndarray | None = None) -> None:
        """Write ``frame``'s rows (only those where ``keep`` is True, if given)."""
        rows = len(frame) if keep is None else int(np.count_nonzero(keep))
        if rows == 0:
            return
        self._wait()
        self.rows += rows
        # handed over in a holder the write empties: the frame is freed once it is Arrow,
        # not when the whole write is done
        if self._thread is None:
            self._write([frame], keep)
            return
        self._in_flight = self._thread.submit(self._write, [frame], keep)

    def _wait(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.result()

    def _write(self, holder: list[pd.DataFrame], keep: np.ndarray | None) -> None:
        table = to_arrow(holder.pop(), self.schema)
        if keep is not None:
            table = table.filter(pa.array(keep))
        if self.format == CSV:
            self._writer.write_table(neutralize_for_spreadsheets(table))
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= PARQUET_ROW_GROUP_ROWS:
            self._flush_row_groups(final=False)

    def close(self) -> None:
        try:
            self._wait()
            if self.format == PARQUET:
                self._flush_row_groups(final=True)
            self._writer.close()
            if self._sink is not None:
                self._sink.close()
            if self._digesting is not None:
                self.sha256 = self._digesting.hexdigest()
        finally:
            if self._thread is not None:
                self._thread.shutdown(wait=True)

    def _flush_row_groups(self, *, final: bool) -> None:
        """Write every whole row group pending (and, at the end, the rest)."""
        pending = pa.concat_tables(self._pending) if self._pending else self.schema.empty_table()
        whole = pending.num_rows - pending.num_rows % PARQUET_ROW_GROUP_ROWS
        upto = pending.num_rows if final else whole
        for start in range(0, upto, PARQUET_ROW_GROUP_ROWS):
            group = pending.slice(start, min(PARQUET_ROW_GROUP_ROWS, upto - start))
            self._writer.write_table(group.combine_chunks(), row_group_size=PARQUET_ROW_GROUP_ROWS)
        rest = pending.slice(upto)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
