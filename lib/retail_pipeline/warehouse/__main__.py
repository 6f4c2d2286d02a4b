"""`python -m retail_pipeline.warehouse --warehouse URL --output DIR`: the load as a job step
(EMR step, Glue job, cron), the same as `python -m retail_pipeline load ...` (strict arguments,
JSON logs by flag)."""

import sys

from retail_pipeline.cli import exit_program, main

exit_program(main(["load", *sys.argv[1:]]))
