"""The streaming path's reading of a line, in plain Python, for tests that compare it with the
batch job's (Spark) classification of the same line: test_rule_parity, test_parser_properties
and test_bad_inputs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NamedTuple

from retail_pipeline import rules, transforms
from retail_pipeline.stream import body

LINE_BREAKS = re.compile(r"\r\n|\r|\n")  # where Hadoop's line reader ends a line
CONTROL = re.compile(rules.CONTROL_CHARACTERS)
CURATED_VALUES = transforms.CURATED_COLUMNS[:9]  # the columns both interpreters compute


class Outcome(NamedTuple):
    outcome: str  # header, published, filtered or quarantined
    reason: str | None
    values: tuple[Any, ...] | None  # the curated values of a published or filtered line


def python_outcome(line: str, *, bounds: tuple[datetime, datetime] | None = None) -> Outcome:
    """Where the streaming path puts one text line (or record read whole): its own CSV body
    parser (`stream.body.parse_csv`: the line reasons), then `rules.parse_record` on the
    fields (InvoiceDate within `bounds`, when given) and `rules.first_matching_rule`."""
    if line == rules.RAW_HEADER:  # the body parser skips a repeated header: no record to compare
        return Outcome("header", None, None)
    (found,) = body.parse_csv(f"{rules.RAW_HEADER}\r\n{line}\r\n")
    if found.record is None:
        return Outcome("quarantined", found.reason, None)
    return _record_outcome(found.record, bounds=bounds)


def _record_outcome(record: dict[str, str | None], *, bounds: tuple[datetime, datetime] | None) -> Outcome:
    parsed = rules.parse_record(record, invoice_ts_range=bounds)
    if isinstance(parsed, str):
        return Outcome("quarantined", parsed, None)
    values = curated_values(parsed)
    rule = rules.first_matching_rule(parsed)
    return Outcome("filtered", rule.name, values) if rule else Outcome("published", None, values)


def curated_values(line: rules.InvoiceLine) -> tuple:
    """A typed line's curated business columns, in the contract's order."""
    return (
        line.invoice_no,
        line.stock_code,
        line.description,
        line.quantity,
        line.unit_price,
        line.revenue,
        line.invoice_ts,
        line.customer_id,
        line.country,
    )


def spark_outcome(row: Any) -> Outcome:
    """The same for a line Spark classified (`transforms.classify_lines`)."""
    if row["outcome"] in (transforms.OUTCOME_QUARANTINED, transforms.OUTCOME_HEADER):
        return Outcome(row["outcome"], row["reason"], None)
    return Outcome(row["outcome"], row["reason"], tuple(row[c] for c in CURATED_VALUES))
