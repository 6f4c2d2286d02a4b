"""Kinesis payloads, the rules on one record, the DynamoDB item shape, settings, bearer tokens."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from retail_pipeline.stream import records, store
from retail_pipeline.stream.auth import UnauthorizedError, bearer_token
from retail_pipeline.stream.objects import curated_table
from retail_pipeline.stream.settings import IngestSettings, ProcessSettings, SettingsError
from tests.conftest import GOOD_RECORD

GOOD = {**GOOD_RECORD, "CustomerID": ""}


def test_a_payload_round_trips_with_its_line_id() -> None:
    assert records.decode_payload(records.encode_payload("req-1:2", GOOD)) == ("req-1:2", GOOD)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe",
        b"not json",
        b"[1, 2]",
        b'{"record": {}}',
        b'{"line_id": "", "record": {}}',
        b'{"line_id": "x", "record": "536365,85123A"}',
        b'{"line_id": "x", "record": {"Quantity": 6}}',
    ],
)
def test_data_that_is_no_payload_is_poison(data: bytes) -> None:
    with pytest.raises(records.PoisonRecordError):
        records.decode_payload(data)


@pytest.mark.parametrize(
    ("changes", "outcome", "reason"),
    [
        ({}, "published", None),
        ({"InvoiceNo": "C536379"}, "filtered", "cancellation"),
        ({"InvoiceNo": "a563185"}, "filtered", "bad_debt"),
        ({"Quantity": "0"}, "filtered", "non_positive_quantity"),
        ({"UnitPrice": "0.00"}, "filtered", "non_positive_price"),
        ({"Quantity": "six"}, "quarantined", "invalid_quantity"),
        ({"Country": " "}, "quarantined", "missing_country"),
    ],
)
def test_the_shared_rules_decide_where_a_record_ends(
    changes: dict[str, str], outcome: str, reason: str | None
) -> None:
    classified = records.classify({**GOOD, **changes})
    assert (classified.outcome, classified.reason) == (outcome, reason)


def test_a_published_line_is_typed_with_customer_unknown() -> None:
    line = records.classify(GOOD).line
    assert line is not None
    assert (line.customer_id, line.invoice_ts, line.unit_price) == (
        "Unknown",
        datetime(2010, 12, 1, 8, 26),
        Decimal("2.5500"),
    )
    assert records.line_to_json(line)["revenue"] == "15.3000"


def test_money_is_exact_text_never_exponent_form() -> None:
    assert records.money(Decimal("0E-4")) == "0.0000"
    assert records.money(Decimal("1E+3")) == "1000.0000"
    assert records.money(Decimal("12345678.1234")) == "12345678.1234"


def test_curated_tables_have_the_curated_types() -> None:
    line = records.classify(GOOD).line
    assert line is not None
    source = "s3://lake/streamed/curated/invoice_year=2010/invoice_month=12/batch-shardId-0-49.parquet"
    table = curated_table([line], source_file=source, run_id="batch-shardId-0-49")
    assert table.schema.field("invoice_ts").type == pa.timestamp("us")  # no time zone: timestamp_ntz
    row = table.to_pylist()[0]
    assert (row["revenue"], row["source_file"], row["run_id"]) == (
        Decimal("15.3000"),
        source,
        "batch-shardId-0-49",
    )


def test_line_items_read_as_plain_json_per_stock_code_with_lines_in_arrival_order() -> None:
    line = records.classify({**GOOD, "Description": ""}).line
    other = records.classify({**GOOD, "StockCode": "71053", "Quantity": "2"}).line
    assert line is not None and other is not None
    later = store.line_item(line, "req-1:9", "shardId-000000000000:9000")
    earlier = store.line_item(line, "req-1:2", "shardId-000000000000:10")
    assert later[store.LINE_KEY] == {"S": "85123A\x1freq-1:9"}
    plain = store.items_to_json(
        [later, store.line_item(other, "req-1:3", "shardId-000000000000:11"), earlier]
    )
    assert [(item["stock_code"], item["line_count"]) for item in plain] == [("85123A", 2), ("71053", 1)]
    assert [entry["line_id"] for entry in plain[0]["lines"]] == ["req-1:2", "req-1:9"]
    assert (plain[0]["total_quantity"], plain[0]["total_revenue"]) == (12, "30.6000")
    assert (plain[0]["lines"][0]["unit_price"], plain[0]["lines"][0]["description"]) == ("2.5500", None)


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b'{"line_id": "' + b"x" * 600 + b'", "record": {}}',
        b'{"line_id": "\\ud800", "record": {}}',
    ],
)
def test_deep_data_and_line_ids_no_key_can_hold_are_poison_too(data: bytes) -> None:
    with pytest.raises(records.PoisonRecordError):
        records.decode_payload(data)


ENVIRONMENT = {
    "AWS_REGION": "eu-west-1",
    "TRANSACTIONS_STREAM": "transactions",
    "TRANSACTIONS_TABLE": "transactions",
    "CURATED_BUCKET": "lake",
    "COGNITO_ISSUER": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool/",
    "COGNITO_CLIENT_IDS": "a, b",
}


def test_settings_come_from_the_environment_with_defaults() -> None:
    ingest = IngestSettings.from_env(ENVIRONMENT)
    assert (
        ingest.auth.jwks_url
        == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool/.well-known/jwks.json"
    )
    assert (ingest.auth.client_ids, ingest.max_body_bytes, ingest.aws.endpoint_url) == (
        frozenset({"a", "b"}),
        6_000_000,
        None,
    )
    process = ProcessSettings.from_env({**ENVIRONMENT, "CURATED_PREFIX": "/lake/streamed/"})
    assert (process.curated_prefix, process.dead_letter_prefix) == ("lake/streamed", "streamed/dead_letter")


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"TRANSACTIONS_STREAM": ""}, "TRANSACTIONS_STREAM"),
        ({"COGNITO_CLIENT_IDS": " , "}, "COGNITO_CLIENT_IDS"),
        ({"INGEST_MAX_BODY_BYTES": "-1"}, "INGEST_MAX_BODY_BYTES"),
        ({"AWS_REGION": ""}, "AWS_REGION"),
    ],
)
def test_a_missing_or_malformed_setting_is_named(changes: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        IngestSettings.from_env({**ENVIRONMENT, **changes})


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer  x", "x"), ("abc.def.ghi", "abc.def.ghi")],
)
def test_the_token_is_taken_with_or_without_the_bearer_scheme(header: str, token: str) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", [None, "", "Bearer ", "   "])
def test_no_token_is_unauthorized(header: str | None) -> None:
    with pytest.raises(UnauthorizedError):
        bearer_token(header)
