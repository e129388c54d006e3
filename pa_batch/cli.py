"""Command line: ``pa-batch run INPUT... --out DIR`` and the reading commands. Parses
options, calls the library (``pa_batch.api``), renders its events, and maps the outcome to
an exit code; nothing else.

Every option a deployment sets once can come from a ``PA_BATCH_*`` environment variable
(``PA_BATCH_OUT``, ``PA_BATCH_REFERENCE_DIR``, ...); a flag on the command line wins.

Exit status: 0 committed; 1 failed, the input or the command is wrong, nothing committed
(one line naming the file and column); 2 command-line usage error; 3 committed, but the
reject rate exceeded --max-reject-rate; 75 failed for a passing cause (the output directory
locked by another run, a full or failing disk, an unreachable cluster): retry later.
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pa_batch.errors import RunError
from pa_batch.version import __version__

if TYPE_CHECKING:
    pass

EXIT_OK, EXIT_FAILED, EXIT_OVER_THRESHOLD = 0, 1, 3  # 2, a usage error, is click's own

ENV_PREFIX = "PA_BATCH_"
MAX_BATCH_ROWS = 1 << 30

app = typer.Typer(
    name="pa-batch",
    help="Decide prior approval of compounded baclofen powder claim lines.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    # plain help: flags show as flags (the rich layout labels them <bool>)
    rich_markup_mode=None,
)


class _Command(typer.core.TyperCommand):
    """Help that names arguments as a user types them: ``INPUT...``, not ``{inputs}...``."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        pieces += [_argument_name(param) for param in self.get_params(ctx) if _is_argument(param)]
        return pieces

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if _is_argument(param):
                param.get_help_record = _help_record(param)  # type: ignore[method-assign]
        return params


def _help_record(param):
    return lambda ctx: (_argument_name(param), param.help or "")


def _is_argument(param) -> bool:
    return param.param_type_name == "argument"


def _argument_name(param) -> str:
    return (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")


def _env(name: str) -> str:
    return ENV_PREFIX + name


class OutputFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


class Engine(StrEnum):
    local = "local"
    dask = "dask"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"pa-batch {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", is_eager=True, callback=_show_version
        ),
    ] = False,
) -> None:
    """Decide prior approval of compounded baclofen powder claim lines."""


@app.command(
    cls=_Command,
    epilog=(
        "Input columns (header names trimmed, any case): required claim_id, line_number, "
        "member_id, service_date, ndc; in the header, cells may be empty: member_birth_date, "
        "drug_name, route, strength, strength_unit, diagnosis_codes; optional quantity, "
        "days_supply, prescriber_npi, pharmacy_npi, prior_auth_number. Other columns are "
        "ignored and listed in the summary. docs/contract.md has every accepted form.\n\n"
        "Examples:\n\n"
        "  pa-batch run claims.csv --out out/\n\n"
        "  pa-batch run day1.parquet day2.csv.gz --out out/ --format csv\n\n"
        "  pa-batch run claims.csv --out out/ --reference-dir ref/ --max-reject-rate 0.05\n\n"
        "Exit status: 0 committed; 1 failed, nothing committed; 2 usage error; "
        "3 committed, reject rate over --max-reject-rate."
    ),
)
def run(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="Claim extracts, in order: .csv, .csv.gz (UTF-8 unless --encoding) or "
            ".parquet files; directories (their extracts in name order); quoted glob patterns "
            "('claims/2024-*.parquet'). Local paths or URLs (s3://, gs://, abfs://).",
            show_default=False,
        ),
    ],
    out: Annotated[
        str,
        typer.Option("--out", help="Output directory (created if absent).", envvar=_env("OUT")),
    ],
    output_format: Annotated[
        OutputFormat,
        typer.Option("--format", help="Format of results and rejects.", envvar=_env("FORMAT")),
    ] = OutputFormat.parquet,
    reference_dir: Annotated[
        str | None,
        typer.Option(
            "--reference-dir",
            help="CSV files overriding the shipped reference data.",
            envvar=_env("REFERENCE_DIR"),
        ),
    ] = None,
    max_reject_rate: Annotated[
        float | None,
        typer.Option(
            "--max-reject-rate",
            min=0.0,
            max=1.0,
            help="Exit 3 if rejected/read exceeds this.",
            envvar=_env("MAX_REJECT_RATE"),
        ),
    ] = None,
    encoding: Annotated[
        str,
        typer.Option("--encoding", help="Text encoding of CSV inputs.", envvar=_env("ENCODING")),
    ] = "utf-8",
    batch_rows: Annotated[
        int | None,
        typer.Option(
            "--batch-rows",
            min=1,
            max=MAX_BATCH_ROWS,
            help="Records decided at a time (default 98,304): bounds memory, never outputs.",
            envvar=_env("BATCH_ROWS"),
        ),
    ] = None,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="text: progress on stderr, outcome table on stdout. "
            "json: one JSON object per line on stdout, the last one run_finished.",
            envvar=_env("LOG_FORMAT"),
        ),
    ] = LogFormat.text,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            help="The scheduler's id for this run (any printable text, at most 250; an "
            "Airflow run id is one); default: a fresh one. A retry of a committed run with the "
            "same inputs writes nothing and exits as it did.",
            envvar=_env("RUN_ID"),
        ),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="local: this process. dask: the workers of a Dask cluster (same outputs).",
            envvar=_env("ENGINE"),
        ),
    ] = Engine.local,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="With --engine dask: the scheduler's address (tcp://host:8786); "
            "default: a local cluster.",
            envvar=_env("SCHEDULER"),
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="A policy definition (TOML) replacing the shipped one: versions by service date.",
            envvar=_env("POLICY"),
        ),
    ] = None,
    keep_runs: Annotated[
        int,
        typer.Option(
            "--keep-runs",
            min=1,
            max=100_000,
            help="Committed runs kept under DIR/.pa-batch/runs, newest first (default 30).",
            envvar=_env("KEEP_RUNS"),
        ),
    ] = 30,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback on failure.")] = False,
) -> None:
    """Decide every baclofen powder line of INPUT...; write results, rejects and a summary."""
    from pa_batch import api
    from pa_batch.io.commit import new_run_id, run_id_problem
    from pa_batch.runner.engines import scheduler_address_problem
    from pa_batch.runner.runlog import RunLog

    _check_encoding(encoding)
    located_inputs = [_located(value, "INPUT") for value in inputs]
    out_dir = _located(out, "--out")
    located_reference = _located(reference_dir, "--reference-dir") if reference_dir else None
    located_policy = _located(policy, "--policy") if policy else None
    if run_id is not None and (problem := run_id_problem(run_id)):
        raise typer.BadParameter(problem, param_hint="--run-id")
    if scheduler and engine != Engine.dask:
        raise typer.BadParameter("needs --engine dask", param_hint="--scheduler")
    if scheduler and (problem := scheduler_address_problem(scheduler)):
        raise typer.BadParameter(problem, param_hint="--scheduler")
    run_id = run_id or new_run_id()
    log = RunLog(log_format.value)
    try:
        result = api.run(
            located_inputs,
            out_dir,
            reference_dir=located_reference,
            policy=located_policy,
            run_id=run_id,
            output_format=output_format.value,
            engine=engine.value,
            scheduler=scheduler,
            max_reject_rate=max_reject_rate,
            batch_rows=batch_rows,
            keep_runs=keep_runs,
            encoding=encoding,
            on_event=log,
        )
    except RunError as error:  # already told: the run_failed and run_finished events
        if debug:  # the traceback, then the one line again, last, as without --debug
            traceback.print_exc()
            _stderr_line(f"pa-batch: error: {error}")
        raise typer.Exit(api.exit_code_of(error)) from None
    if log.out_error is not None:
        _stderr_line(
            f"pa-batch: warning: run {run_id} is committed to {out}, but standard output "
            f"could not be written ({log.out_error})"
        )
    raise typer.Exit(result.exit_code)


@app.command("runs")
def runs_command(
    out: Annotated[str, typer.Argument(metavar="DIR", help="An output directory of pa-batch run.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON list, newest first, for schedulers.")
    ] = False,
) -> None:
    """List DIR's runs, newest first: committed ones (kept by --keep-runs) and failures."""
    from pa_batch.audit.history import list_runs, runs_table

    with _one_line_on_failure():
        runs = list_runs(_located(out, "DIR"))
    if as_json:
        typer.echo(json.dumps([asdict(entry) for entry in runs], indent=2))
    else:
        typer.echo(runs_table(runs))


@app.command("diff")
def diff_command(
    old: Annotated[str, typer.Argument(metavar="OLD", help="An output directory, run dir or id.")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="An output directory, run dir or id.")],
    out: Annotated[
        str, typer.Option("--out", help="The differing lines, as a local .csv or .parquet.")
    ],
    runs_in: Annotated[
        str | None,
        typer.Option("--in", help="The output directory whose history holds OLD and NEW ids."),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the counts and transitions as one JSON document."),
    ] = False,
) -> None:
    """Every line whose decision, reasons or approval window differ between two committed
    runs, or that only one decided; prints the decision transitions (counts only).

    OLD and NEW are output directories (their current run), run directories, or run ids in
    the history of --in DIR (or of the other argument, when it is an output directory).
    """
    from pa_batch.audit.diff import write_diff
    from pa_batch.audit.history import refuse_history_path, resolve_run

    def base_for(other: str):
        if runs_in is not None:
            return _located(runs_in, "--in")
        other_path = _located(other, "OLD/NEW")
        return other_path if (other_path / ".pa-batch").is_dir() else None

    out_file = _located(out, "--out")
    if not isinstance(out_file, Path):
        raise typer.BadParameter("the diff is written to a local file", param_hint="--out")
    with _one_line_on_failure():
        refuse_history_path(out_file)
        old_run = resolve_run(old, base_for(new))
        new_run = resolve_run(new, base_for(old))
        lines, counted = write_diff(old_run, new_run, out_file)
    changes = sorted(counted.items())
    if as_json:
        document = {
            "old": str(old_run),
            "new": str(new_run),
            "lines_differ": lines,
            "out": str(out),
            "transitions": [
                {"old": before, "new": after, "lines": count} for (before, after), count in changes
            ],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(f"{lines:,} lines differ; written to {out}")
    for (before, after), count in changes:
        typer.echo(f"  {before} \u2192 {after}: {count:,}")


@app.command("explain")
def explain_command(
    run: Annotated[
        str,
        typer.Argument(
            metavar="RUN", help="An output directory (its current run) or a run's directory."
        ),
    ],
    claim_id: Annotated[str, typer.Argument(metavar="CLAIM_ID", help="The claim to explain.")],
    line: Annotated[
        int | None, typer.Option("--line", min=1, help="Only this line of the claim.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document instead.")] = False,
    runs_in: Annotated[
        str | None,
        typer.Option("--in", help="The output directory whose history holds RUN, a run id."),
    ] = None,
) -> None:
    """Why each line of CLAIM_ID got its outcome: the input, what it was normalized to, every
    criterion in policy order with the observed value and the limit or reference row that
    decided it, the decision, advisories and approval window; a rejected record's errors.

    Reads the run's own copies of the policy and reference files, not today's.
    """
    from pa_batch.audit.explain import explain, render_text
    from pa_batch.audit.history import resolve_run

    with _one_line_on_failure():
        base = _located(runs_in, "--in") if runs_in is not None else None
        explained = explain(resolve_run(run, base), claim_id, line)
    typer.echo(json.dumps(explained, indent=2) if as_json else render_text(explained))


policy_app = typer.Typer(
    help="The policy definition: show the shipped one, check an edited one.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(policy_app, name="policy")


@policy_app.command("show")
def policy_show_command() -> None:
    """Print the shipped definition (TOML): copy it, edit it, pass it to --policy."""
    from pa_batch.policy.definition import load_policy

    with _one_line_on_failure():
        typer.echo(load_policy().text, nl=False)


@policy_app.command("check")
def policy_check_command(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="A policy definition (TOML).")],
) -> None:
    """Validate FILE as --policy would, without running.

    Prints its versions, their dates and terms; an invalid file fails in one line naming the
    key (exit 1)."""
    from pa_batch.policy.definition import describe_policy, load_policy

    with _one_line_on_failure():
        policy = load_policy(path)
    typer.echo(describe_policy(policy))


@contextmanager
def _one_line_on_failure() -> Iterator[None]:
    """The reading commands (runs, diff, explain) fail as run does: one line, exit 1."""
    try:
        yield
    except RunError as error:
        typer.echo(f"pa-batch: error: {error}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    except Exception as error:  # a defect of ours: one line all the same; its text may quote data
        typer.echo(f"pa-batch: error: internal error ({type(error).__name__})", err=True)
        raise typer.Exit(EXIT_FAILED) from None


def _located(value: str, hint: str):
    """A path or URL as the run reads it; a URL it cannot use is a usage error."""
    from pa_batch.io.storage import locate

    try:
        return locate(value)
    except RunError as error:
        raise typer.BadParameter(str(error), param_hint=hint) from None


def _check_encoding(encoding: str) -> None:
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise typer.BadParameter("unknown encoding", param_hint="--encoding") from None
    # rot13, hex, base64, zlib... are codecs, but not encodings of text
    if not getattr(codec, "_is_text_encoding", True):
        raise typer.BadParameter("not a text encoding", param_hint="--encoding")


def _stderr_line(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(_one_line(text) + "\n")
        sys.stderr.flush()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main() -> None:
    from pa_batch.tuning import use_returning_allocator

    use_returning_allocator()  # the command's process only: never a library caller's
    try:
        app(prog_name="pa-batch")
    finally:
        _quiet_broken_stdout()
        # the command's work is done and committed: Python's collection at exit would walk
        # every object pandas, pyarrow and distributed made on import (0.3 s of every run,
        # the longest step of a dask client's end); frozen, they go with the process
        gc.freeze()


def _quiet_broken_stdout() -> None:
    """If stdout is a closed pipe or a full device, Python's own flush at exit would print
    a traceback-like "Exception ignored" line: flush now, and send what is left nowhere."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":  # pragma: no cover
    main()
