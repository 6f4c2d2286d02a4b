"""Kinesis payloads and the rules applied to one record (plain Python, no I/O).

A payload is the raw record as the client sent it, with a `line_id` that names the line for
good: `<request key>:<position in the body>` (see `ingest`). The consumer re-applies the
shared rules (`rules.parse_record`, then `limits.line_problem`, then
`rules.first_matching_rule`) to the raw fields, so the stream holds no second interpretation
of them and other producers are checked alike: ingest accepts exactly the records `check`
passes, and those are the records the consumer can store and the query can find.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Final, Literal, NamedTuple

from retail_pipeline import contract, limits, rules
from retail_pipeline.stream.body import RawRecord

PUBLISHED: Final = contract.OUTCOME_PUBLISHED
FILTERED: Final = contract.OUTCOME_FILTERED
QUARANTINED: Final = contract.OUTCOME_QUARANTINED
# A line id already stored by another Kinesis record: the producer sent the line twice.
DUPLICATE: Final = "duplicate"
DUPLICATE_REASON = "duplicate_line_id"
# Quarantined in the consumer only: data that is no payload, or a line the table refused.
INVALID_PAYLOAD = "invalid_payload"
STORE_REFUSED = "store_refused"
Outcome = Literal["published", "filtered", "quarantined", "duplicate"]

FOUR_PLACES = Decimal("0.0001")


class PoisonRecordError(ValueError):
    """A Kinesis record that is no payload of this pipeline; retrying cannot help."""


class Classified(NamedTuple):
    """Where one record ends: published (with its line), filtered or quarantined (with a reason).
    (A named tuple: one is built per record, and a frozen dataclass is slower to build.)"""

    outcome: Outcome
    reason: str | None
    line: rules.InvoiceLine | None


def encode_payload(line_id: str, record: RawRecord) -> bytes:
    document = {"line_id": line_id, "record": {name: record.get(name) for name in rules.RAW_COLUMNS}}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_payload(data: bytes) -> tuple[str, RawRecord]:
    """The line id and raw record of a payload; PoisonRecordError if it is none."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as error:  # not UTF-8, not JSON, nested too deeply
        raise PoisonRecordError("the record's data is not a JSON document") from error
    if not isinstance(document, dict):
        raise PoisonRecordError("the record's data is not a JSON object")
    line_id = document.get("line_id")
    if not isinstance(line_id, str) or not limits.is_line_id(line_id):
        raise PoisonRecordError("the record has no valid line_id")
    fields = document.get("record")
    if not isinstance(fields, dict):
        raise PoisonRecordError("the record has no record object")
    record: RawRecord = {}
    for name in rules.RAW_COLUMNS:
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            raise PoisonRecordError(f"the record's field {name} is not a string")
        record[name] = value
    return line_id, record


def check(record: RawRecord) -> rules.InvoiceLine | str:
    """The line of a raw record, or why it is quarantined: the field checks, then the limits
    of the stores (ingest takes a record on exactly this answer)."""
    parsed = rules.parse_record(record)
    if isinstance(parsed, str):
        return parsed
    return limits.line_problem(record) or parsed


def classify(record: RawRecord) -> Classified:
    """The shared rules on one raw record: field checks and limits first, then the filter rules."""
    parsed = check(record)
    if isinstance(parsed, str):
        return Classified(QUARANTINED, parsed, None)
    rule = rules.first_matching_rule(parsed)
    if rule is not None:
        return Classified(FILTERED, rule.name, parsed)
    return Classified(PUBLISHED, None, parsed)


def money(value: Decimal) -> str:
    """A decimal(…,4) amount as exact text ("15.3000"), never in exponent form."""
    return format(value.quantize(FOUR_PLACES), "f")


def line_to_json(line: rules.InvoiceLine) -> dict[str, Any]:
    """A published line as plain JSON: money as exact decimal text, the time as ISO 8601."""
    return {
        "invoice_no": line.invoice_no,
        "stock_code": line.stock_code,
        "description": line.description,
        "quantity": line.quantity,
        "unit_price": money(line.unit_price),
        "revenue": money(line.revenue),
        "invoice_ts": line.invoice_ts.isoformat(),
        "customer_id": line.customer_id,
        "country": line.country,
    }
