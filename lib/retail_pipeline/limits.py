"""The limits a line must fit, in one place: the request, the stream, the table and the query API.

Plain constants and small pure functions (no Spark, no AWS client), shared by the streaming
ingest and consumer and, through the same constants, by the batch rules: a line either path
publishes can be stored in DynamoDB and found by `GET /transactions`.

A published line must satisfy, after the field checks of `rules.FIELD_CHECKS`:
- `invalid_invoice_no` / `invalid_stock_code`: the trimmed key is at most KEY_MAX_CHARS
  characters and holds none of KEY_FORBIDDEN_CHARACTERS (what the query API can look up; far
  below DynamoDB's 2,048-byte partition and 1,024-byte sort key limits);
- `record_too_large`: its raw fields hold at most LINE_MAX_BYTES of UTF-8 together (it then
  fits a DynamoDB item and a Kinesis record whatever JSON escaping does to it);
- `invalid_text`: every field is Unicode text that UTF-8 can encode (no lone surrogates: a
  JSON `"\\ud800"` escape, or bytes of a body that were not UTF-8).

In Spark the first two are `F.length(c) > KEY_MAX_CHARS | c.rlike(KEY_FORBIDDEN_CHARACTERS)`
per key column and `sum of F.octet_length(c) > LINE_MAX_BYTES`; Spark's `length` counts
characters as Python's `len` does, and the pattern reads the same in Java and Python.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

# ---- the request (API Gateway -> the ingest Lambda)
# Lambda's synchronous payload limit is 6 MB; INGEST_MAX_BODY_BYTES may lower it.
REQUEST_MAX_BYTES: Final = 6_000_000
# Records (CSV lines after the header, JSON list elements) per request; more is a 413.
REQUEST_MAX_RECORDS: Final = 10_000
# The ingest answer lists the first rejections only, with a count per reason for all of them.
REJECTIONS_LISTED: Final = 100

# ---- Kinesis
KINESIS_RECORD_MAX_BYTES: Final = 1024 * 1024  # data + partition key
KINESIS_PARTITION_KEY_MAX_CHARS: Final = 256
PUT_RECORDS_MAX_RECORDS: Final = 500
PUT_RECORDS_MAX_BYTES: Final = 5 * 1024 * 1024

# ---- DynamoDB
PARTITION_KEY_MAX_BYTES: Final = 2048
SORT_KEY_MAX_BYTES: Final = 1024
ITEM_MAX_BYTES: Final = 400 * 1024
BATCH_WRITE_MAX_ITEMS: Final = 25
BATCH_GET_MAX_KEYS: Final = 100

# ---- the query API and the stored keys
KEY_FIELDS: Final = ("InvoiceNo", "StockCode")
KEY_MAX_CHARS: Final = 64
# Control characters (C0, DEL, C1: as rules.CONTROL_CHARACTERS): a query string cannot carry
# them cleanly, and the table's sort key uses one (KEY_SEPARATOR) after the StockCode.
KEY_FORBIDDEN_CHARACTERS: Final = r"[\x00-\x1f\x7f-\x9f]"
KEY_SEPARATOR: Final = "\x1f"
# A line id names one line for good (`<request key>:<position>`); bytes of UTF-8.
LINE_ID_MAX_BYTES: Final = 512

# ---- a line as a whole
# JSON escapes a control character as \uXXXX: 6 bytes for 1, the worst case of a payload.
JSON_WORST_EXPANSION: Final = 6
# Bytes of a stored item or a payload besides the line's own fields: attribute names, the
# line id, numbers, the timestamp, the Kinesis event id, the JSON punctuation.
LINE_OVERHEAD_BYTES: Final = 4096
LINE_MAX_BYTES: Final = 160 * 1024

# ---- a CSV record read whole (a quoted field holding line breaks, `multiline`)
# A line that opens a quoted field is joined with the lines after it until the quote closes,
# within these bounds; a quote still open beyond them leaves every line as it is.
RECORD_MAX_LINES: Final = 10
RECORD_MAX_BYTES: Final = LINE_MAX_BYTES

INVALID_INVOICE_NO: Final = "invalid_invoice_no"
INVALID_STOCK_CODE: Final = "invalid_stock_code"
RECORD_TOO_LARGE: Final = "record_too_large"
INVALID_TEXT: Final = "invalid_text"
# Reason -> what it means, in the order `line_problem` checks them.
REASONS: Final = {
    INVALID_TEXT: "a field is no Unicode text UTF-8 can encode (a lone surrogate)",
    INVALID_INVOICE_NO: (f"InvoiceNo is longer than {KEY_MAX_CHARS} characters or holds a control character"),
    INVALID_STOCK_CODE: (f"StockCode is longer than {KEY_MAX_CHARS} characters or holds a control character"),
    RECORD_TOO_LARGE: f"the line's fields hold more than {LINE_MAX_BYTES:,} bytes of UTF-8",
}
_KEY_REASONS: Final = {"InvoiceNo": INVALID_INVOICE_NO, "StockCode": INVALID_STOCK_CODE}

_FORBIDDEN = re.compile(KEY_FORBIDDEN_CHARACTERS)
_UTF8_MAX_BYTES_PER_CHAR = 4

# The limits must agree with each other: a line that passes fits every store.
_CONSISTENT = (
    KEY_MAX_CHARS * _UTF8_MAX_BYTES_PER_CHAR <= PARTITION_KEY_MAX_BYTES,
    KEY_MAX_CHARS * _UTF8_MAX_BYTES_PER_CHAR + len(KEY_SEPARATOR) + LINE_ID_MAX_BYTES <= SORT_KEY_MAX_BYTES,
    KEY_MAX_CHARS <= KINESIS_PARTITION_KEY_MAX_CHARS,
    LINE_MAX_BYTES + LINE_OVERHEAD_BYTES <= ITEM_MAX_BYTES,
    LINE_MAX_BYTES * JSON_WORST_EXPANSION + LINE_OVERHEAD_BYTES <= KINESIS_RECORD_MAX_BYTES,
    _FORBIDDEN.match(KEY_SEPARATOR) is not None,
)
if not all(_CONSISTENT):
    raise RuntimeError(f"retail_pipeline.limits disagree with each other: {_CONSISTENT}")


def is_text(value: str) -> bool:
    """True if UTF-8 can encode the string (it holds no lone surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utf8_bytes(value: str | None) -> int:
    """Bytes of the value in UTF-8 (lone surrogates counted as 3, as CESU-8 writes them)."""
    if value is None:
        return 0
    return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))


def is_queryable_key(value: str) -> bool:
    """True if the query API accepts the (trimmed) key and the table can hold it."""
    return 0 < len(value) <= KEY_MAX_CHARS and _FORBIDDEN.search(value) is None and is_text(value)


def is_line_id(value: str) -> bool:
    return 0 < utf8_bytes(value) <= LINE_ID_MAX_BYTES and is_text(value)


def line_problem(record: Mapping[str, str | None]) -> str | None:
    """Why a raw record (keyed by `rules.RAW_COLUMNS`) can never be stored or found, or None.

    Meant for records that passed `rules.parse_record` (their keys are present): keys are
    checked trimmed of spaces, as the record stores and the query looks them up.
    """
    values = tuple(record.values())
    if not all(value is None or is_text(value) for value in values):
        return INVALID_TEXT
    for field, reason in _KEY_REASONS.items():
        if not is_queryable_key((record.get(field) or "").strip(" ")):
            return reason
    if sum(utf8_bytes(value) for value in values) > LINE_MAX_BYTES:
        return RECORD_TOO_LARGE
    return None
