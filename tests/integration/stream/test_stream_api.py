"""The ingest and query APIs over HTTP, through the local front, against moto."""

from __future__ import annotations

import json
from typing import Any

import pytest

from retail_pipeline.stream import ingest
from retail_pipeline_dev.stream_local import LocalContext
from retail_pipeline_dev.stream_local.front import proxy_event

pytestmark = pytest.mark.integration

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
GOOD = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"


@pytest.fixture(scope="module")
def stack(make_stack: Any) -> Any:
    return make_stack(max_body_bytes=2_000)


def test_a_csv_body_is_answered_with_counts_and_a_reason_per_rejected_line(stack: Any) -> None:
    body = "\r\n".join(
        [
            HEADER,
            GOOD,  # line 2
            "",  # 3
            '536365,"85123A,WHITE,6,12/1/2010 8:26,2.55,17850,United Kingdom',  # 4
            "536365,85123A,6,12/1/2010 8:26,2.55,17850,United Kingdom",  # 5
            GOOD.replace(",6,", ",6.0,"),  # 6
            "C536379,D,Discount,-1,12/1/2010 9:41,27.50,14527,United Kingdom",  # 7: filtered later
        ]
    )
    status, answer = stack.post(body, "text/csv")
    assert status == 202
    assert answer == {
        "accepted": 2,
        "rejected": 4,
        "reasons": {"empty_line": 1, "unclosed_quote": 1, "wrong_field_count": 1, "invalid_quantity": 1},
        "rejections": [
            {"line": 3, "reason": "empty_line"},
            {"line": 4, "reason": "unclosed_quote"},
            {"line": 5, "reason": "wrong_field_count"},
            {"line": 6, "reason": "invalid_quantity"},
        ],
    }


def test_a_json_body_is_one_record_or_a_list(stack: Any) -> None:
    good = dict(zip(HEADER.split(","), GOOD.split(","), strict=True))
    status, answer = stack.post(
        json.dumps([good, "text", {**good, "InvoiceNo": " "}, {**good, "Quantity": 6}]), "application/json"
    )
    assert (status, answer["accepted"], answer["rejections"]) == (
        202,
        2,
        [{"index": 1, "reason": "not_a_record"}, {"index": 2, "reason": "missing_invoice_no"}],
    )
    assert stack.post(json.dumps(good), "application/json")[1]["accepted"] == 1


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "status"),
    [
        ("{not json", "application/json", {}, 400),
        ("[]", "application/json", {}, 400),
        ("a,b,c\r\n1,2,3\r\n", "text/csv", {}, 400),
        ("", "text/csv", {}, 400),
        (f"{HEADER}\r\n{GOOD}\r\n", "text/csv", {"Idempotency-Key": "no spaces allowed"}, 400),
        ("<xml/>", "application/xml", {}, 415),
        (f"{HEADER}\r\n" + f"{GOOD}\r\n" * 30, "text/csv", {}, 413),  # over the stack's 2,000 bytes
    ],
)
def test_bodies_that_cannot_be_taken_are_refused_whole(
    stack: Any, body: str, content_type: str, headers: dict[str, str], status: int
) -> None:
    answer = stack.request(
        "POST", "/transactions", body=body.encode(), headers={"Content-Type": content_type, **headers}
    )
    assert answer[0] == status
    assert set(answer[1]) == {"message"}


def test_queries_answer_plain_json_with_every_line_and_the_totals(stack: Any) -> None:
    body = (
        f"{HEADER}\r\n{GOOD}\r\n{GOOD}\r\n" + GOOD.replace("85123A", "71053").replace(",6,", ",2,") + "\r\n"
    )
    assert stack.post(body.replace("536365", "540001"), Idempotency_Key="q-1")[0] == 202
    stack.poller.drain()

    status, item = stack.get(InvoiceNo="540001", StockCode="85123A")
    assert status == 200
    assert {key: item[key] for key in ("invoice_no", "stock_code", "line_count", "total_quantity")} == {
        "invoice_no": "540001",
        "stock_code": "85123A",
        "line_count": 2,
        "total_quantity": 12,
    }
    assert item["total_revenue"] == "30.6000"
    assert item["lines"][0] == {
        "line_id": "key-q-1:2",
        "description": "WHITE HANGING HEART T-LIGHT HOLDER",
        "quantity": 6,
        "unit_price": "2.5500",
        "revenue": "15.3000",
        "invoice_ts": "2010-12-01T08:26:00",
        "customer_id": "17850",
        "country": "United Kingdom",
    }
    status, invoice = stack.get(InvoiceNo="540001")
    assert status == 200
    assert [entry["stock_code"] for entry in invoice["items"]] == ["71053", "85123A"]
    assert (invoice["line_count"], invoice["total_quantity"], invoice["total_revenue"]) == (3, 14, "35.7000")


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/transactions", 400),
        ("/transactions?StockCode=85123A", 400),
        ("/transactions?InvoiceNo=540001&Color=red", 400),
        ("/transactions?InvoiceNo=540001&StockCode=A&StockCode=B", 400),
        ("/transactions?InvoiceNo=", 400),
        ("/transactions?InvoiceNo=%01x", 400),
        ("/transactions?InvoiceNo=540001%0A", 400),
        ("/transactions?InvoiceNo=540001&StockCode=85123A%1F", 400),
        ("/transactions?InvoiceNo=" + "9" * 65, 400),
        ("/transactions?InvoiceNo=999999", 404),
        ("/transactions?InvoiceNo=540001&StockCode=NOPE", 404),
    ],
)
def test_bad_or_unknown_queries(stack: Any, target: str, status: int) -> None:
    answer = stack.request("GET", target)
    assert answer[0] == status
    assert set(answer[1]) == {"message"}


def test_accepted_records_go_on_the_stream_keyed_by_invoice(make_stack: Any) -> None:
    stack = make_stack()
    other_invoice = GOOD.replace("536365", "536366")
    assert stack.post(f"{HEADER}\r\n{GOOD}\r\n{other_invoice}\r\n{GOOD}\r\n")[1]["accepted"] == 3
    kinesis = stack.client("kinesis")
    shard_iterator = kinesis.get_shard_iterator(
        StreamName=stack.resources.stream_name,
        ShardId="shardId-000000000000",
        ShardIteratorType="TRIM_HORIZON",
    )["ShardIterator"]
    put = kinesis.get_records(ShardIterator=shard_iterator)["Records"]
    assert sorted(record["PartitionKey"] for record in put) == ["536365", "536365", "536366"]
    line_ids = [json.loads(record["Data"])["line_id"] for record in put]
    assert len(set(line_ids)) == 3  # the two identical lines stay two lines


def test_the_lambda_entry_point_reads_its_settings_from_the_environment(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack.resources.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COGNITO_ISSUER", stack.front.auth.issuer)
    monkeypatch.setenv("COGNITO_JWKS_URL", stack.front.auth.jwks_url)
    monkeypatch.setenv("COGNITO_CLIENT_IDS", ",".join(stack.front.auth.client_ids))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    headers = {"Authorization": f"Bearer {stack.token}", "Content-Type": "text/csv"}
    event = proxy_event("POST", "/transactions", headers, f"{HEADER}\r\n{GOOD}\r\n".encode(), {})
    response = ingest.handler(event, LocalContext(function_name="ingest"))
    assert response["statusCode"] == 202
    assert json.loads(response["body"])["accepted"] == 1
