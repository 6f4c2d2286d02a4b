"""The limits a line must fit: keys the query can find and the table can hold, lines that fit an
item and a Kinesis record whatever JSON does to them."""

from __future__ import annotations

import re

import pytest

from retail_pipeline import limits, rules
from retail_pipeline.stream import records, store
from tests.conftest import GOOD_RECORD

GOOD = GOOD_RECORD


def item_bytes(item: dict[str, dict[str, str | bool]]) -> int:
    """An upper bound of DynamoDB's item size: names and values in UTF-8, a number's digits
    plus one byte (DynamoDB stores two digits a byte), one byte for NULL."""
    total = 0
    for name, value in item.items():
        ((kind, content),) = value.items()
        total += len(name.encode())
        total += 1 if kind == "NULL" else len(str(content).encode()) + (1 if kind == "N" else 0)
    return total


@pytest.mark.parametrize(
    ("key", "queryable"),
    [
        ("536365", True),
        ("9" * limits.KEY_MAX_CHARS, True),
        ("9" * (limits.KEY_MAX_CHARS + 1), False),
        ("\U0001f600" * limits.KEY_MAX_CHARS, True),  # 256 bytes: far below the key limits
        ("POST AGE", True),
        ("", False),
        ("85123A\x1f", False),  # the sort key's separator
        ("85123A\n", False),  # a `$`-anchored regex would have let this through
        ("85123A\t", False),
        ("A\x7f", False),
        ("A\x85", False),  # C1: a control character to the batch rules too
        ("\ud800", False),
    ],
)
def test_keys_are_queryable_within_the_query_apis_limits(key: str, queryable: bool) -> None:
    assert limits.is_queryable_key(key) is queryable


def test_the_longest_keys_fit_dynamodbs_key_limits() -> None:
    widest = "\U0001f600" * limits.KEY_MAX_CHARS
    line_id = "k" * limits.LINE_ID_MAX_BYTES
    assert len(widest.encode()) <= limits.PARTITION_KEY_MAX_BYTES
    assert len(store.line_key(widest, line_id).encode()) <= limits.SORT_KEY_MAX_BYTES


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"InvoiceNo": "5" * 65}, "invalid_invoice_no"),
        ({"InvoiceNo": " 536365 "}, None),  # trimmed, as it is stored and looked up
        ({"StockCode": "85123A\x00"}, "invalid_stock_code"),
        ({"Description": "caf\udce9"}, "invalid_text"),  # a byte that was not UTF-8
        ({"Country": "\ud83d"}, "invalid_text"),  # half a surrogate pair from a JSON escape
        ({"Description": "x" * limits.LINE_MAX_BYTES}, "record_too_large"),
        ({"InvoiceNo": "5" * 65, "Description": "\ud800"}, "invalid_text"),  # first problem wins
    ],
)
def test_a_line_that_can_never_be_stored_or_found_is_named(
    changes: dict[str, str], reason: str | None
) -> None:
    assert limits.line_problem({**GOOD, **changes}) == reason
    assert reason is None or reason in limits.REASONS


def test_a_line_of_exactly_the_limit_is_taken_one_byte_more_is_not() -> None:
    fields = sum(len(value.encode()) for value in GOOD.values())
    room = limits.LINE_MAX_BYTES - fields + len(GOOD["Description"])
    assert limits.line_problem({**GOOD, "Description": "é" * (room // 2)}) is None
    assert limits.line_problem({**GOOD, "Description": "x" * room}) is None
    assert limits.line_problem({**GOOD, "Description": "x" * (room + 1)}) == "record_too_large"


@pytest.mark.parametrize("filler", ["x", "\x01", '"', "\U0001f600"])
def test_the_largest_line_fits_an_item_and_a_kinesis_record_whatever_it_holds(filler: str) -> None:
    room = limits.LINE_MAX_BYTES - sum(len(value.encode()) for value in GOOD.values()) - 2
    description = filler * (room // len(filler.encode()))
    record = {**GOOD, "Description": description, "CustomerID": ""}
    line_id = "key-" + "k" * (limits.LINE_ID_MAX_BYTES - 10) + ":10000"
    assert limits.line_problem(record) is None
    payload = records.encode_payload(line_id, record)
    assert len(payload) + len(record["InvoiceNo"]) <= limits.KINESIS_RECORD_MAX_BYTES
    line = records.classify(record).line
    assert line is not None
    source = "shardId-000000000000:" + "9" * 56
    assert item_bytes(store.line_item(line, line_id, source)) <= limits.ITEM_MAX_BYTES


def test_the_key_pattern_reads_the_same_in_java_and_python() -> None:
    # Only \xhh escapes in one character class: both regex dialects read it alike (Spark's rlike).
    assert re.fullmatch(r"\[(\\x[0-9a-fA-F]{2}(-\\x[0-9a-fA-F]{2})?)+\]", limits.KEY_FORBIDDEN_CHARACTERS)
    assert set(limits.KEY_FIELDS) <= set(rules.RAW_COLUMNS)


def test_keys_hold_no_character_the_batch_rules_call_a_control_character() -> None:
    forbidden, control = re.compile(limits.KEY_FORBIDDEN_CHARACTERS), re.compile(rules.CONTROL_CHARACTERS)
    assert [c for c in range(0x3000) if bool(forbidden.match(chr(c))) != bool(control.match(chr(c)))] == []


def test_utf8_bytes_counts_what_the_stores_count() -> None:
    assert [limits.utf8_bytes(value) for value in (None, "abc", "é", "\U0001f600", "\udce9")] == [
        0,
        3,
        2,
        4,
        3,
    ]
    assert limits.is_text("é") and not limits.is_text("\udce9")
    assert limits.is_line_id("body-abc:2") and not limits.is_line_id("x" * (limits.LINE_ID_MAX_BYTES + 1))
