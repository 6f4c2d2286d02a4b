"""The plain-Python interpreter of the rules (the streaming path's)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from retail_pipeline import limits, rules
from tests.conftest import GOOD_RECORD

GOOD = GOOD_RECORD


def record(**changes: str | None) -> dict[str, str | None]:
    return {**GOOD, **changes}


def test_a_good_record_is_typed() -> None:
    line = rules.parse_record(GOOD)
    assert line == rules.InvoiceLine(
        invoice_no="536365",
        stock_code="85123A",
        description="WHITE HANGING HEART T-LIGHT HOLDER",
        quantity=6,
        unit_price=Decimal("2.5500"),
        invoice_ts=datetime(2010, 12, 1, 8, 26),
        customer_id="17850",
        country="United Kingdom",
    )
    assert isinstance(line, rules.InvoiceLine)
    assert line.revenue == Decimal("15.3000")
    assert rules.first_matching_rule(line) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"InvoiceNo": ""}, "missing_invoice_no"),
        ({"InvoiceNo": "   "}, "missing_invoice_no"),
        ({"StockCode": None}, "missing_stock_code"),
        ({"Quantity": "6.0"}, "invalid_quantity"),
        ({"Quantity": "six"}, "invalid_quantity"),
        ({"Quantity": "12345678901"}, "invalid_quantity"),
        ({"UnitPrice": "2,55"}, "invalid_unit_price"),
        ({"UnitPrice": "1e3"}, "invalid_unit_price"),
        ({"UnitPrice": "2.55555"}, "invalid_unit_price"),
        ({"InvoiceDate": "13/45/2010 8:26"}, "invalid_invoice_date"),
        ({"InvoiceDate": "2/30/2011 8:26"}, "invalid_invoice_date"),
        ({"InvoiceDate": "2010-12-01"}, "invalid_invoice_date"),
        ({"InvoiceDate": "12/1/10 8:26"}, "invalid_invoice_date"),
        ({"InvoiceDate": "1/1/0000 0:00"}, "invalid_invoice_date"),
        ({"Country": ""}, "missing_country"),
        # first failing check wins
        ({"InvoiceNo": "", "Quantity": "x"}, "missing_invoice_no"),
    ],
)
def test_malformed_fields_are_named(changes: dict[str, str | None], reason: str) -> None:
    assert rules.parse_record(record(**changes)) == reason


def test_both_date_shapes_are_accepted() -> None:
    assert rules.parse_invoice_date("12/1/2010 8:26") == datetime(2010, 12, 1, 8, 26)
    assert rules.parse_invoice_date("2011-12-09 12:50:07") == datetime(2011, 12, 9, 12, 50, 7)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("17850", "17850"), ("17850.0", "17850"), (" 17850.00 ", "17850"), ("", "Unknown"), (None, "Unknown")],
)
def test_customer_id_is_normalized(raw: str | None, expected: str) -> None:
    assert rules.normalize_customer_id(raw) == expected


def test_description_is_trimmed_and_empty_becomes_none() -> None:
    line = rules.parse_record(record(Description="  MUG  "))
    assert isinstance(line, rules.InvoiceLine) and line.description == "MUG"
    line = rules.parse_record(record(Description="   "))
    assert isinstance(line, rules.InvoiceLine) and line.description is None


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"InvoiceNo": "C536379"}, "cancellation"),
        ({"InvoiceNo": "c536379"}, "cancellation"),
        ({"InvoiceNo": "A563185"}, "bad_debt"),
        ({"InvoiceNo": "a563185", "UnitPrice": "-11062.06"}, "bad_debt"),
        ({"Quantity": "0"}, "non_positive_quantity"),
        ({"Quantity": "-3", "UnitPrice": "0"}, "non_positive_quantity"),
        ({"UnitPrice": "0"}, "non_positive_price"),
        ({"UnitPrice": "-0.01"}, "non_positive_price"),
        ({"InvoiceNo": "C536379", "Quantity": "-1"}, "cancellation"),
    ],
)
def test_each_filter_rule_matches_first_in_order(changes: dict[str, str], rule: str) -> None:
    line = rules.parse_record(record(**changes))
    assert isinstance(line, rules.InvoiceLine)
    matched = rules.first_matching_rule(line)
    assert matched is not None and matched.name == rule


def test_rules_are_in_the_documented_order() -> None:
    assert rules.FILTER_RULE_NAMES == (
        "cancellation",
        "bad_debt",
        "non_positive_quantity",
        "non_positive_price",
    )
    assert rules.QUARANTINE_REASON_NAMES == (
        "invalid_encoding",
        "empty_line",
        "truncated_last_line",
        "unclosed_quote",
        "misplaced_quote",
        "wrong_field_count",
        "missing_invoice_no",
        "missing_stock_code",
        "control_character_in_key",
        "invalid_invoice_no",
        "invalid_stock_code",
        "invalid_quantity",
        "invalid_unit_price",
        "invalid_invoice_date",
        "invoice_date_out_of_range",
        "missing_country",
        "control_character_in_country",
        "control_character_in_customer_id",
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"InvoiceNo": "5363\x0065"}, "control_character_in_key"),
        ({"StockCode": "85123A\x1b"}, "control_character_in_key"),
        ({"Country": "United\x7fKingdom"}, "control_character_in_country"),
        ({"CustomerID": "17850\x85"}, "control_character_in_customer_id"),
    ],
)
def test_a_key_with_a_control_character_is_malformed(changes: dict[str, str], reason: str) -> None:
    assert rules.parse_record(record(**changes)) == reason


@pytest.mark.parametrize(
    ("field", "reason"), [("InvoiceNo", "invalid_invoice_no"), ("StockCode", "invalid_stock_code")]
)
def test_a_key_the_query_api_cannot_look_up_is_malformed(field: str, reason: str) -> None:
    assert isinstance(rules.parse_record(record(**{field: "9" * limits.KEY_MAX_CHARS})), rules.InvoiceLine)
    assert rules.parse_record(record(**{field: "9" * (limits.KEY_MAX_CHARS + 1)})) == reason


def test_control_characters_in_a_description_become_one_space() -> None:
    line = rules.parse_record(record(Description="\tWHITE\x00\x01HEART\r\n"))
    assert isinstance(line, rules.InvoiceLine) and line.description == "WHITE HEART"
    line = rules.parse_record(record(Description="\x00\x07"))
    assert isinstance(line, rules.InvoiceLine) and line.description is None


def test_an_invoice_date_outside_the_runs_bounds_is_out_of_range() -> None:
    bounds = (datetime(2010, 12, 1), datetime(2011, 12, 9, 23, 59, 59))
    assert isinstance(
        rules.parse_record(record(InvoiceDate="12/1/2010 0:00"), invoice_ts_range=bounds), rules.InvoiceLine
    )
    assert rules.parse_record(record(InvoiceDate="11/30/2010 23:59"), invoice_ts_range=bounds) == (
        "invoice_date_out_of_range"
    )
    assert rules.parse_record(record(InvoiceDate="2011-12-10 00:00:00"), invoice_ts_range=bounds) == (
        "invoice_date_out_of_range"
    )
    assert isinstance(rules.parse_record(record(InvoiceDate="1/1/2031 0:00")), rules.InvoiceLine)  # no bounds


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ("a,b,,c", ["a", "b", "", "c"]),
        ('"a,b","7"" X",""', ["a,b", '7" X', ""]),
        ('""""', ['"']),
        ('a,"b\x1ac",', ["a", "b\x1ac", ""]),
        ('a,"b"c', None),  # text after a closing quote
        ('a,b"c"', None),  # a quote inside an unquoted field
        ('a, "b"', None),  # a space before a quoted field
        ('a,"b" ', None),  # ... and after one
        ('a,""b', None),
        ('a,"b', None),
    ],
)
def test_csv_fields_splits_well_quoted_lines_only(line: str, fields: list[str] | None) -> None:
    assert rules.csv_fields(line) == fields
    assert rules.well_quoted(line) == (fields is not None)


def test_a_long_line_is_split_without_backtracking_or_a_size_limit() -> None:
    field = '"' + 'x""' * 60_000 + '"'  # 180 KiB: over the csv module's 128 KiB field limit
    assert rules.csv_fields(f"a,{field}") == ["a", 'x"' * 60_000]
    assert rules.csv_fields(f"a,{field}x") is None
    assert rules.csv_fields("," * 200_000) == [""] * 200_001
