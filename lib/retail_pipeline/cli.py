"""Command line: `python -m retail_pipeline batch|generate ...` and the jobs/ entry points.

Unknown arguments are logged and ignored, so the same entry point runs under spark-submit,
EMR steps and Glue, which adds its own (--JOB_NAME, --JOB_RUN_ID, --TempDir, ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import sys
import threading
import time

from retail_pipeline.config import ConfigError, load_config
from retail_pipeline.logs import configure_logging, set_run_id

logger = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_OUTPUT_LOCKED = 3  # another run holds the output: nothing was done, try again later


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retail-pipeline", description=__doc__, allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)

    batch = commands.add_parser("batch", help="run the batch ETL job", allow_abbrev=False)
    batch.add_argument("--config", help="YAML settings file (default: configs/local.yaml)")
    batch.add_argument("--input", help="input file, folder or glob (default: the config's batch.input)")
    batch.add_argument("--output", help="output folder (default: the config's batch.output)")
    batch.add_argument("--run-id", help="id of this run (default: time-stamp and random suffix)")
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

    # Parsed by their own modules (see `generate --help`, `load --help`).
    commands.add_parser("generate", help="write a synthetic input of N x 541,909 rows", add_help=False)
    commands.add_parser("load", help="load a batch run into the warehouse (star schema)", add_help=False)
    return parser


def run_batch(args: argparse.Namespace) -> int:
    from retail_pipeline import batch  # Spark is imported only by the commands that need it
    from retail_pipeline.report import render_summary
    from retail_pipeline.session import finish_class_data_sharing, get_spark

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
    run_id = args.run_id or batch.new_run_id()
    set_run_id(run_id)
    logger.info("Batch job with %s: %s -> %s", config.source, settings.input, settings.output)
    started = time.perf_counter()
    spark = get_spark(
        config.spark.app_name,
        master=config.spark.master,
        conf=config.spark.conf,
        class_data_sharing=config.spark.class_data_sharing,
        jit_c1_only=config.spark.jit_c1_only,
    )
    session_start = time.perf_counter() - started
    try:
        report = batch.run(spark, settings, quality=config.quality, run_id=run_id)
        durations = {"session_start": round(session_start, 3), **report.durations_s}
        durations["total"] = round(time.perf_counter() - started, 3)
        print(render_summary(dataclasses.replace(report, durations_s=durations)))
    finally:
        finish_class_data_sharing(spark)
    return 0


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["generate"]:
        from retail_pipeline import synthetic

        return synthetic.main(argv[1:])
    if argv[:1] == ["load"]:
        from retail_pipeline import warehouse  # no Spark: pyarrow and the database's driver

        return warehouse.main(argv[1:])
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        logger.info("Ignoring arguments this job does not use: %s", " ".join(unknown))
    # Imported here: they bring Spark, which `generate` and `load` do without.
    from retail_pipeline.inputs import InputError
    from retail_pipeline.lock import LockError, LockLostError, OutputLockedError
    from retail_pipeline.quality import QualityGateError
    from retail_pipeline.report import AccountingError

    # Most specific first: OutputLockedError and LockLostError are LockErrors.
    exit_codes: list[tuple[tuple[type[Exception], ...], int]] = [
        ((OutputLockedError,), EXIT_OUTPUT_LOCKED),
        ((AccountingError, QualityGateError, LockLostError), EXIT_FAILED),
        ((ConfigError, InputError, LockError), EXIT_BAD_INPUT),
    ]
    try:
        if args.command == "batch":
            return run_batch(args)
    except (ConfigError, InputError, LockError, AccountingError, QualityGateError) as error:
        logger.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        return next(code for kinds, code in exit_codes if isinstance(error, kinds))
    parser.error(f"unknown command {args.command!r}")
    return EXIT_FAILED
