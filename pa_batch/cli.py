"""Command line: ``pa-batch run INPUT... --out DIR``. Parses options, calls ``pipeline.run``.

Exit status: 0 committed; 1 failed, nothing committed (one line naming the file and column);
2 command-line usage error; 3 committed, but the reject rate exceeded --max-reject-rate.
"""

from __future__ import annotations

import sys
import traceback
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from pa_batch import __version__
from pa_batch.errors import RunError

if TYPE_CHECKING:
    from pa_batch.runlog import RunLog

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_OVER_THRESHOLD = 0, 1, 2, 3

app = typer.Typer(
    name="pa-batch",
    help="Decide prior approval of compounded baclofen powder claim lines.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)


class OutputFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"pa-batch {__version__}")
        raise typer.Exit(EXIT_OK)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  pa-batch run claims.csv --out out/\n\n"
        "  pa-batch run day1.parquet day2.csv.gz --out out/ --format csv\n\n"
        "  pa-batch run claims.csv --out out/ --reference-dir ref/ --max-reject-rate 0.05\n\n"
        "Exit status: 0 committed; 1 failed, nothing committed; 2 usage error; "
        "3 committed, reject rate over --max-reject-rate."
    )
)
def run(
    inputs: Annotated[
        list[Path], typer.Argument(help="Claim extracts: .csv, .csv.gz or .parquet, in order.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output directory (created if absent).")],
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="Format of results and rejects.")
    ] = OutputFormat.parquet,
    reference_dir: Annotated[
        Path | None,
        typer.Option("--reference-dir", help="CSV files overriding the shipped reference data."),
    ] = None,
    max_reject_rate: Annotated[
        float | None,
        typer.Option(
            "--max-reject-rate", min=0.0, max=1.0, help="Exit 3 if rejected/read exceeds this."
        ),
    ] = None,
    encoding: Annotated[
        str, typer.Option("--encoding", help="Text encoding of CSV inputs.")
    ] = "utf-8",
    batch_rows: Annotated[
        int | None,
        typer.Option(
            "--batch-rows",
            min=1,
            help="Records decided at a time (default 524,288): bounds memory, never outcomes.",
        ),
    ] = None,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="text: progress on stderr, outcome table on stdout. "
            "json: one JSON object per line on stdout, the last one run_finished.",
        ),
    ] = LogFormat.text,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback on failure.")] = False,
) -> None:
    """Decide every baclofen powder line of INPUTS; write results, rejects and a summary."""
    from pa_batch.pipeline import RunOptions
    from pa_batch.pipeline import run as run_pipeline
    from pa_batch.runlog import RunLog

    _check_encoding(encoding)
    log = RunLog(log_format.value)
    options = RunOptions(
        inputs=inputs,
        out_dir=out,
        output_format=output_format.value,
        reference_dir=reference_dir,
        max_reject_rate=max_reject_rate,
        encoding=encoding,
        **({"batch_rows": batch_rows} if batch_rows else {}),
    )
    try:
        report = run_pipeline(options, progress=log)
    except RunError as error:
        _fail(log, debug, error.message, file=error.file, column=error.column)
    except Exception as error:  # an unexpected failure: its text may quote data, so name the type
        _fail(
            log,
            debug,
            f"internal error ({type(error).__name__}); rerun with --debug for a traceback",
        )
    log.committed(
        out=str(out),
        run_id=report.run_id,
        rows_read=report.counts.rows_read,
        outcomes=report.counts.outcomes,
        reject_rate=report.reject_rate,
    )
    if report.over_reject_threshold:
        log.over_threshold(report.reject_rate, max_reject_rate)
        log.finished("committed_over_threshold", EXIT_OVER_THRESHOLD)
        raise typer.Exit(EXIT_OVER_THRESHOLD)
    log.finished("committed", EXIT_OK)


def _check_encoding(encoding: str) -> None:
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise typer.BadParameter("unknown encoding", param_hint="--encoding") from None


def _fail(
    log: RunLog, debug: bool, message: str, *, file: str | None = None, column: str | None = None
) -> NoReturn:
    if debug:
        traceback.print_exc()
    log.failed(message, file=file, column=column)
    log.finished("failed", EXIT_FAILED)
    raise typer.Exit(EXIT_FAILED)


def main() -> None:
    app(prog_name="pa-batch")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
