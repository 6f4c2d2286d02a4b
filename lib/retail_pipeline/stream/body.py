"""Request bodies of `POST /transactions` -> raw records (keyed by `rules.RAW_COLUMNS`).

A body is JSON (one record or a list of them) or CSV text with the data set's header. A line or
element that cannot become a record is named with a reason, as the batch job names it:
- CSV lines: the batch job's line reasons (`rules.LINE_REASONS`: invalid_encoding, empty_line,
  unclosed_quote, wrong_field_count). `truncated_last_line` does not apply: an HTTP body
  arrives whole.
- JSON elements: `not_a_record` (not an object of strings, numbers or nulls).
Field reasons come later, from `rules.parse_record` and `limits.line_problem`. Bytes that are
not UTF-8 fail their own record only: a CSV line holding them is `invalid_encoding` (as in the
batch job), a JSON string holding them is `invalid_text` later (from `limits.line_problem`).

The work is bounded before it is done: a body of more than `limits.REQUEST_MAX_RECORDS`
records raises TooManyRecordsError (HTTP 413) after counting line breaks, or after that many
JSON elements, never after parsing them all. A body that cannot be read at all raises
BodyError (HTTP 400); an unsupported media type raises UnsupportedMediaTypeError (HTTP 415).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from typing import Literal

from retail_pipeline import limits, rules

RawRecord = dict[str, str | None]

UTF8_BOM = "\ufeff"
NOT_A_RECORD = "not_a_record"
# The line breaks Hadoop's line reader splits on (str.splitlines would also split on \x0b,
# \x1c, \u2028 and others, and so disagree with the batch job).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_JSON_TYPES = ("application/json",)
_CSV_TYPES = ("text/csv", "application/csv")
_SNIFFED_TYPES = ("", "text/plain", "application/octet-stream")
# The whitespace JSON allows between tokens.
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
# Numbers stay as their literal text, so "2.550" and 2.550 are checked alike and a float never
# rounds a price; NaN/Infinity become text the field checks reject.
_JSON = json.JSONDecoder(parse_float=str, parse_int=str, parse_constant=str)


def _line_reason(name: str) -> str:
    """A line reason as rules.LINE_REASONS names it; fails at import if the two drift apart."""
    if name not in {reason.name for reason in rules.LINE_REASONS}:
        raise RuntimeError(f"rules.LINE_REASONS has no reason {name!r}")
    return name


INVALID_ENCODING = _line_reason("invalid_encoding")
EMPTY_LINE = _line_reason("empty_line")
UNCLOSED_QUOTE = _line_reason("unclosed_quote")
WRONG_FIELD_COUNT = _line_reason("wrong_field_count")


class BodyError(ValueError):
    """The body cannot be read as records; the message is safe to return to the caller."""


class UnsupportedMediaTypeError(ValueError):
    """The Content-Type is neither JSON nor CSV."""


class TooManyRecordsError(BodyError):
    """The body holds more records than one request may carry."""

    def __init__(self, max_records: int) -> None:
        super().__init__(f"a body may hold at most {max_records:,} records; send the rest in another request")


@dataclass(frozen=True)
class BodyRecord:
    """One record of a body, or why its line/element is no record.

    `position` is what a caller can find it by: the line number in a CSV body (the header is
    line 1), the 0-based index in a JSON list.
    """

    position: int
    record: RawRecord | None
    reason: str | None = None


def body_kind(content_type: str | None, text: str) -> Literal["json", "csv"]:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in _JSON_TYPES or media_type.endswith("+json"):
        return "json"
    if media_type in _CSV_TYPES:
        return "csv"
    if media_type in _SNIFFED_TYPES:
        return "json" if text.lstrip(UTF8_BOM + " \t\r\n")[:1] in ("[", "{") else "csv"
    raise UnsupportedMediaTypeError(media_type)


def read_body(
    raw: bytes, content_type: str | None, *, max_records: int = limits.REQUEST_MAX_RECORDS
) -> tuple[Literal["json", "csv"], list[BodyRecord]]:
    """A request body's kind and records, in order (see the module's docstring for errors)."""
    # surrogateescape: a line with bytes that are not UTF-8 fails alone, not the whole body.
    return parse_body(raw.decode("utf-8", "surrogateescape"), content_type, max_records=max_records)


def parse_body(
    text: str, content_type: str | None, *, max_records: int = limits.REQUEST_MAX_RECORDS
) -> tuple[Literal["json", "csv"], list[BodyRecord]]:
    """The body's kind and records, in order; BodyError if it holds none or cannot be read."""
    kind = body_kind(content_type, text)
    parse = parse_json if kind == "json" else parse_csv
    records = parse(text, max_records=max_records)
    if not records:
        raise BodyError("the body holds no records")
    return kind, records


def parse_json(text: str, *, max_records: int = limits.REQUEST_MAX_RECORDS) -> list[BodyRecord]:
    """An object or a list of them, read one element at a time so a long list stops early."""
    try:
        elements = _json_elements(text.removeprefix(UTF8_BOM), max_records)
    except RecursionError as error:
        raise BodyError("the body is not valid JSON (nested too deeply)") from error
    except BodyError:
        raise
    except ValueError as error:
        raise BodyError("the body is not valid JSON") from error
    return [_json_record(index, element) for index, element in enumerate(elements)]


def _skip_space(text: str, position: int) -> int:
    match = _JSON_SPACE.match(text, position)
    return match.end() if match else position


def _json_elements(text: str, max_records: int) -> list[object]:
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        document, position = _JSON.raw_decode(text, position)
        if _skip_space(text, position) != len(text):
            raise ValueError("text after the JSON document")
        if not isinstance(document, dict):
            raise BodyError("a JSON body must be an object or a list of objects")
        return [document]
    elements: list[object] = []
    position = _skip_space(text, position + 1)
    closed = text.startswith("]", position)
    while not closed:
        element, position = _JSON.raw_decode(text, position)
        elements.append(element)
        if len(elements) > max_records:
            raise TooManyRecordsError(max_records)
        position = _skip_space(text, position)
        closed = text.startswith("]", position)
        if not closed:
            if not text.startswith(",", position):
                raise ValueError("expected , or ] in the JSON list")
            position = _skip_space(text, position + 1)
    if _skip_space(text, position + 1) != len(text):
        raise ValueError("text after the JSON list")
    return elements


def _json_record(index: int, element: object) -> BodyRecord:
    if not isinstance(element, dict):
        return BodyRecord(index, None, NOT_A_RECORD)
    record: RawRecord = {}
    for name in rules.RAW_COLUMNS:
        value = element.get(name)
        if value is not None and not isinstance(value, str):
            return BodyRecord(index, None, NOT_A_RECORD)
        record[name] = value
    return BodyRecord(index, record)


def parse_csv(text: str, *, max_records: int = limits.REQUEST_MAX_RECORDS) -> list[BodyRecord]:
    """CSV text whose first line is the data set's header, one record per following line."""
    text = text.removeprefix(UTF8_BOM)
    # Lines counted before any is split off: a body of 6 MB of line breaks costs no more than this.
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    line_count = breaks if text.endswith(("\n", "\r")) else breaks + 1
    if line_count - 1 > max_records:  # the first line is the header
        raise TooManyRecordsError(max_records)
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # the break that ends the last line starts no new line
    if not lines:
        raise BodyError("the CSV body is empty")
    header = lines[0]
    columns = tuple(field.strip() for field in next(csv.reader([header]), []))
    if columns != rules.RAW_COLUMNS:
        raise BodyError(f"the first line of a CSV body must be the header {rules.RAW_HEADER}")
    return [
        _csv_record(number, line)
        for number, line in enumerate(lines[1:], start=2)
        # As the batch job does, a repeated header line is no data (e.g. concatenated exports).
        if line != header
    ]


def _csv_record(number: int, line: str) -> BodyRecord:
    # The same order as the batch job's line checks (transforms.add_quarantine_reason). Bytes that
    # were not UTF-8 are lone surrogates here; the batch job reads them as U+FFFD.
    if rules.REPLACEMENT_CHARACTER in line or not limits.is_text(line):
        return BodyRecord(number, None, INVALID_ENCODING)
    if line.strip(" ") == "":
        return BodyRecord(number, None, EMPTY_LINE)
    if line.count('"') % 2 == 1:
        return BodyRecord(number, None, UNCLOSED_QUOTE)
    try:
        fields = next(csv.reader([line], strict=False))
    except csv.Error:
        return BodyRecord(number, None, WRONG_FIELD_COUNT)
    if len(fields) != len(rules.RAW_COLUMNS):
        return BodyRecord(number, None, WRONG_FIELD_COUNT)
    return BodyRecord(number, dict(zip(rules.RAW_COLUMNS, fields, strict=True)))
