"""Properties of the ingest body parser and checks, over arbitrary bytes, JSON and CSV:

- nothing raises but the body errors the handler answers with a 4xx;
- every line or element is either accepted or rejected with a named reason;
- an accepted line is one the consumer can read and store and the query API can find.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.parse
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retail_pipeline import limits, rules
from retail_pipeline.stream import ingest, query, records, store
from retail_pipeline.stream.body import NOT_A_RECORD, BodyError, UnsupportedMediaTypeError, read_body
from retail_pipeline_dev.stream_local.front import proxy_event
from tests.conftest import GOOD_RECORD

PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTENT_TYPES = st.sampled_from([None, "application/json", "text/csv", "text/plain", "application/xml"])
KNOWN_REASONS = {reason.name for reason in rules.QUARANTINE_REASONS} | {NOT_A_RECORD} | set(limits.REASONS)
SOURCE = "shardId-000000000000:" + "9" * 56
GOOD = {**GOOD_RECORD, "CustomerID": "17850.0"}

# Text of any code point, lone surrogates and control characters included.
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None), max_size=80)
KEY_TEXT = st.one_of(
    st.text(
        st.characters(codec="utf-8"), min_size=limits.KEY_MAX_CHARS - 2, max_size=limits.KEY_MAX_CHARS + 2
    ),
    st.sampled_from(["C536379", "A563185", " 536365 ", "85123A\x1f", "\U0001f600" * 64, "\ud800"]),
)
FIELD = st.one_of(ANY_TEXT, KEY_TEXT, st.sampled_from(["", " ", "0", "-1", "6.0", "1e3", "2/30/2011 8:26"]))


@st.composite
def raw_records(draw: st.DrawFn) -> dict[str, str | None]:
    """A good record with some fields replaced: most checks pass, any can fail."""
    names = draw(st.sets(st.sampled_from(rules.RAW_COLUMNS), max_size=3))
    return {**GOOD, **{name: draw(st.one_of(st.none(), FIELD)) for name in names}}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(ANY_TEXT, children, max_size=3),
    max_leaves=10,
)
JSON_ELEMENTS = st.one_of(
    raw_records(),
    st.builds(
        lambda record, extra: {**record, **extra}, raw_records(), st.dictionaries(ANY_TEXT, JSON_VALUES)
    ),
    JSON_VALUES,
)


def ingest_decision(
    raw: bytes, content_type: str | None
) -> tuple[list[ingest.Entry], ingest.Rejections, int]:
    """What ingest does with a body: its entries, its rejections, and how many records it held."""
    kind, found = read_body(raw, content_type)
    entries, rejections = ingest.check_records(
        found, "body-0123", position_name="index" if kind == "json" else "line"
    )
    return entries, rejections, len(found)


def assert_accepted_lines_can_be_stored_and_found(entries: list[ingest.Entry]) -> None:
    for entry in entries:
        assert entry.size <= limits.KINESIS_RECORD_MAX_BYTES
        line_id, record = records.decode_payload(entry.payload)  # the consumer reads it
        classified = records.classify(record)
        assert classified.outcome in (records.PUBLISHED, records.FILTERED), classified
        line = classified.line
        assert line is not None and entry.partition_key == line.invoice_no
        item = store.line_item(line, line_id, SOURCE)  # the consumer stores it
        assert len(line.invoice_no.encode()) <= limits.PARTITION_KEY_MAX_BYTES
        assert len(item[store.LINE_KEY]["S"].encode()) <= limits.SORT_KEY_MAX_BYTES
        assert (
            sum(
                len(name) + len(json.dumps(value, ensure_ascii=False).encode())
                for name, value in item.items()
            )
            <= limits.ITEM_MAX_BYTES
        )
        target = "/transactions?" + urllib.parse.urlencode(
            {"InvoiceNo": line.invoice_no, "StockCode": line.stock_code}
        )
        event = APIGatewayProxyEvent(proxy_event("GET", target, {}, b"", {}))
        assert query.parse_parameters(event) == (line.invoice_no, line.stock_code)  # the query finds it


def assert_every_record_is_accepted_or_rejected_with_a_reason(
    entries: list[ingest.Entry], rejections: ingest.Rejections, count: int
) -> None:
    assert len(entries) + rejections.count == count
    assert set(rejections.reasons) <= KNOWN_REASONS
    assert len(rejections.examples) == min(rejections.count, limits.REJECTIONS_LISTED)


@PROPERTIES
@given(st.binary(max_size=2000), CONTENT_TYPES)
def test_arbitrary_bytes_never_raise_anything_but_a_bad_request(raw: bytes, content_type: str | None) -> None:
    try:
        decision = ingest_decision(raw, content_type)
    except (BodyError, UnsupportedMediaTypeError):
        return
    assert_every_record_is_accepted_or_rejected_with_a_reason(*decision)
    assert_accepted_lines_can_be_stored_and_found(decision[0])


@PROPERTIES
@given(st.one_of(JSON_ELEMENTS, st.lists(JSON_ELEMENTS, max_size=8)), st.booleans())
def test_arbitrary_json_is_accepted_or_rejected_line_by_line(document: Any, ascii_only: bool) -> None:
    raw = json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        decision = ingest_decision(raw, "application/json")
    except BodyError:
        assert not isinstance(document, dict | list) or document == []  # only non-records are refused whole
        return
    assert_every_record_is_accepted_or_rejected_with_a_reason(*decision)
    assert_accepted_lines_can_be_stored_and_found(decision[0])


@PROPERTIES
@given(st.lists(raw_records(), min_size=1, max_size=8))
def test_csv_lines_are_accepted_or_rejected_line_by_line(rows: list[dict[str, str | None]]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(rules.RAW_COLUMNS)
    writer.writerows([[row[name] or "" for name in rules.RAW_COLUMNS] for row in rows])
    raw = text.getvalue().encode("utf-8", "surrogatepass")
    entries, rejections, count = ingest_decision(raw, "text/csv")
    assert_every_record_is_accepted_or_rejected_with_a_reason(entries, rejections, count)
    assert_accepted_lines_can_be_stored_and_found(entries)


@PROPERTIES
@given(raw_records())
def test_a_record_is_accepted_exactly_when_the_consumer_would_keep_it(record: dict[str, str | None]) -> None:
    raw = json.dumps([record], ensure_ascii=True).encode()
    entries, rejections, _ = ingest_decision(raw, "application/json")
    kept = (
        records.classify({name: record.get(name) for name in rules.RAW_COLUMNS}).outcome
        != records.QUARANTINED
    )
    assert bool(entries) == kept, rejections.reasons
