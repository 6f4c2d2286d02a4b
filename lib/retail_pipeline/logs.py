"""Logging set-up: stdlib logging, one logger per module, the run id on every line."""

from __future__ import annotations

import contextvars
import logging

_run_id: contextvars.ContextVar[str] = contextvars.ContextVar("run_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s [run %(run_id)s] %(name)s: %(message)s"


class _RunIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = _run_id.get()
        return True


def set_run_id(run_id: str) -> None:
    _run_id.set(run_id)


def configure_logging(level: int = logging.INFO) -> None:
    """Send the package's log lines to stderr with the run id; quiet py4j's chatter."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_RunIdFilter())
    package_logger = logging.getLogger("retail_pipeline")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(level)
    package_logger.propagate = False
    logging.getLogger("py4j").setLevel(logging.WARNING)
