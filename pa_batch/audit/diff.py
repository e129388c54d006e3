"""`pa-batch diff OLD NEW`: what changed between two committed runs, line by line.

Reads the runs' own results (never re-decides). Lines are matched on (claim_id,
line_number), the claim line's key, unique among a run's results. A line differs when its
decision, reasons or approval window differ, or when only one run decided it.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pa_batch.audit.history import reading_run
from pa_batch.errors import RunError
from pa_batch.io.storage import Location
from pa_batch.io.tables import table_files

KEY = ["claim_id", "line_number"]
COMPARED = ["decision", "reasons", "approval_start", "approval_end"]
NONE = "(none)"
DIFF_SCHEMA = pa.schema(
    [
        ("claim_id", pa.string()),
        ("line_number", pa.int64()),
        ("service_date", pa.date32()),
        ("change", pa.string()),
        ("old_decision", pa.string()),
        ("new_decision", pa.string()),
        ("old_reasons", pa.string()),
        ("new_reasons", pa.string()),
        ("old_approval_start", pa.date32()),
        ("new_approval_start", pa.date32()),
        ("old_approval_end", pa.date32()),
        ("new_approval_end", pa.date32()),
    ]
)


# Both runs are read by DuckDB, joined and ordered out of core (it spills to a scratch
# directory past MEMORY_LIMIT), and the differing lines stream out in key order a batch at a
# time: memory follows the limit and one batch, not the runs. tests/test_diff.py holds the
# result equal to the same comparison made in pandas on whole runs.
MEMORY_LIMIT = "512MB"
BATCH_ROWS = 65_536
_GUARD = r"^'([=+\-@\t\r\n'])"  # the CSV outputs' spreadsheet guard, undone


def difference_batches(old_run: Location, new_run: Location) -> Iterator[pa.RecordBatch]:
    """The differing lines of two committed runs (DIFF_SCHEMA), ordered by claim_id and
    line_number, a batch at a time."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="pa-batch-diff-") as scratch:
        connection = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": 2})
        try:
            connection.execute(f"SET temp_directory = '{_quoted(scratch)}'")
            old_local = _local_run(old_run, Path(scratch) / "old")
            new_local = _local_run(new_run, Path(scratch) / "new")
            query = _DIFF_SQL.format(old=_results_sql(old_local), new=_results_sql(new_local))
            try:
                relation = connection.sql(query)
                # DuckDB 1.x names it fetch_arrow_reader, 2.x to_arrow_reader
                streamed = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
                reader = streamed(BATCH_ROWS)
                for batch in reader:
                    yield batch.cast(DIFF_SCHEMA)
            except duckdb.Error as error:
                raise RunError(
                    f"damaged: the runs' results cannot be compared ({type(error).__name__})",
                    file=f"{old_run}, {new_run}",
                ) from None
        finally:
            connection.close()


def _local_run(run_dir: Location, scratch: Path) -> list[Path]:
    """The run's results files (one, or a dataset's parts), local: a run on an object store
    has them copied into ``scratch`` first (DuckDB reads local files; its own S3 extension
    would be a download at run time), streamed, never held in memory."""
    with reading_run(run_dir):
        files = table_files(run_dir, "results")
        if not files:
            raise RunError("no results file in the run", file=str(run_dir))
        if isinstance(run_dir, Path):
            return [Path(str(path)) for path in files]
        scratch.mkdir()
        copies = []
        for path in files:
            copy = scratch / path.name
            with path.open("rb") as source, copy.open("wb") as target:
                shutil.copyfileobj(source, target, 1 << 24)
            copies.append(copy)
    return copies


def _quoted(text: str) -> str:
    return str(text).replace("'", "''")


def _readable(path: Path) -> None:
    """A results file that is not one (truncated, edited) fails naming it, before the query."""
    needed = {*KEY, "service_date", *COMPARED}
    try:
        if path.suffix == ".parquet":
            names = set(pq.ParquetFile(path).schema_arrow.names)
        else:
            with path.open(encoding="utf-8", newline="") as stream:
                names = set(next(csv.reader(stream), []))
    except (pa.ArrowException, OSError, UnicodeDecodeError, csv.Error) as error:
        raise RunError(
            f"damaged: not a readable results file ({type(error).__name__})", file=str(path)
        ) from None
    if not needed <= names:
        raise RunError("damaged: not the results file of a run", file=str(path))


def _results_sql(files: list[Path]) -> str:
    """A run's results as (KEY, service_date, COMPARED), typed, from Parquet or CSV."""
    for path in files:
        _readable(path)
    listed = "[" + ", ".join(f"'{_quoted(str(path))}'" for path in files) + "]"
    if files[0].suffix == ".parquet":
        return (
            "SELECT claim_id, line_number, service_date, decision, coalesce(reasons, '') AS "
            f"reasons, approval_start, approval_end FROM read_parquet({listed})"
        )

    def cell(name: str) -> str:
        return f"nullif(regexp_replace({name}, '{_quoted(_GUARD)}', '\\1'), '')"

    return (
        f"SELECT {cell('claim_id')} AS claim_id, CAST({cell('line_number')} AS BIGINT) AS "
        f"line_number, CAST({cell('service_date')} AS DATE) AS service_date, "
        f"{cell('decision')} AS decision, coalesce({cell('reasons')}, '') AS reasons, "
        f"CAST({cell('approval_start')} AS DATE) AS approval_start, "
        f"CAST({cell('approval_end')} AS DATE) AS approval_end "
        f"FROM read_csv({listed}, all_varchar = true, header = true, "
        "delim = ',', quote = '\"', escape = '\"')"
    )


_DIFF_SQL = """
WITH o AS ({old}), n AS ({new}),
joined AS (
    SELECT coalesce(n.claim_id, o.claim_id) AS claim_id,
           coalesce(n.line_number, o.line_number) AS line_number,
           coalesce(n.service_date, o.service_date) AS service_date,
           n.claim_id IS NULL AS only_old, o.claim_id IS NULL AS only_new,
           o.decision AS old_decision, n.decision AS new_decision,
           o.reasons AS old_reasons, n.reasons AS new_reasons,
           o.approval_start AS old_approval_start, n.approval_start AS new_approval_start,
           o.approval_end AS old_approval_end, n.approval_end AS new_approval_end
    FROM o FULL OUTER JOIN n ON o.claim_id = n.claim_id AND o.line_number = n.line_number
),
marked AS (
    SELECT *,
           old_decision IS DISTINCT FROM new_decision AS decision_differs,
           old_reasons IS DISTINCT FROM new_reasons AS reasons_differ,
           old_approval_start IS DISTINCT FROM new_approval_start
               OR old_approval_end IS DISTINCT FROM new_approval_end AS window_differs
    FROM joined
)
SELECT claim_id, line_number, service_date,
       CASE WHEN only_old THEN 'only in old' WHEN only_new THEN 'only in new'
            ELSE concat_ws(', ',
                CASE WHEN decision_differs THEN 'decision' END,
                CASE WHEN reasons_differ THEN 'reasons' END,
                CASE WHEN window_differs THEN 'approval window' END)
       END AS change,
       old_decision, new_decision, old_reasons, new_reasons,
       old_approval_start, new_approval_start, old_approval_end, new_approval_end
FROM marked
WHERE only_old OR only_new OR decision_differs OR reasons_differ OR window_differs
ORDER BY claim_id, line_number
"""


def diff_frame(old_run: Location, new_run: Location) -> pd.DataFrame:
    """Every differing line, in memory (the library's ``diff``)."""
    batches = list(difference_batches(old_run, new_run))
    table = pa.Table.from_batches(batches, schema=DIFF_SCHEMA)
    return table.to_pandas(date_as_object=False)


def transitions(differences: pd.DataFrame) -> Counter[tuple[str, str]]:
    old = differences["old_decision"].fillna(NONE).astype("str")
    new = differences["new_decision"].fillna(NONE).astype("str")
    return Counter(zip(old, new, strict=True))


def write_diff(
    old_run: Location, new_run: Location, path: Path
) -> tuple[int, Counter[tuple[str, str]]]:
    """Stream the differing lines into ``path`` (.csv or .parquet); their count and decision
    transitions."""
    from pa_batch.io.commit import FILE_MODE
    from pa_batch.io.tables import TableWriter

    name = path.name.lower()
    if name.endswith(".parquet"):
        fmt = "parquet"
    elif name.endswith(".csv"):
        fmt = "csv"
    else:
        raise RunError("the diff file must end in .csv or .parquet", file=str(path))
    temporary = path.with_name(f".{path.name}.partial")
    lines, changes = 0, Counter[tuple[str, str]]()
    try:
        writer = TableWriter(temporary, DIFF_SCHEMA, fmt)
        try:
            for batch in difference_batches(old_run, new_run):
                frame = batch.to_pandas(date_as_object=False)
                lines += len(frame)
                changes += transitions(frame)
                writer.write(frame)
        finally:
            writer.close()
        os.chmod(temporary, FILE_MODE)  # it holds claim ids and dates, as the run's files do
        temporary.replace(path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise RunError(f"cannot write the diff ({error.strerror})", file=str(path)) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return lines, changes
