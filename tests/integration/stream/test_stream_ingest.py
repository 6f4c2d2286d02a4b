"""Ingest as a hostile client would use it, through the local API and through the handler itself,
against moto: bounded work and answers, nothing accepted that the stores cannot hold, a 4xx for
every bad body, and a retry without an Idempotency-Key that stores nothing twice."""

from __future__ import annotations

import json
import time
import tracemalloc
import urllib.parse
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from retail_pipeline import limits
from retail_pipeline.stream.objects import list_objects
from retail_pipeline_dev.stream_local import LocalContext
from retail_pipeline_dev.stream_local.front import proxy_event
from tests.integration.stream.faults import PUT_RECORDS

pytestmark = pytest.mark.integration

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
GOOD = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"
RECORD = dict(zip(HEADER.split(","), GOOD.split(","), strict=True))
# What the ingest Lambda has (infra/template.yaml) and what API Gateway lets it answer.
LAMBDA_MEMORY_BYTES = 512 * 1024 * 1024
LAMBDA_TIMEOUT_SECONDS = 29
LAMBDA_RESPONSE_MAX_BYTES = 6 * 1024 * 1024
# A 512 MB Lambda gets about a third of a vCPU: the handler must be well inside its 29 s here.
LOCAL_SECONDS_BUDGET = LAMBDA_TIMEOUT_SECONDS / 6


@pytest.fixture(scope="module")
def stack(make_stack: Any) -> Any:
    return make_stack()


def via_handler(stack: Any, body: bytes, content_type: str, **headers: str) -> tuple[int, Any, int]:
    """POST /transactions straight to the handler the front routes to: (status, answer, bytes)."""
    sent = {"Authorization": f"Bearer {stack.token}", "Content-Type": content_type, **headers}
    event = proxy_event("POST", "/transactions", sent, body, {})
    response = stack.front.routes[("POST", "/transactions")](event, LocalContext(function_name="ingest"))
    return response["statusCode"], json.loads(response["body"]), len(response["body"].encode())


def via_api(stack: Any, body: bytes, content_type: str, **headers: str) -> tuple[int, Any, int]:
    status, raw = stack.request_raw(
        "POST", "/transactions", body=body, headers={"Content-Type": content_type, **headers}
    )
    return status, json.loads(raw), len(raw)


VIAS: dict[str, Callable[..., tuple[int, Any, int]]] = {"api": via_api, "handler": via_handler}


def csv_body(*lines: str) -> bytes:
    return "\r\n".join([HEADER, *lines, ""]).encode("utf-8")


@pytest.mark.parametrize("via", sorted(VIAS))
def test_the_answer_counts_every_reason_and_lists_only_the_first_rejections(stack: Any, via: str) -> None:
    bad = [""] * 150 + [GOOD.replace(",6,", ",six,")] * 100
    status, answer, _ = VIAS[via](stack, csv_body(*bad, GOOD), "text/csv")
    assert status == 202
    assert (answer["accepted"], answer["rejected"]) == (1, 250)
    assert answer["reasons"] == {"empty_line": 150, "invalid_quantity": 100}
    assert answer["rejections"] == [
        {"line": n, "reason": "empty_line"} for n in range(2, 2 + limits.REJECTIONS_LISTED)
    ]


WIDEST_KEY = "\U0001f600" * limits.KEY_MAX_CHARS  # the longest key there is: 256 bytes of UTF-8
UNSTORABLE = {
    "invalid_invoice_no": {**RECORD, "InvoiceNo": "5" * (limits.KEY_MAX_CHARS + 1)},
    "invalid_stock_code": {**RECORD, "StockCode": "S" * (limits.KEY_MAX_CHARS + 1)},
    "control_character_in_key": {**RECORD, "StockCode": "85123A\x1f"},  # the rules' own check
    "invalid_text": {**RECORD, "Description": "\ud800"},
    "record_too_large": {**RECORD, "Description": "x" * limits.LINE_MAX_BYTES},
}


@pytest.mark.parametrize("via", sorted(VIAS))
def test_what_the_stores_could_never_hold_is_rejected_and_the_rest_is_stored_and_found(
    make_stack: Any, via: str
) -> None:
    stack = make_stack()
    widest = {**RECORD, "InvoiceNo": WIDEST_KEY, "StockCode": WIDEST_KEY}
    elements = [RECORD, *UNSTORABLE.values(), widest]
    status, answer, _ = VIAS[via](stack, json.dumps(elements).encode(), "application/json")
    assert status == 202
    assert answer["reasons"] == dict.fromkeys(UNSTORABLE, 1)
    assert answer["accepted"] == 2
    stack.poller.drain()
    for record in (RECORD, widest):  # moto holds DynamoDB's key limits: the widest key is stored
        status, item = stack.get(InvoiceNo=record["InvoiceNo"], StockCode=record["StockCode"])
        assert (status, item["line_count"]) == (200, 1)


@pytest.mark.parametrize("via", sorted(VIAS))
def test_bytes_that_are_not_utf8_fail_their_own_line_and_not_the_good_ones(stack: Any, via: str) -> None:
    other = GOOD.replace("536365", "536999")
    body = csv_body(GOOD).replace(b"HOLDER", b"HOLDER \xff\xfe") + f"{other}\r\n".encode()
    status, answer, _ = VIAS[via](stack, body, "text/csv")
    assert (status, answer["accepted"], answer["rejections"]) == (
        202,
        1,
        [{"line": 2, "reason": "invalid_encoding"}],
    )


@pytest.mark.parametrize("via", sorted(VIAS))
@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
        (b'[{"InvoiceNo": ' + b"[" * 50_000 + b"]" * 50_000 + b"}]", "application/json", 400),
        (b"[" + b"{}," * (limits.REQUEST_MAX_RECORDS) + b"{}]", "application/json", 413),
        (csv_body(*[GOOD] * (limits.REQUEST_MAX_RECORDS + 1)), "text/csv", 413),
    ],
)
def test_bodies_no_record_can_come_from_are_a_4xx(
    stack: Any, via: str, body: bytes, content_type: str, status: int
) -> None:
    answered, answer, _ = VIAS[via](stack, body, content_type)
    assert (answered, set(answer)) == (status, {"message"})


def six_mb_bodies() -> dict[str, tuple[bytes, str]]:
    long_key = "5" * 505 + GOOD[6:]  # each line: invalid_invoice_no
    element = json.dumps({**RECORD, "InvoiceNo": "5" * 380})
    many_keys = "{" + ",".join(f'"k{n}":{n}' for n in range(364_000)) + "}"
    return {
        "blank lines": (b"\n" * 5_999_000, "text/csv"),
        "lines of long keys": (csv_body(*[long_key] * limits.REQUEST_MAX_RECORDS), "text/csv"),
        "lines of one field": (csv_body(*["x" * 590] * limits.REQUEST_MAX_RECORDS), "text/csv"),
        "elements of long keys": (
            ("[" + ",".join([element] * limits.REQUEST_MAX_RECORDS) + "]").encode(),
            "application/json",
        ),
        "empty objects": (b"[" + b"{}," * 1_999_000 + b"{}]", "application/json"),
        "one object of many keys": (many_keys.encode(), "application/json"),
        "one line of 6 MB": (csv_body("1,2," + "y" * 5_990_000 + ",6,12/1/2010 8:26,2.55,1,UK"), "text/csv"),
    }


SIX_MB_BODIES = six_mb_bodies()


@pytest.mark.parametrize("name", sorted(SIX_MB_BODIES))
def test_a_6_mb_body_of_bad_lines_is_answered_within_the_lambdas_limits(stack: Any, name: str) -> None:
    body, content_type = SIX_MB_BODIES[name]
    assert 5_900_000 <= len(body) <= limits.REQUEST_MAX_BYTES
    started = time.perf_counter()
    status, answer, size = via_api(stack, body, content_type)
    seconds = time.perf_counter() - started
    assert status in (202, 413), answer
    assert status == 413 or answer["accepted"] == 0
    assert size < 16_000 < LAMBDA_RESPONSE_MAX_BYTES
    assert seconds < LOCAL_SECONDS_BUDGET
    tracemalloc.start()
    try:
        assert via_handler(stack, body, content_type)[0] == status
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The body, its text and the records of one request, far below what the Lambda has.
    assert peak < LAMBDA_MEMORY_BYTES / 4


@pytest.mark.parametrize("via", sorted(VIAS))
@pytest.mark.parametrize(
    ("headers", "again"),
    [({}, "with the same body"), ({"Idempotency-Key": "order-7"}, "with the same Idempotency-Key")],
)
def test_a_request_sent_again_after_a_partial_failure_stores_each_line_once(
    make_stack: Any, via: str, headers: dict[str, str], again: str
) -> None:
    stack = make_stack(faults=True)
    body = csv_body(*[GOOD.replace("85123A", f"S{n:02d}") for n in range(10)])
    stack.faults.take_half(PUT_RECORDS)  # Kinesis takes half of every PutRecords, refuses the rest
    status, answer, _ = VIAS[via](stack, body, "text/csv", **headers)
    assert status == 503
    assert answer == {
        "message": f"the stream is unavailable; send the request again {again}: no line is stored twice"
    }
    stack.faults.clear()
    assert VIAS[via](stack, body, "text/csv", **headers)[0] == 202
    stack.poller.drain()

    stored = Counter(line["line_id"] for item in stack.items() for line in item["lines"])
    assert len(stored) == 10 and set(stored.values()) == {1}
    status, invoice = stack.get(InvoiceNo="536365")
    assert (status, invoice["line_count"]) == (200, 10)
    # The first request's four attempts put 5 + 2 + 1 + 1 lines: each came back as a duplicate.
    assert dead_letter_reasons(stack) == {"duplicate_line_id": 9}


def dead_letter_reasons(stack: Any) -> Counter[str]:
    s3, bucket = stack.client("s3"), stack.resources.bucket
    reasons: Counter[str] = Counter()
    for key in list_objects(s3, bucket, stack.resources.process_settings().dead_letter_prefix):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        reasons.update(json.loads(line)["reason"] for line in body.splitlines())
    return reasons


def test_the_same_line_in_another_body_is_another_line(stack: Any) -> None:
    invoice = GOOD.replace("536365", "537001")
    assert stack.post(csv_body(invoice))[1]["accepted"] == 1
    assert stack.post(csv_body(invoice))[1]["accepted"] == 1  # the same body: the same line
    assert stack.post(csv_body(invoice, invoice))[1]["accepted"] == 2  # a new body: new lines
    stack.poller.drain()
    status, item = stack.get(InvoiceNo="537001", StockCode="85123A")
    assert (status, item["line_count"]) == (200, 3)
    assert urllib.parse.quote(item["lines"][0]["line_id"]).startswith("body-")
