"""Warehouse load entry point for EMR steps, Glue jobs (Python shell or Spark) and cron.

    python jobs/warehouse_load.py [--warehouse URL] [--output DIR] [--run-report FILE]

The same as `python -m retail_pipeline load ...`. It needs no Spark (spark-submit works too,
the session is never started); arguments Glue adds (--JOB_NAME, ...) are ignored.
"""

import sys

from retail_pipeline.logs import configure_logging
from retail_pipeline.warehouse import main

if __name__ == "__main__":
    configure_logging()
    sys.exit(main(sys.argv[1:]))
