"""Command line: `python -m retail_pipeline batch|load ...` and the jobs/ entry points, which
end with `exit_program`.

Arguments are strict: the job's own are parsed, the job parameters Glue documents and adds to
each run (--JOB_NAME, --JOB_RUN_ID, --TempDir, ...: `glue.GLUE_OWN_ARGUMENTS`) are tolerated
and logged, and anything else stops the command with exit code 2, naming the argument: a
mistyped `--ouptut x` must not run the job on the configured output. EMR steps pass exactly
the arguments the step lists. On Glue, --JOB_RUN_ID is the run id unless --run-id is given,
so a run report, its log lines, metrics and lineage all match the Glue run.

Exit codes: 0 done (or nothing new), 1 the run failed (quality gate, accounting, lost lock),
2 bad arguments, config or input, 3 another run holds the output (nothing was done).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from retail_pipeline.config import ConfigError, load_config
from retail_pipeline.glue import GLUE_OWN_ARGUMENTS
from retail_pipeline.logs import FORMATS, configure_logging, set_run_id

logger = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_OUTPUT_LOCKED = 3  # another run holds the output: nothing was done, try again later

GLUE_RUN_ID = "--JOB_RUN_ID"
GLUE_JOB_NAME = "--JOB_NAME"
LOG_FORMAT_FLAG = "--log-format"


class ArgumentsError(ValueError):
    """An argument no command and no platform defines (exit code 2)."""


def split_platform_arguments(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The arguments without the platform's (Glue's job parameters, each `--name value` or
    `--name=value`), and the platform's by name."""
    remaining: list[str] = []
    platform: dict[str, str] = {}
    tokens = list(argv)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name, has_value, value = token.partition("=")
        if token.startswith("--") and name in GLUE_OWN_ARGUMENTS:
            if not has_value and index + 1 < len(tokens) and not tokens[index + 1].startswith("--"):
                index += 1
                value = tokens[index]
            platform[name] = value
        else:
            remaining.append(token)
        index += 1
    return remaining, platform


def pop_log_format(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """`--log-format text|json`, which every command takes (before or after its name)."""
    remaining: list[str] = []
    chosen: str | None = None
    tokens = list(argv)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == LOG_FORMAT_FLAG:
            if index + 1 >= len(tokens):
                raise ArgumentsError(f"{LOG_FORMAT_FLAG} needs a value: {' or '.join(FORMATS)}")
            chosen = tokens[index + 1]
            index += 2
            continue
        if token.startswith(f"{LOG_FORMAT_FLAG}="):
            chosen = token.partition("=")[2]
        else:
            remaining.append(token)
        index += 1
    if chosen is not None and chosen not in FORMATS:
        raise ArgumentsError(f"{LOG_FORMAT_FLAG} must be one of {', '.join(FORMATS)}, not {chosen!r}")
    return remaining, chosen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retail-pipeline", description=__doc__, allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)

    batch = commands.add_parser("batch", help="run the batch ETL job", allow_abbrev=False)
    batch.add_argument("--config", help="YAML settings file (default: configs/local.yaml)")
    batch.add_argument("--input", help="input file, folder or glob (default: the config's batch.input)")
    batch.add_argument("--output", help="output folder (default: the config's batch.output)")
    batch.add_argument("--run-id", help="id of this run (default: Glue's --JOB_RUN_ID, else a time stamp)")
    batch.add_argument(
        "--incremental",
        nargs="?",
        const="true",
        choices=["true", "false"],
        help="process only input files the output's ledger has not seen as they are now"
        " (default: the config's batch.incremental; Glue passes '--incremental true')",
    )

    batch.add_argument("--catalog-database", help="Glue database of the curated table (with --catalog-table)")
    batch.add_argument("--catalog-table", help="Glue table whose partitions the run switches to its months")
    add_observability_arguments(batch)

    # Parsed by its own module (see `load --help`).
    commands.add_parser("load", help="load a batch run into the warehouse (star schema)", add_help=False)
    return parser


def add_observability_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        LOG_FORMAT_FLAG,
        choices=FORMATS,
        help="text (default) or json, one object per line (default: $RETAIL_LOG_FORMAT)",
    )
    parser.add_argument(
        "--metrics-to",
        help="where the CloudWatch embedded-metric-format records go: stdout, or a file"
        " (JSON Lines, appended); default $RETAIL_METRICS_TO, else nowhere",
    )
    parser.add_argument(
        "--lineage-file",
        help="append OpenLineage events to this file (default: $RETAIL_LINEAGE_FILE, else"
        " <output>/lineage/openlineage.jsonl for a local output)",
    )
    parser.add_argument("--lineage-url", help="send OpenLineage events over HTTP (default: $OPENLINEAGE_URL)")


def run_batch(args: argparse.Namespace, platform: dict[str, str]) -> int:
    from retail_pipeline import batch  # Spark is imported only by the commands that need it
    from retail_pipeline.observe import BatchObserver
    from retail_pipeline.report import render_summary
    from retail_pipeline.session import spark_session

    config = load_config(args.config)
    if config.quality.enabled:
        # Great Expectations takes seconds to import: let that overlap the JVM's start.
        threading.Thread(target=importlib.import_module, args=("great_expectations",), daemon=True).start()
    settings = config.batch
    if args.input:
        settings = dataclasses.replace(settings, input=args.input)
    if args.output:
        settings = dataclasses.replace(settings, output=args.output)
    if args.catalog_database or args.catalog_table:
        settings = dataclasses.replace(
            settings, catalog_database=args.catalog_database, catalog_table=args.catalog_table
        )
    if args.incremental is not None:
        settings = dataclasses.replace(settings, incremental=args.incremental == "true")
    run_id = args.run_id or platform.get(GLUE_RUN_ID) or batch.new_run_id()
    set_run_id(run_id)
    logger.info("Batch job with %s: %s -> %s", config.source, settings.input, settings.output)
    observer = BatchObserver.of(args, settings, run_id=run_id, job=platform.get(GLUE_JOB_NAME))
    started = time.perf_counter()
    with spark_session(config.spark) as spark:
        session_start = time.perf_counter() - started
        observer.started(spark_version=spark.version)
        try:
            report = batch.run(spark, settings, quality=config.quality, run_id=run_id)
            durations = {"session_start": round(session_start, 3), **report.durations_s}
            durations["total"] = round(time.perf_counter() - started, 3)
            report = dataclasses.replace(report, durations_s=durations)
            print(render_summary(report))
            observer.finished(report)
        except BaseException as error:
            observer.failed(error)
            raise
    return 0


def run_load(argv: list[str], platform: dict[str, str]) -> int:
    """`load`: the warehouse CLI's arguments (checked strictly), with lineage and metrics."""
    from retail_pipeline.observe import run_observed_load

    return run_observed_load(argv, job=platform.get(GLUE_JOB_NAME))


def exit_program(code: int) -> NoReturn:
    """End the process with `code`. The interpreter's garbage collections at exit would walk
    every object Great Expectations, pandas and SciPy left behind (1.1 s of every run,
    docs/benchmarks.md); frozen, they go with the process. Open files are still closed and
    flushed, and exit handlers run."""
    gc.freeze()
    sys.exit(code)


def program() -> NoReturn:
    """The `retail-pipeline` console script."""
    exit_program(main())


def main(argv: list[str] | None = None) -> int:
    tokens = sys.argv[1:] if argv is None else argv
    try:
        tokens, log_format = pop_log_format(tokens)
    except ArgumentsError as error:
        configure_logging()
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    configure_logging(fmt=log_format, service="retail-load" if tokens[:1] == ["load"] else "retail-batch")
    tokens, platform = split_platform_arguments(tokens)
    if platform:
        shown = " ".join(f"{name} {value}" for name, value in platform.items())
        logger.info("Ignoring arguments this job does not use: %s", shown)
    if tokens[:1] == ["load"]:
        return run_load(tokens[1:], platform)
    parser = build_parser()
    args = parser.parse_args(tokens)  # anything unknown: exit 2, naming it
    return run_command(parser, args, platform)


def run_command(parser: argparse.ArgumentParser, args: argparse.Namespace, platform: dict[str, Any]) -> int:
    # Imported here: they bring Spark, which `load` does without.
    from retail_pipeline.batch import StorageError
    from retail_pipeline.inputs import InputError
    from retail_pipeline.lock import LockError, LockLostError, OutputLockedError
    from retail_pipeline.quality import QualityGateError
    from retail_pipeline.report import AccountingError

    # Most specific first: OutputLockedError and LockLostError are LockErrors.
    exit_codes: list[tuple[tuple[type[Exception], ...], int]] = [
        ((OutputLockedError,), EXIT_OUTPUT_LOCKED),
        ((AccountingError, QualityGateError, LockLostError, StorageError), EXIT_FAILED),
        ((ConfigError, InputError, LockError), EXIT_BAD_INPUT),
    ]
    try:
        if args.command == "batch":
            return run_batch(args, platform)
    except (ConfigError, InputError, LockError, AccountingError, QualityGateError, StorageError) as error:
        logger.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        return next(code for kinds, code in exit_codes if isinstance(error, kinds))
    parser.error(f"unknown command {args.command!r}")
    return EXIT_FAILED
