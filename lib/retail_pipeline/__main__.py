"""`python -m retail_pipeline <command> ...`"""

from retail_pipeline.cli import exit_program, main

exit_program(main())
