"""Readers: claim extract files in, batches of trimmed text records out (SPEC §2).

CSV (``.csv``, ``.csv.gz``) and Parquet (``.parquet``) arrive as the same thing: every
known column as ``str`` (typed Parquet dates become ``YYYY-MM-DD``, numbers their decimal
text), trimmed, empty meaning missing; each record tagged with its 1-based ``source_row``.
CSV records with the wrong number of fields are handed over separately as malformed.
Everything that fails a whole file raises ``RunError`` naming the file (and column).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pa_batch.errors import RunError
from pa_batch.schemas.claim_extract import INPUT_COLUMNS, REQUIRED_COLUMNS

CSV = "csv"
PARQUET = "parquet"
DEFAULT_BATCH_ROWS = 1 << 19
CSV_BLOCK_BYTES = 1 << 26  # also the longest CSV record the reader accepts


@dataclass
class Batch:
    """One batch of records of one input file, in file order."""

    records: pd.DataFrame  # INPUT_COLUMNS as trimmed text, NA = missing; RangeIndex
    source_rows: np.ndarray  # 1-based record number of each record, header excluded
    # CSV records with the wrong field count: source_row, fields, raw text
    malformed: pd.DataFrame = field(default_factory=lambda: _malformed_frame([]))

    @property
    def rows_read(self) -> int:
        return len(self.records) + len(self.malformed)


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str

    @property
    def label(self) -> str:
        return str(self.path)


def input_file(path: Path) -> InputFile:
    """Identify an input by extension; unsupported or missing files fail the run."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        fmt = CSV
    elif name.endswith(".parquet"):
        fmt = PARQUET
    else:
        raise RunError("unsupported extension (expected .csv, .csv.gz or .parquet)", file=str(path))
    if path.is_dir():
        raise RunError("is a directory, not a file", file=str(path))
    if not path.is_file():
        raise RunError("file not found", file=str(path))
    return InputFile(path, fmt)


def sha256_of(source: InputFile) -> str:
    digest = hashlib.sha256()
    try:
        with source.path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as error:
        raise RunError(f"cannot read file ({error.strerror})", file=source.label) from None
    return digest.hexdigest()


def read_batches(
    source: InputFile, *, encoding: str = "utf-8", batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[Batch]:
    """Yield the file's records batch by batch; file-level problems raise ``RunError``."""
    reader = _csv_batches if source.format == CSV else _parquet_batches
    try:
        yield from reader(source, encoding=encoding, batch_rows=batch_rows)
    except RunError:
        raise
    except (
        pa.ArrowException,
        OSError,
        UnicodeDecodeError,
        EOFError,
        csv.Error,
        ValueError,
    ) as error:
        # the library's message can quote file content: say what kind of failure, not what
        raise RunError(
            f"cannot read {source.format.upper()} file ({_failure_kind(error)})", file=source.label
        ) from None


def _failure_kind(error: Exception) -> str:
    """What went wrong, in words that quote nothing from the file."""
    said = str(error).lower()
    if isinstance(error, UnicodeDecodeError) or "utf8" in said or "utf-8" in said:
        return "text is not valid in the expected encoding; see --encoding"
    if isinstance(error, (EOFError, gzip.BadGzipFile)) or "compress" in said:
        return "truncated or corrupt compressed data"
    if "magic bytes" in said:
        return "not a Parquet file, or truncated"
    if "checksum" in said or "crc" in said:
        return "corrupt data: a page checksum does not match"
    if "straddling" in said or "block size" in said:
        return f"a record is longer than {CSV_BLOCK_BYTES:,} bytes, the reader's block size"
    return f"corrupt or unreadable: {type(error).__name__}"


def canonical_header(names: list[str], label: str) -> dict[int, str]:
    """Map header positions of known columns to their canonical names (trimmed, lower-cased).

    Duplicate names and missing required columns fail the run.
    """
    canonical = [str(name).strip().lower() for name in names]
    seen: set[str] = set()
    for name in canonical:
        if name in seen and name:
            raise RunError("duplicate column in header", file=label, column=name)
        seen.add(name)
    for required in REQUIRED_COLUMNS:
        if required not in seen:
            raise RunError("required column missing from header", file=label, column=required)
    return {i: name for i, name in enumerate(canonical) if name in INPUT_COLUMNS}


def text_records(columns: dict[str, pa.Array], length: int) -> pd.DataFrame:
    """Trimmed text columns (empty -> missing) for every contract column, absent ones NA."""
    data = {}
    for name in INPUT_COLUMNS:
        if name in columns:
            trimmed = pc.utf8_trim_whitespace(columns[name])
            data[name] = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
        else:
            data[name] = pa.nulls(length, pa.string())
    return pa.table(data).to_pandas()


# --- CSV -------------------------------------------------------------------------------


def _open_binary(source: InputFile):
    if source.path.name.lower().endswith(".gz"):
        return gzip.open(source.path, "rb")
    return source.path.open("rb")


def _csv_header(source: InputFile, encoding: str) -> list[str]:
    python_encoding = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    with _open_binary(source) as binary:
        text = io.TextIOWrapper(binary, encoding=python_encoding, newline="")
        header = next(csv.reader(text), None)
    if not header:
        raise RunError("empty file: no header row", file=source.label)
    return header


def _csv_batches(source: InputFile, *, encoding: str, batch_rows: int) -> Iterator[Batch]:
    header = _csv_header(source, encoding)
    known = canonical_header(header, source.label)
    positional = [f"f{i}" for i in range(len(header))]
    malformed: list[tuple[int, int, str]] = []

    def on_malformed(row: pa_csv.InvalidRow) -> str:
        # row.number counts physical records from 1 with the header; ours exclude it
        malformed.append((row.number - 1, row.actual_columns, row.text))
        return "skip"

    reader = pa_csv.open_csv(
        pa.input_stream(str(source.path), compression="detect"),
        read_options=pa_csv.ReadOptions(
            use_threads=False,  # record numbers of malformed rows are known only single-threaded
            block_size=CSV_BLOCK_BYTES,
            skip_rows=1,
            column_names=positional,
            encoding=encoding,
        ),
        parse_options=pa_csv.ParseOptions(
            newlines_in_values=True, invalid_row_handler=on_malformed
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(positional, pa.string()),
            include_columns=[positional[i] for i in known],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    good_so_far = 0
    emitted_malformed = 0
    for record_batch in _slices(reader, batch_rows):
        n = record_batch.num_rows
        records = text_records(
            {known[int(name[1:])]: record_batch.column(name) for name in record_batch.schema.names},
            n,
        )
        bad = np.array([row for row, _, _ in malformed], dtype=np.int64)
        good_index = np.arange(good_so_far, good_so_far + n)
        source_rows = _good_record_numbers(good_index, bad)
        good_so_far += n
        last = int(source_rows[-1])
        cut = emitted_malformed + int(np.searchsorted(bad[emitted_malformed:], last))
        batch_malformed = _malformed_frame(malformed[emitted_malformed:cut], len(header))
        emitted_malformed = cut
        yield Batch(records, source_rows, batch_malformed)
    if emitted_malformed < len(malformed):
        yield Batch(
            text_records({}, 0),
            np.empty(0, np.int64),
            _malformed_frame(malformed[emitted_malformed:], len(header)),
        )


def _slices(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Parse blocks cut to at most ``rows`` records each (empty blocks dropped)."""
    for batch in batches:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def _good_record_numbers(good_index: np.ndarray, bad_rows: np.ndarray) -> np.ndarray:
    """1-based record numbers of well-formed records, given the malformed ones' numbers.

    The g-th good record (0-based) comes after every malformed record that has at most g
    good records before it.
    """
    bad_sorted = np.sort(bad_rows)
    good_before_bad = bad_sorted - 1 - np.arange(len(bad_sorted))
    return good_index + 1 + np.searchsorted(good_before_bad, good_index, side="right")


def _malformed_frame(rows: list[tuple[int, int, str]], expected: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_row": pd.Series([r for r, _, _ in rows], dtype="int64"),
            "fields": pd.Series([f for _, f, _ in rows], dtype="int64"),
            "expected_fields": pd.Series([expected] * len(rows), dtype="int64"),
            "text": pd.Series([t for _, _, t in rows], dtype="str"),
        }
    )


# --- Parquet ---------------------------------------------------------------------------


def _parquet_batches(source: InputFile, *, encoding: str, batch_rows: int) -> Iterator[Batch]:
    del encoding  # Parquet text is UTF-8 by definition
    # pages written with CRCs are verified: corruption fails the file instead of
    # becoming plausible values
    parquet = pq.ParquetFile(source.path, page_checksum_verification=True)
    names = parquet.schema_arrow.names
    known = canonical_header(names, source.label)
    read_so_far = 0
    for record_batch in parquet.iter_batches(
        batch_size=batch_rows, columns=[names[i] for i in known]
    ):
        n = record_batch.num_rows
        columns = {
            known[names.index(name)]: _as_text(record_batch.column(name), source.label, name)
            for name in record_batch.schema.names
        }
        source_rows = np.arange(read_so_far + 1, read_so_far + n + 1, dtype=np.int64)
        read_so_far += n
        yield Batch(text_records(columns, n), source_rows)


def _as_text(column: pa.Array, label: str, name: str) -> pa.Array:
    """A typed Parquet column as the text a CSV would carry, so both decide alike."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return _as_text(column.dictionary_decode(), label, name)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.cast(pa.string())
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        # a timestamp's calendar date is its date of service
        return column.cast(pa.date32()).cast(pa.string())
    if (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_null(kind)
    ):
        return column.cast(pa.string())
    raise RunError(
        f"unsupported Parquet column type {kind}", file=label, column=name.strip().lower()
    )
