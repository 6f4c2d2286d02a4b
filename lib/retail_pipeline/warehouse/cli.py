"""`python -m retail_pipeline load [--warehouse URL] [--output DIR] [--run-report FILE | --all]`

Loads the batch run that <output>/reports/run_report.json describes (a run that found nothing
new loads nothing), or with --all every line the output holds (a first load or a rebuild). The
warehouse defaults to $RETAIL_WAREHOUSE_URL, else the embedded DuckDB file
<output>/warehouse.duckdb. Arguments the job does not know (Glue's --JOB_NAME, ...) are logged
and ignored. Exit codes: 0 loaded (or nothing to load), 1 the load failed and was rolled back,
2 bad arguments or input.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from retail_pipeline.warehouse.errors import WarehouseError, WarehouseInputError
from retail_pipeline.warehouse.files import NOTHING_NEW
from retail_pipeline.warehouse.loader import LoadResult, load_output, load_run

logger = logging.getLogger(__name__)

URL_VARIABLE = "RETAIL_WAREHOUSE_URL"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retail-pipeline load",
        description="Load a batch run's curated data into the warehouse (star schema).",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--warehouse",
        help=f"duckdb:///FILE, postgresql://..., redshift://... (default: ${URL_VARIABLE}, "
        "else duckdb:///<output>/warehouse.duckdb)",
    )
    parser.add_argument("--output", help="the batch job's output folder (default: the config's batch.output)")
    parser.add_argument("--config", help="YAML settings file, for the default output folder")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--run-report", help="a run report to load (default: <output>/reports/run_report.json)"
    )
    which.add_argument(
        "--all",
        action="store_true",
        help="load every line the output holds, each source file replacing its lines (a new"
        " warehouse, or one rebuilt after its tables were dropped)",
    )
    return parser


def default_output(config_path: str | None) -> str:
    from retail_pipeline.config import ConfigError, load_config

    try:
        return load_config(config_path).batch.output
    except ConfigError as error:
        raise WarehouseInputError(f"{error} (or pass --output)") from None


def default_warehouse(output: str) -> str:
    if os.environ.get(URL_VARIABLE):
        return os.environ[URL_VARIABLE]
    if "://" in output:
        raise WarehouseInputError(f"--warehouse is required when the output is not local ({output})")
    return f"duckdb:///{output.rstrip('/')}/warehouse.duckdb"


def render_summary(result: LoadResult) -> str:
    if result.status == NOTHING_NEW:
        return f"Nothing to load into {result.warehouse}: run {result.batch_id} found no new input"
    rows = [
        ("batch", result.batch_id),
        ("files", f"{result.files:,}"),
        ("lines loaded", f"{result.rows:,}"),
        ("lines replaced", f"{result.replaced_rows:,}"),
        ("revenue loaded", str(result.revenue)),
        *((f"  {name} rows", f"{count:,}") for name, count in result.table_rows.items()),
        *((f"  {stage} (s)", f"{seconds:.2f}") for stage, seconds in result.durations_s.items()),
        ("lines per second", f"{result.rows_per_second:,.0f}"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"Loaded into {result.warehouse}"]
    lines += [f"{label.ljust(width)}   {value}" for label, value in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        logger.info("Ignoring arguments this job does not use: %s", " ".join(unknown))
    try:
        output = args.output or default_output(args.config)
        url = args.warehouse or default_warehouse(output)
        result = load_output(url, output) if args.all else load_run(url, output, run_report=args.run_report)
    except WarehouseError as error:
        logger.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(render_summary(result))
    return 0
