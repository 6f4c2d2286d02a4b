"""Warehouse load entry point for EMR steps, Glue jobs and cron.

    python jobs/warehouse_load.py [--warehouse URL] [--output DIR] [--run-report FILE]

The same as `python -m retail_pipeline load ...`, with its strict arguments (Glue's own job
parameters are tolerated, anything else exits 2), --log-format json, --metrics-to and the
lineage options. It needs no Spark (spark-submit works too, the session is never started).
On AWS the scheduled load runs as a Lambda function instead (`retail_pipeline.orchestration`).
"""

import sys

from retail_pipeline.cli import exit_program, main

if __name__ == "__main__":
    exit_program(main(["load", *sys.argv[1:]]))
