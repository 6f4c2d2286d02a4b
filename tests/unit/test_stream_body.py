"""Request bodies -> raw records, with the batch job's line reasons."""

from __future__ import annotations

import json
import time

import pytest

from retail_pipeline import rules
from retail_pipeline.stream import records
from retail_pipeline.stream.body import (
    BodyError,
    BodyRecord,
    TooManyRecordsError,
    UnsupportedMediaTypeError,
    body_kind,
    parse_body,
    parse_csv,
    parse_json,
    read_body,
)

HEADER = rules.RAW_HEADER
GOOD = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"
GOOD_RECORD = dict(zip(rules.RAW_COLUMNS, GOOD.split(","), strict=True))


def test_a_csv_body_as_exported_bom_and_crlf_gives_one_record_per_line() -> None:
    records = parse_csv(f"\ufeff{HEADER}\r\n{GOOD}\r\n{GOOD}\r\n")
    assert records == [BodyRecord(2, GOOD_RECORD), BodyRecord(3, GOOD_RECORD)]


def test_csv_lines_end_at_the_same_breaks_as_the_batch_jobs_line_reader() -> None:
    # \r alone ends a line (as Hadoop's reader has it); \x0b or \u2028 do not.
    odd_description = GOOD.replace("HOLDER", "HOLDER\u2028X")
    records = parse_csv(f"{HEADER}\n{GOOD}\r{odd_description}")
    assert [record.position for record in records] == [2, 3]
    assert records[1].record is not None
    assert records[1].record["Description"] == "WHITE HANGING HEART T-LIGHT HOLDER\u2028X"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty_line"),
        ("   ", "empty_line"),
        ('536365,"85123A,X,6,12/1/2010 8:26,2.55,17850,United Kingdom', "unclosed_quote"),
        ("536365,85123A,X,6,12/1/2010 8:26,2.55,17850", "wrong_field_count"),
        (GOOD + ",extra", "wrong_field_count"),
        ('536365,"85123A"X,X,6,12/1/2010 8:26,2.55,17850,United Kingdom', "misplaced_quote"),
        ('536365,85123A,7" X 5" FRAME,6,12/1/2010 8:26,2.55,17850,United Kingdom', "misplaced_quote"),
        ('536365,85123A, "X",6,12/1/2010 8:26,2.55,17850,United Kingdom', "misplaced_quote"),
        ("536365,85123A,X\uffff,6,12/1/2010 8:26,2.55,17850,United Kingdom", "invalid_encoding"),
    ],
)
def test_malformed_csv_lines_get_the_batch_jobs_line_reasons(line: str, reason: str) -> None:
    assert reason in {line_reason.name for line_reason in rules.LINE_REASONS}
    assert parse_csv(f"{HEADER}\r\n{line}\r\n{GOOD}") == [
        BodyRecord(2, None, reason),
        BodyRecord(3, GOOD_RECORD),
    ]


def test_quoted_fields_follow_rfc_4180() -> None:
    (record,) = parse_csv(f'{HEADER}\r\n536365,21730,"GLASS STAR, 7"" FROSTED",6,12/1/2010 8:26,4.25,,UK')
    assert record.record is not None
    assert record.record["Description"] == 'GLASS STAR, 7" FROSTED'
    assert record.record["CustomerID"] == ""


def test_a_repeated_header_line_is_no_data_as_in_the_batch_job() -> None:
    assert [r.position for r in parse_csv(f"{HEADER}\r\n{GOOD}\r\n{HEADER}\r\n{GOOD}")] == [2, 4]


@pytest.mark.parametrize("text", ["", "\r\n", "a,b\r\n" + GOOD, GOOD])
def test_a_csv_body_without_the_header_is_refused(text: str) -> None:
    with pytest.raises(BodyError):
        parse_csv(text)


def test_json_numbers_keep_their_literal_text() -> None:
    (record,) = parse_json('{"InvoiceNo": "536365", "Quantity": 6, "UnitPrice": 2.550, "CustomerID": null}')
    assert record.record is not None
    assert (record.record["Quantity"], record.record["UnitPrice"], record.record["CustomerID"]) == (
        "6",
        "2.550",
        None,
    )
    assert rules.parse_record({**GOOD_RECORD, "UnitPrice": "1e3"}) == "invalid_unit_price"


@pytest.mark.parametrize("element", ['"text"', "[1]", "3", '{"InvoiceNo": true}', '{"Quantity": {"n": 1}}'])
def test_json_elements_that_are_no_record_are_named(element: str) -> None:
    assert parse_json(f"[{element}]") == [BodyRecord(0, None, "not_a_record")]


@pytest.mark.parametrize("text", ["{", '"a string"', "42", "null"])
def test_unreadable_json_bodies_are_refused(text: str) -> None:
    with pytest.raises(BodyError):
        parse_json(text)


@pytest.mark.parametrize(
    ("content_type", "text", "kind"),
    [
        ("application/json; charset=utf-8", "", "json"),
        ("application/vnd.api+json", "", "json"),
        ("text/csv", "[", "csv"),
        (None, "  [{}]", "json"),
        ("text/plain", HEADER, "csv"),
    ],
)
def test_the_body_kind_comes_from_the_content_type_or_the_first_character(
    content_type: str | None, text: str, kind: str
) -> None:
    assert body_kind(content_type, text) == kind


def test_other_media_types_are_unsupported() -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        body_kind("application/xml", "<a/>")


def test_a_body_without_records_is_refused() -> None:
    with pytest.raises(BodyError):
        parse_body(f"{HEADER}\r\n", "text/csv")
    assert parse_body("[{}]", "application/json")[0] == "json"


def test_a_json_body_may_start_with_a_byte_order_mark() -> None:
    assert parse_body("\ufeff[{}]", "application/json")[1] == [
        BodyRecord(0, {c: None for c in rules.RAW_COLUMNS})
    ]


@pytest.mark.parametrize(
    "text", ["[{}", "[{},]", "[{}] x", "{} {}", "[{} {}]", "[" * 100_000 + "]" * 100_000]
)
def test_json_that_is_not_one_document_is_refused_whole(text: str) -> None:
    with pytest.raises(BodyError):
        parse_json(text)


def test_deeply_nested_json_is_a_bad_body_not_a_crash() -> None:
    with pytest.raises(BodyError, match="nested too deeply"):
        read_body(b'[{"InvoiceNo": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]", "application/json")


def test_more_records_than_a_request_may_carry_are_refused_before_they_are_read() -> None:
    with pytest.raises(TooManyRecordsError):
        parse_csv(f"{HEADER}\r\n" + f"{GOOD}\r\n" * 11, max_records=10)
    assert len(parse_csv(f"{HEADER}\r\n" + f"{GOOD}\r\n" * 10, max_records=10)) == 10
    assert len(parse_csv(f"{HEADER}\r\n" + f"{GOOD}\r\n" * 9 + GOOD, max_records=10)) == 10
    with pytest.raises(TooManyRecordsError):
        parse_json("[" + ",".join(["{}"] * 11) + "]", max_records=10)
    assert len(parse_json("[" + ",".join(["{}"] * 10) + "]", max_records=10)) == 10


@pytest.mark.parametrize(
    "raw",
    [
        b"\n" * 6_000_000,  # 6 MB of empty lines
        b"[" + b"{}," * 1_999_999 + b"{}]",  # 6 MB of empty objects
        b"[" + b"0," * 2_999_999 + b"0]",
    ],
)
def test_a_6_mb_body_of_tiny_records_costs_no_more_than_counting_them(raw: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(TooManyRecordsError):
        read_body(raw, None if raw.startswith(b"[") else "text/csv")
    assert time.perf_counter() - started < 1.0


def test_bytes_that_are_not_utf8_fail_their_own_line_only() -> None:
    body = f"{HEADER}\r\n{GOOD}\r\n".encode() + GOOD.replace("HOLDER", "HOLDER \xff").encode("latin-1")
    kind, found = read_body(body + f"\r\n{GOOD}\r\n".encode(), "text/csv")
    assert kind == "csv"
    assert found[1] == BodyRecord(3, None, "invalid_encoding")  # as the batch job names it
    assert [isinstance(records.check(row.record or {}), rules.InvoiceLine) for row in found] == [
        True,
        False,
        True,
    ]


def test_a_replacement_character_is_an_invalid_encoding_as_in_the_batch_job() -> None:
    replaced = GOOD.replace("HOLDER", "HOLDER \ufffd")
    assert parse_csv(f"{HEADER}\r\n{replaced}") == [BodyRecord(2, None, "invalid_encoding")]


def test_a_lone_surrogate_escape_fails_its_own_element_only() -> None:
    elements = [GOOD_RECORD, {**GOOD_RECORD, "Description": "\ud800"}, GOOD_RECORD]
    _, found = read_body(json.dumps(elements).encode(), "application/json")
    assert [records.check(row.record or {}) for row in found][1] == "invalid_text"
    assert [row.position for row in found] == [0, 1, 2]


def test_a_quoted_description_over_lines_is_one_record_at_its_first_line() -> None:
    """As the batch job reads it (`multiline`): the break is one space in the description."""
    split = '536370,22728,"ALARM CLOCK\r\nBAKELIKE PINK",24,12/1/2010 8:45,3.75,12583,France'
    found = parse_csv(f"{HEADER}\r\n{GOOD}\r\n{split}\r\n{GOOD}")
    assert [record.position for record in found] == [2, 3, 5]
    assert found[1].record is not None
    assert found[1].record["Description"] == f"ALARM CLOCK{rules.CSV_SYNTAX.line_break_in_field}BAKELIKE PINK"
    line = records.check(found[1].record)
    assert isinstance(line, rules.InvoiceLine) and line.description == "ALARM CLOCK BAKELIKE PINK"


def test_a_stray_quote_in_a_body_spoils_its_own_line_only() -> None:
    stray = '536365,"85123A,X,6,12/1/2010 8:26,2.55,17850,United Kingdom'
    found = parse_csv(f"{HEADER}\r\n{stray}\r\n" + f"{GOOD}\r\n" * 3)
    assert found == [BodyRecord(2, None, "unclosed_quote"), *(BodyRecord(n, GOOD_RECORD) for n in (3, 4, 5))]
