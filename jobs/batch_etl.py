"""Batch ETL entry point for spark-submit, EMR steps and Glue.

    spark-submit jobs/batch_etl.py [--config FILE] [--input PATH] [--output DIR] [--incremental]

The same as `python -m retail_pipeline batch ...`. Glue's own job parameters (--JOB_NAME,
--TempDir, ...) are tolerated and its --JOB_RUN_ID becomes the run id; any other unknown
argument stops the job with exit code 2.
"""

import sys

from retail_pipeline.cli import exit_program, main

if __name__ == "__main__":
    exit_program(main(["batch", *sys.argv[1:]]))
