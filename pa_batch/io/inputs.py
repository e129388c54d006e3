"""Readers: claim extract files in, batches of trimmed text records out (docs/contract.md §2).

CSV (``.csv``, ``.csv.gz``) and Parquet (``.parquet``) arrive as the same thing: every
known column as ``str`` (typed Parquet dates become ``YYYY-MM-DD``, numbers their decimal
text), trimmed, empty meaning missing; each record tagged with its 1-based ``source_row``.
CSV records with the wrong number of fields are handed over separately as malformed.
Everything that fails a whole file raises ``RunError`` naming the file (and column).
"""

from __future__ import annotations

import bisect
import codecs
import csv
import difflib
import glob
import gzip
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pa_batch.core.arrow_text import (
    MAY_TRIM,
    TextCells,
    is_typed_text_kind,
    may_need_trimming,
    offsets_and_bytes,
    typed_as_text,
)
from pa_batch.core.batch import Batch, malformed_frame
from pa_batch.errors import RunError, os_error_category
from pa_batch.io.formats import CSV, PARQUET
from pa_batch.io.storage import Location, StorePath, arrow_source, store_problem
from pa_batch.schemas.claim_extract import INPUT_COLUMNS, POLICY_COLUMNS, REQUIRED_COLUMNS

# 98,304: past it, memory grows and speed hardly does (131,072: 7% faster on an all-powder
# extract, 76 MB more peak RSS, too close to 1 GiB at 50M lines)
DEFAULT_BATCH_ROWS = 3 << 15
CSV_BLOCK_BYTES = 1 << 22  # 4 MiB; also the longest CSV record the reader accepts
_NAME_SHAPE = re.compile(r"[a-z][a-z0-9_ .\-]{0,39}")
_OTHER_DELIMITERS = (";", "\t", "|")


@dataclass(frozen=True)
class InputFile:
    path: Location
    format: str

    @property
    def label(self) -> str:
        return str(self.path)


INPUT_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_GLOB_CHARACTERS = re.compile(r"[*?\[]")


def expand_inputs(arguments: list[Location]) -> list[Location]:
    """The input files an argument list names, in order.

    A file stands for itself; a directory for every ``.csv``, ``.csv.gz`` and ``.parquet``
    file directly inside it, in name order; a glob pattern (``claims/2024-*.parquet``,
    expanded here, not by a shell) for the files it matches, in name order. A directory or
    pattern that names no file fails the run, naming it. On an object store, a prefix is a
    directory and a pattern's ``*`` stays within one level, as a shell's does.
    """
    files: list[Location] = []
    for argument in arguments:
        if argument.is_dir():
            found = _extracts_among(
                entry for entry in argument.iterdir() if entry.name.lower().endswith(INPUT_SUFFIXES)
            )
            if not found:
                raise RunError(
                    "directory holds no .csv, .csv.gz or .parquet file", file=str(argument)
                )
        elif _GLOB_CHARACTERS.search(str(argument)) and not argument.exists():
            if isinstance(argument, StorePath):
                found = sorted(argument.matches())
            else:
                found = _extracts_among(Path(match) for match in glob.glob(str(argument)))
            if not found:
                raise RunError("pattern matches no file", file=str(argument))
        else:
            found = [argument]
        files.extend(found)
    return files


def _extracts_among(entries: Iterable[Location]) -> list[Location]:
    """The files among ``entries``, in name order. A subdirectory is passed over; an entry
    that is neither (a broken symbolic link, a link loop) fails, naming it: an extract that
    cannot be read is never silently left out of a run."""
    found = []
    for entry in sorted(entries):
        if entry.is_file():
            found.append(entry)
        elif not entry.is_dir():
            problem = "a symbolic link to no file" if entry.is_symlink() else "not a readable file"
            raise RunError(f"{problem}, not an extract", file=str(entry))
    return found


def input_file(path: Location) -> InputFile:
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


class _HashingFile(io.RawIOBase):
    """A file read once: the bytes the parser reads also feed the SHA-256."""

    def __init__(self, path: Location):
        self._file = path.open("rb")
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._file.readinto(buffer)
        if count:
            self._digest.update(memoryview(buffer)[:count])
        return count

    def hexdigest(self) -> str:
        for chunk in iter(lambda: self._file.read(1 << 20), b""):  # any bytes left unparsed
            self._digest.update(chunk)
        return self._digest.hexdigest()

    def release(self) -> None:
        """Close the file. (``close`` is the reader's: Arrow closes a stream it has finished,
        but the digest still needs the file.)"""
        self._file.close()


class _InOrderHashingFile(io.RawIOBase):
    """A Parquet file hashed in file order as the decoder reads it: one pass, no second read.

    Parquet is read out of order (the footer first, then column chunks, several columns at
    once), but its row groups lie in file order. The first read within a row group hashes
    that whole row group, reading it once, through any column the decoder skips (ignored
    columns), and keeps it as the window every read of it is served from, until the next
    row group replaces it. Reads that reach into the footer (the decoder's first,
    speculative read of the tail) are served by a plain read without touching the hash; the
    footer is hashed last. A row group larger than ``_MAX_WINDOW`` is hashed in steps up to
    each read's end instead, and its reads are served by plain reads of what was hashed.
    """

    _STEP = 1 << 20
    _MAX_WINDOW = 1 << 27

    def __init__(self, path: Location, row_group_ends: list[int]):
        self._file = path.open("rb")
        self._read_at = _reader_at(self._file)
        self._size = path.stat().st_size
        self._row_group_ends = row_group_ends  # ascending; the last is where the footer starts
        self._data_end = row_group_ends[-1] if row_group_ends else 0
        self._digest = hashlib.sha256()
        self._hashed = 0
        self._window_start = 0
        self._window = b""
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def size(self) -> int:
        return self._size

    def readinto(self, buffer) -> int:
        start = self._position
        wanted = min(len(buffer), max(0, self._size - start))
        end = start + wanted
        if self._hashed < end <= self._data_end:  # a read of data not yet hashed
            group_end = self._row_group_ends[bisect.bisect_left(self._row_group_ends, end)]
            self._hash_up_to(group_end if group_end - self._hashed <= self._MAX_WINDOW else end)
        window_end = self._window_start + len(self._window)
        if self._window_start <= start and end <= window_end:
            offset = start - self._window_start
            buffer[:wanted] = self._window[offset : offset + wanted]
        else:
            buffer[:wanted] = self._read_at(wanted, start)
        self._position = end
        return wanted

    def _hash_up_to(self, end: int) -> None:
        stretch = end - self._hashed
        if stretch <= self._MAX_WINDOW:
            self._window = b""  # the row group before is done with
            window = self._read_at(stretch, self._hashed)
            self._digest.update(window)
            self._window_start, self._window = self._hashed, window
            self._hashed = end
        else:
            self._hash_in_steps(end)
            self._window_start, self._window = end, b""

    def _hash_in_steps(self, end: int) -> None:
        for at in range(self._hashed, end, self._STEP):
            self._digest.update(self._read_at(min(self._STEP, end - at), at))
        self._hashed = end

    def hexdigest(self) -> str:
        """The whole file's digest: what the decoder never needed (the footer) is read now."""
        self._window = b""
        self._hash_in_steps(self._size)
        return self._digest.hexdigest()

    def release(self) -> None:
        self._window = b""
        self._file.close()


def _reader_at(file) -> Callable[[int, int], bytes]:
    """``read(count, offset)`` of an open file, leaving its position alone: a store's pyarrow
    file reads at an offset itself (a ranged GET); a local file by pread(2)."""
    if hasattr(file, "read_at"):
        return file.read_at
    descriptor = file.fileno()
    return lambda count, offset: os.pread(descriptor, count, offset)


def sha256_of_path(path: Location) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Extract:
    """An opened input: its header, checked against the contract, and its batches."""

    source: InputFile
    header: list[str]  # the header's names as given
    known: dict[int, str]  # header position -> contract column
    encoding: str = "utf-8"
    skip_rows: int = 1  # CSV rows before the first record: blank lines and the header
    has_records: bool = True
    sha256: str | None = None  # the file's SHA-256, known once its batches are all read
    parquet_row_group_ends: list[int] = field(default_factory=list)  # Parquet: byte offsets
    parquet_row_group_rows: list[int] = field(default_factory=list)  # Parquet: records
    # Parquet: the text columns read as dictionaries (``FEW_VALUES_COLUMNS``), by file name
    parquet_dictionary_columns: list[str] = field(default_factory=list)

    @property
    def ignored_columns(self) -> list[str]:
        return ignored_columns(self.header)

    def batches(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[Batch]:
        """Yield the file's records batch by batch; file-level problems raise ``RunError``.

        Either format is hashed from the bytes as the reader takes them, in one pass.
        """
        with _file_errors(self.source):
            if self.source.format == CSV:
                csv_stream = _HashingFile(self.source.path)
                try:
                    yield from _csv_batches(self, batch_rows, csv_stream)
                    self.sha256 = csv_stream.hexdigest()
                finally:
                    csv_stream.release()
            else:
                stream = _InOrderHashingFile(self.source.path, self.parquet_row_group_ends)
                try:
                    yield from _parquet_batches(self, batch_rows, stream)
                    self.sha256 = stream.hexdigest()
                finally:
                    stream.release()


@dataclass(frozen=True)
class Fragment:
    """A stretch of a Parquet extract a worker reads on its own: consecutive row groups, and
    the record number of their first record (exact: from the footer's row counts)."""

    row_groups: tuple[int, ...]
    first_row: int  # records of the file before this fragment
    rows: int


def parquet_fragments(extract: Extract, target_rows: int) -> list[Fragment]:
    """The file's row groups, consecutive ones joined until a fragment holds ``target_rows``
    records (a larger row group is a fragment alone): planned from the footer the plan
    already read (``open_extract``), without reading the file again."""
    fragments: list[Fragment] = []
    groups: list[int] = []
    first = rows = 0
    for group, group_rows in enumerate(extract.parquet_row_group_rows):
        groups.append(group)
        rows += group_rows
        if rows >= target_rows:
            fragments.append(Fragment(tuple(groups), first, rows))
            groups, first, rows = [], first + rows, 0
    if groups:
        fragments.append(Fragment(tuple(groups), first, rows))
    return fragments


def fragment_batches(extract: Extract, fragment: Fragment, batch_rows: int) -> Iterator[Batch]:
    """The records of one fragment, batch by batch, numbered as in the whole file: what a
    worker reads for itself, opening the file through its filesystem (a local path, or a
    store's URL with ranged reads of just these row groups)."""
    with _file_errors(extract.source):
        yield from _parquet_batches(
            extract,
            batch_rows,
            arrow_source(extract.source.path),
            row_groups=list(fragment.row_groups),
            first_row=fragment.first_row,
        )


def claim_records(extract: Extract, claim_id: str) -> tuple[list[tuple[int, dict]], str]:
    """The records of ``extract`` whose trimmed claim_id is ``claim_id``, as (record number,
    the contract columns' cells as the run read them: a typed Parquet column as its text),
    and the file's SHA-256. A Parquet file is searched by its claim_id column alone, row
    group by row group, and only a group holding the claim is read whole; a CSV file is read
    as a run reads it (record numbers count as the run's do)."""
    if extract.source.format == CSV:
        found = []
        for batch in extract.batches():
            matches = (batch.records["claim_id"] == claim_id).fillna(False).to_numpy(bool)
            for position in np.flatnonzero(matches):  # one claim's few records
                found.append((int(batch.source_rows[position]), _cells(batch.raw, int(position))))
        return found, str(extract.sha256)
    with _file_errors(extract.source):
        return _parquet_claim_records(extract, claim_id), sha256_of_path(extract.source.path)


def _parquet_claim_records(extract: Extract, claim_id: str) -> list[tuple[int, dict]]:
    label, names = extract.source.label, extract.header
    file = pq.ParquetFile(
        arrow_source(extract.source.path), page_checksum_verification=True, pre_buffer=False
    )
    (id_position,) = (p for p, name in extract.known.items() if name == "claim_id")
    found = []
    first_row = 0
    for group in range(file.num_row_groups):
        ids = file.read_row_group(group, columns=[names[id_position]]).column(0)
        if (
            _holds_claim(_column_text(ids.combine_chunks(), label, "claim_id"), claim_id)
            is not None
        ):
            # the group holds the claim: read whole, a batch at a time, keeping its rows only
            row = first_row
            for batch in file.iter_batches(
                batch_size=CLAIM_SEARCH_ROWS,
                row_groups=[group],
                columns=[names[p] for p in extract.known],
            ):
                raw = _as_cells(batch, extract)
                matches = _holds_claim(raw["claim_id"], claim_id)
                for position in [] if matches is None else np.flatnonzero(matches):
                    found.append((row + int(position) + 1, _cells(raw, int(position))))
                row += batch.num_rows
        first_row += file.metadata.row_group(group).num_rows
    return found


CLAIM_SEARCH_ROWS = 65_536  # rows decoded at a time in a group that holds the claim


def _holds_claim(ids: pa.Array, claim_id: str) -> np.ndarray | None:
    """Where the trimmed ids equal ``claim_id``, or None if nowhere (ids with nothing to trim,
    as most columns are, are compared as they are)."""
    if may_need_trimming(ids) is MAY_TRIM:
        ids = pc.utf8_trim_whitespace(ids)
    matches = pc.fill_null(pc.equal(ids, claim_id), False)
    return matches.to_numpy(zero_copy_only=False) if pc.any(matches).as_py() else None


def _cells(raw: Mapping[str, pa.Array], position: int) -> dict[str, str | None]:
    """One record's contract columns as given; None where empty or not in the file."""
    cells: dict[str, str | None] = {}
    for name in INPUT_COLUMNS:
        value = raw[name][position].as_py() if name in raw else None
        cells[name] = None if value is None or value == "" else str(value)
    return cells


def open_extract(source: InputFile, *, encoding: str = "utf-8") -> Extract:
    """Read and check the header of ``source``; a header the contract rejects fails the run."""
    with _file_errors(source):
        if source.format == CSV:
            return _open_csv(source, encoding)
        return _open_parquet(source)


@contextmanager
def _file_errors(source: InputFile) -> Iterator[None]:
    try:
        yield
    except RunError:
        raise
    except OSError as error:
        found = store_problem(error)
        if found is not None:  # the store failed us, not the file
            raise RunError(found[0], file=source.label, category=found[1]) from None
        if error.errno is None:  # a library's complaint about the content, not the OS's
            raise RunError(
                f"cannot read {source.format.upper()} file ({_failure_kind(error, source.format)})",
                file=source.label,
            ) from None
        raise RunError(
            f"cannot read file ({error.strerror})",
            file=source.label,
            category=os_error_category(error),
        ) from None
    except (
        pa.ArrowException,
        UnicodeDecodeError,
        EOFError,
        csv.Error,
        ValueError,
    ) as error:
        # the library's message can quote file content: say what kind of failure, not what
        raise RunError(
            f"cannot read {source.format.upper()} file ({_failure_kind(error, source.format)})",
            file=source.label,
        ) from None


def _failure_kind(error: Exception, fmt: str) -> str:
    """What went wrong, in words that quote nothing from the file."""
    said = str(error).lower()
    if isinstance(error, UnicodeDecodeError) or "utf8" in said or "utf-8" in said:
        if fmt == PARQUET:
            return "text is not valid UTF-8"
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

    A repeated name, or a contract column (required or policy) absent from the header, fails
    the run. Header text that is not a known column name may be a data value (a file whose
    header row is missing), so it is never echoed: a position is named instead.
    """
    canonical = [str(name).strip().lower() for name in names]
    first_at: dict[str, int] = {}
    for position, name in enumerate(canonical, start=1):
        if not name:
            continue
        if name in first_at:
            if name in INPUT_COLUMNS:
                raise RunError("duplicate column in header", file=label, column=name)
            raise RunError(
                f"header columns {first_at[name]} and {position} have the same name"
                + _header_missing_hint(canonical),
                file=label,
            )
        first_at[name] = position
    for column in REQUIRED_COLUMNS + POLICY_COLUMNS:
        if column not in first_at:
            raise RunError(_missing_column_message(column, canonical), file=label, column=column)
    return {i: name for i, name in enumerate(canonical) if name in INPUT_COLUMNS}


def ignored_columns(names: list[str]) -> list[str]:
    """Header names the contract does not know, as given (trimmed): listed in the summary."""
    return [
        str(name).strip()
        for name in names
        if str(name).strip() and str(name).strip().lower() not in INPUT_COLUMNS
    ]


def _missing_column_message(column: str, canonical: list[str]) -> str:
    kind = "required" if column in REQUIRED_COLUMNS else "policy"
    message = f"{kind} column missing from header"
    if not any(name in INPUT_COLUMNS for name in canonical):
        return message + _header_missing_hint(canonical)
    unknown = [name for name in canonical if name not in INPUT_COLUMNS and _looks_like_name(name)]
    close = difflib.get_close_matches(column, unknown, n=3, cutoff=0.6)
    close += [
        name
        for name in unknown
        if name not in close and (column in name or name in column) and len(name) >= 3
    ][: 3 - len(close)]
    if close:
        message += " (close: " + ", ".join(f"'{name}'" for name in close) + "?)"
    return message


def _looks_like_name(text: str) -> bool:
    """A column name rather than a data value: letters first, then letters, digits, _ - . or
    spaces; at most 40 characters and never more digits than letters."""
    if not _NAME_SHAPE.fullmatch(text):
        return False
    digits = sum(ch.isdigit() for ch in text)
    return digits <= sum(ch.isalpha() for ch in text) // 2


def _header_missing_hint(canonical: list[str]) -> str:
    if len(canonical) == 1:
        for delimiter in _OTHER_DELIMITERS:
            parts = [part.strip() for part in canonical[0].split(delimiter)]
            known = sum(part in INPUT_COLUMNS for part in parts)
            if known:
                shown = "tab" if delimiter == "\t" else f"'{delimiter}'"
                return (
                    f"; the header is one field that splits on {shown} into {len(parts)} "
                    f"names, {known} of them contract columns: the file looks {shown}-"
                    "delimited, and pa-batch reads comma-delimited CSV"
                )
    if not any(name in INPUT_COLUMNS for name in canonical):
        return "; no known column name in the first record: is the header row missing?"
    return ""


# --- CSV -------------------------------------------------------------------------------


def _compression(path: Location) -> str | None:
    """The one place compression is decided: by extension, whatever its case."""
    return "gzip" if path.name.lower().endswith(".gz") else None


def _open_binary(source: InputFile):
    if _compression(source.path) == "gzip":
        if isinstance(source.path, StorePath):  # gzip reads the store's file object
            return gzip.GzipFile(fileobj=source.path.open("rb"), mode="rb")
        return gzip.open(source.path, "rb")
    return source.path.open("rb")


def _open_csv(source: InputFile, encoding: str) -> Extract:
    """The header is the first CSV record that is not a blank line, however many physical
    lines its quoted cells span; it is read quote-aware here and skipped quote-aware below."""
    python_encoding = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    with _open_binary(source) as binary:
        text = io.TextIOWrapper(binary, encoding=python_encoding, newline="")
        rows = csv.reader(text)
        blank_rows = 0
        header = next(rows, None)
        while header == []:
            blank_rows += 1
            header = next(rows, None)
        if header is None or not any(name.strip() for name in header):
            raise RunError("empty file: no header row", file=source.label)
        # anything but line breaks after the header is a record (a header alone, without
        # its final newline, is a file of no records, not a record too long to parse)
        rest = text.read(4096)
        while rest and not rest.strip("\r\n"):
            rest = text.read(4096)
    return Extract(
        source,
        header,
        canonical_header(header, source.label),
        encoding=encoding,
        skip_rows=blank_rows + 1,
        has_records=bool(rest),
    )


def _csv_batches(extract: Extract, batch_rows: int, stream: io.RawIOBase) -> Iterator[Batch]:
    if not extract.has_records:  # a header alone, with or without its final newline
        return
    source, known = extract.source, extract.known
    positional = [f"f{i}" for i in range(len(extract.header))]
    malformed: list[tuple[int, int, str]] = []

    def on_malformed(row: pa_csv.InvalidRow) -> str:
        # row.number counts records from 1, the skipped rows (blank lines, header) included
        malformed.append((row.number - extract.skip_rows, row.actual_columns, row.text))
        return "skip"

    reader = pa_csv.open_csv(
        pa.input_stream(stream, compression=_compression(source.path)),
        read_options=pa_csv.ReadOptions(
            use_threads=False,  # record numbers of malformed rows are known only single-threaded
            block_size=CSV_BLOCK_BYTES,
            # rows, not lines: a quoted line break inside a header cell is skipped with it
            skip_rows_after_names=extract.skip_rows,
            column_names=positional,
            encoding=extract.encoding,
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
    expected_fields = len(extract.header)
    good_so_far = 0
    emitted_malformed = 0
    for record_batch in _rebatched(reader, batch_rows):
        n = record_batch.num_rows
        raw = {
            known[int(name[1:])]: record_batch.column(name) for name in record_batch.schema.names
        }
        bad = np.array([row for row, _, _ in malformed], dtype=np.int64)
        good_index = np.arange(good_so_far, good_so_far + n)
        source_rows = _good_record_numbers(good_index, bad)
        good_so_far += n
        last = int(source_rows[-1])
        cut = emitted_malformed + int(np.searchsorted(bad[emitted_malformed:], last))
        batch_malformed = malformed_frame(malformed[emitted_malformed:cut], expected_fields)
        emitted_malformed = cut
        yield Batch(None, source_rows, raw=raw, malformed=batch_malformed)
    if emitted_malformed < len(malformed):
        yield Batch(
            None,
            np.empty(0, np.int64),
            malformed=malformed_frame(malformed[emitted_malformed:], expected_fields),
        )


def _rebatched(blocks: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Blocks regrouped into batches of ``rows`` records, the last one shorter (a batch of one
    block is that block, not a copy).

    A CSV's parse blocks are small (``CSV_BLOCK_BYTES``: Arrow's reader holds several in
    flight, so their size is memory); a Parquet reader's pieces end at row groups. Batches
    are as large as ``--batch-rows`` asks: the two are separate.
    """
    pending: list[pa.RecordBatch] = []
    count = 0
    for block in blocks:
        start = 0
        while start < block.num_rows:
            taken = min(rows - count, block.num_rows - start)
            pending.append(block.slice(start, taken))
            count += taken
            start += taken
            if count == rows:
                yield _joined_batches(pending)
                pending, count = [], 0
    if count:
        yield _joined_batches(pending)


def _joined_batches(pieces: list[pa.RecordBatch]) -> pa.RecordBatch:
    return pieces[0] if len(pieces) == 1 else pa.concat_batches(pieces)


def _good_record_numbers(good_index: np.ndarray, bad_rows: np.ndarray) -> np.ndarray:
    """1-based record numbers of well-formed records, given the malformed ones' numbers.

    The g-th good record (0-based) comes after every malformed record that has at most g
    good records before it.
    """
    bad_sorted = np.sort(bad_rows)
    good_before_bad = bad_sorted - 1 - np.arange(len(bad_sorted))
    return good_index + 1 + np.searchsorted(good_before_bad, good_index, side="right")


# --- Parquet ---------------------------------------------------------------------------


def _open_parquet(source: InputFile) -> Extract:
    # pages written with CRCs are verified: corruption fails the file instead of
    # becoming plausible values
    parquet = pq.ParquetFile(arrow_source(source.path), page_checksum_verification=True)
    names = parquet.schema_arrow.names
    known = canonical_header(names, source.label)
    return Extract(
        source,
        names,
        known,
        parquet_row_group_ends=_row_group_ends(source.path, parquet.metadata),
        parquet_dictionary_columns=[
            names[position]
            for position, name in known.items()
            if name in FEW_VALUES_COLUMNS and _is_text_kind(parquet.schema_arrow[position].type)
        ],
        parquet_row_group_rows=[
            parquet.metadata.row_group(group).num_rows
            for group in range(parquet.metadata.num_row_groups)
        ],
    )


def _row_group_ends(path: Location, metadata: pq.FileMetaData) -> list[int]:
    """Where each row group's bytes end: the next one's start; the last, the footer's."""
    starts = []
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        starts.append(
            min(
                (
                    column.dictionary_page_offset
                    if column.has_dictionary_page and column.dictionary_page_offset
                    else column.data_page_offset
                )
                for column in (group.column(i) for i in range(group.num_columns))
            )
        )
    # the file ends: footer, its 4-byte length, "PAR1"
    data_end = path.stat().st_size - 8 - metadata.serialized_size
    return sorted(starts[1:]) + [data_end]


def _parquet_batches(
    extract: Extract,
    batch_rows: int,
    stream,
    row_groups: list[int] | None = None,
    first_row: int = 0,
) -> Iterator[Batch]:
    """The records of ``stream`` (of its ``row_groups``, all by default, the first of them
    record ``first_row + 1``), batch by batch."""
    names = extract.header
    # pre_buffer off: with it, iter_batches keeps every row group it has read cached until
    # the file is done (RSS grew by the file's compressed size); each column chunk is read
    # as it is decoded instead
    parquet = pq.ParquetFile(
        stream,
        page_checksum_verification=True,
        pre_buffer=False,
        read_dictionary=extract.parquet_dictionary_columns,
    )
    read_so_far = first_row
    # a column read as a dictionary ends the reader's batch at each row group (its dictionary
    # changes there): the pieces are joined back into batches of ``batch_rows``
    pieces = parquet.iter_batches(
        batch_size=batch_rows, row_groups=row_groups, columns=[names[i] for i in extract.known]
    )
    for record_batch in _rebatched(pieces, batch_rows):
        n = record_batch.num_rows
        raw = _as_cells(record_batch, extract)
        source_rows = np.arange(read_so_far + 1, read_so_far + n + 1, dtype=np.int64)
        read_so_far += n
        yield Batch(None, source_rows, raw=raw, typed=_typed(record_batch, extract))


# text columns that hold a few distinct values in any extract (a product description, a
# route, a unit): read from Parquet as dictionaries, an index a record instead of a string
# a record, and decoded only where records need their text (the screen reads the names'
# distinct values; a nightly mix's other records are never decoded)
FEW_VALUES_COLUMNS = ("drug_name", "route", "strength_unit")


def _is_text_kind(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _is_date_kind(kind: pa.DataType) -> bool:
    return pa.types.is_date(kind) or pa.types.is_timestamp(kind)


# columns whose typed Parquet values are checked as themselves (core/typed.py)
_TYPED_CHECKS = {
    "line_number": pa.types.is_integer,
    "service_date": _is_date_kind,
    "member_birth_date": _is_date_kind,
}


def _typed(record_batch: pa.RecordBatch, extract: Extract) -> dict[str, pa.Array]:
    found = {}
    for position, name in extract.known.items():
        if name in _TYPED_CHECKS:
            column = record_batch.column(extract.header[position])
            if _TYPED_CHECKS[name](column.type):
                found[name] = column
    return found


def _ascii_only(column: pa.Array) -> bool:
    """True if every byte of the column's text is ASCII (read from its data buffer)."""
    offsets, data = offsets_and_bytes(column)
    used = data[offsets[0] : offsets[-1]]
    return not len(used) or int(used.max()) < 0x80


def _as_text(column: pa.Array, label: str, name: str) -> pa.Array:
    """A Parquet text column as text, checked for UTF-8 here, as it is read."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return _as_text(column.dictionary_decode(), label, name)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if not _ascii_only(column):  # ASCII is valid UTF-8: only other text is checked
            try:
                column.validate(full=True)
            except pa.ArrowInvalid:
                raise RunError("text is not valid UTF-8", file=label, column=name) from None
        return column.cast(pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            return column.cast(pa.string())
        except pa.ArrowInvalid:
            raise RunError("text is not valid UTF-8", file=label, column=name) from None
    raise RunError(f"unsupported Parquet column type {kind}", file=label, column=name)


def _as_read(column: pa.Array) -> pa.Array:
    """A Parquet column as held: a dictionary of typed values decoded into those values."""
    if pa.types.is_dictionary(column.type) and is_typed_text_kind(column.type.value_type):
        return column.dictionary_decode()
    return column


def _column_text(column: pa.Array, label: str, name: str) -> pa.Array:
    """Any supported Parquet column as the text a CSV would carry."""
    column = _as_read(column)
    return (
        typed_as_text(column, name)
        if is_typed_text_kind(column.type)
        else _as_text(column, label, name)
    )


def _as_cells(record_batch: pa.RecordBatch, extract: Extract) -> TextCells:
    """A batch's contract columns: text checked now, typed columns kept as read (turned into
    text only for the records that need it: ``TextCells``)."""
    text, typed, dictionaries = {}, {}, {}
    for position, name in extract.known.items():
        column = _as_read(record_batch.column(extract.header[position]))
        if is_typed_text_kind(column.type):
            typed[name] = column
        elif pa.types.is_dictionary(column.type):  # checked on its distinct values only
            values = _as_text(column.dictionary, extract.source.label, name)
            dictionaries[name] = pa.DictionaryArray.from_arrays(column.indices, values)
        else:
            text[name] = _as_text(column, extract.source.label, name)
    return TextCells(text, typed, dictionaries)
