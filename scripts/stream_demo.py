"""The streaming path end to end on this machine (`make stream-demo`); see
`retail_pipeline_dev.stream_local.demo` for what it does and its options."""

from __future__ import annotations

import sys
from pathlib import Path

# Runs from a checkout without installing the package too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from retail_pipeline_dev.stream_local.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
