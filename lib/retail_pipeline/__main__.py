"""`python -m retail_pipeline <command> ...`"""

import sys

from retail_pipeline.cli import main

sys.exit(main())
