"""`python -m retail_pipeline.warehouse --warehouse URL --output DIR`: the load as a job step
(EMR step, Glue Python shell job, cron), the same as `python -m retail_pipeline load ...`."""

import sys

from retail_pipeline.logs import configure_logging
from retail_pipeline.warehouse.cli import main

configure_logging()
sys.exit(main())
