"""Request bodies of `POST /transactions` -> raw records (keyed by `rules.RAW_COLUMNS`).

A body is JSON (one record or a list of them) or CSV text with the data set's header. A line or
element that cannot become a record is named with a reason, as the batch job names it:
- CSV lines: the batch job's line reasons (`rules.LINE_REASONS`: invalid_encoding, empty_line,
  unclosed_quote, misplaced_quote, wrong_field_count). `truncated_last_line` does not apply:
  an HTTP body arrives whole.
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

from retail_pipeline import limits, multiline, rules

RawRecord = dict[str, str | None]

UTF8_BOM = "\ufeff"
NOT_A_RECORD = "not_a_record"
_JSON_TYPES = ("application/json",)
_CSV_TYPES = ("text/csv", "application/csv")
_SNIFFED_TYPES = ("", "text/plain", "application/octet-stream")
# The whitespace JSON allows between tokens.
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
# Numbers stay as their literal text, so "2.550" and 2.550 are checked alike and a float never
# rounds a price; NaN/Infinity become text the field checks reject.
_JSON = json.JSONDecoder(parse_float=str, parse_int=str, parse_constant=str)


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
    """CSV text whose first line is the data set's header, one record per following line, or
    per record whose quoted field spans lines (read whole, as the batch job reads it:
    `multiline`; its position is its first line's)."""
    text = text.removeprefix(UTF8_BOM)
    # Lines counted before any is split off: a body of 6 MB of line breaks costs no more than
    # this. A record spans one line or more, so this bounds the records too.
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    line_count = breaks if text.endswith(("\n", "\r")) else breaks + 1
    if line_count - 1 > max_records:  # the first line is the header
        raise TooManyRecordsError(max_records)
    # A body arrives whole: its last line is complete, with or without a final break.
    lines = multiline.split_lines(text if text.endswith(("\n", "\r")) or not text else text + "\n")
    header = multiline.LINE_BREAK.sub("", next(lines, ""))
    if not header:
        raise BodyError("the CSV body is empty")
    columns = tuple(field.strip() for field in next(csv.reader([header]), []))
    if columns != rules.RAW_COLUMNS:
        raise BodyError(f"the first line of a CSV body must be the header {rules.RAW_HEADER}")
    found: list[BodyRecord] = []
    number = 2
    # Bytes that were not UTF-8 are lone surrogates here (utf8_bytes counts them as the bytes).
    for record in multiline.join_records(lines, size=limits.utf8_bytes):
        line = multiline.LINE_BREAK.sub("", record.text)
        # As the batch job does, a repeated header line is no data (e.g. concatenated exports).
        if line != header:
            found.append(_csv_record(number, line))
        number += record.lines
    return found


def _csv_record(number: int, line: str) -> BodyRecord:
    fields = rules.split_line(line)
    if isinstance(fields, str):
        return BodyRecord(number, None, fields)
    return BodyRecord(number, dict(zip(rules.RAW_COLUMNS, fields, strict=True)))
