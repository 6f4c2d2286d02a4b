"""Logging set-up: stdlib logging, one logger per module, the run id on every line.

Two formats. Plain text is the local default. JSON (`--log-format json`, or
RETAIL_LOG_FORMAT=json in the environment) writes one object per line in the shape the
streaming Lambdas' Powertools logger writes, so one CloudWatch Logs Insights query reads the
batch job, the loads and the handlers alike:

    {"level": "INFO", "location": "run_batch:120", "message": "Run finished",
     "timestamp": "2026-12-07 03:00:12,345+0000", "service": "retail-batch",
     "logger": "retail_pipeline.cli", "run_id": "jr_...", "stage": "run", "published": 9853, ...}

Whatever a call passes in `extra=` (a stage, counts, durations) becomes top-level keys.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

_run_id: contextvars.ContextVar[str] = contextvars.ContextVar("run_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s [run %(run_id)s] %(name)s: %(message)s"
FORMATS = ("text", "json")
FORMAT_VARIABLE = "RETAIL_LOG_FORMAT"
SERVICE_VARIABLE = "RETAIL_LOG_SERVICE"  # Powertools reads POWERTOOLS_SERVICE_NAME likewise
DEFAULT_SERVICE = "retail-pipeline"
# The attributes every LogRecord has: anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "run_id",
    "taskName",
}


class _RunIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = _run_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, keys in Powertools' order, then the run id and extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, tz=UTC)
        entry: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": f"{created:%Y-%m-%d %H:%M:%S},{int(record.msecs):03d}+0000",
            "service": self.service,
            "logger": record.name,
            "run_id": getattr(record, "run_id", _run_id.get()),
        }
        entry |= {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
            entry["exception_name"] = record.exc_info[0].__name__ if record.exc_info[0] else ""
        return json.dumps(entry, default=str, ensure_ascii=False)


def set_run_id(run_id: str) -> None:
    _run_id.set(run_id)


def current_run_id() -> str | None:
    """The run id set for this context, or None before one is set."""
    run_id = _run_id.get()
    return None if run_id == "-" else run_id


def log_format(requested: str | None = None, environ: dict[str, str] | None = None) -> str:
    """The format asked for: the flag's value, else RETAIL_LOG_FORMAT, else text."""
    env = os.environ if environ is None else environ
    chosen = (requested or env.get(FORMAT_VARIABLE) or "text").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"log format {chosen!r} is not one of {', '.join(FORMATS)} ({FORMAT_VARIABLE})")
    return chosen


def configure_logging(
    level: int = logging.INFO, *, fmt: str | None = None, service: str | None = None
) -> None:
    """Send the package's log lines to stderr with the run id, as text or JSON (see
    `log_format`); quiet py4j's chatter."""
    handler = logging.StreamHandler()
    if log_format(fmt) == "json":
        handler.setFormatter(JsonFormatter(service or os.environ.get(SERVICE_VARIABLE) or DEFAULT_SERVICE))
    else:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_RunIdFilter())
    package_logger = logging.getLogger("retail_pipeline")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(level)
    package_logger.propagate = False
    logging.getLogger("py4j").setLevel(logging.WARNING)
