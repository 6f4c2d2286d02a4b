"""Batch ETL entry point for spark-submit, EMR steps and Glue.

    spark-submit jobs/batch_etl.py [--config FILE] [--input PATH] [--output DIR]

The same as `python -m retail_pipeline batch ...`; arguments Glue adds are ignored.
"""

import sys

from retail_pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["batch", *sys.argv[1:]]))
