"""The DynamoDB model: one item per line, under its invoice.

    partition key  invoice_no                              (S)
    sort key       line_key = <stock_code> \\x1f <line id>  (S)

with the line's fields (stock_code, line_id, description, quantity, unit_price, revenue,
invoice_ts, customer_id, country) and `source`, the Kinesis event id that carried it.

An invoice is one partition, so `GET ?InvoiceNo=` is one strongly consistent Query and
`&StockCode=` narrows it with begins_with(line_key, "<stock_code>\\x1f") (the separator is a
control character, which no stored key holds: `limits.KEY_FORBIDDEN_CHARACTERS`). Answers group
the lines by StockCode and sum the totals as they are read: the same JSON as when one item held
a StockCode's lines and totals.

Writes come in batches and stay idempotent without conditions, since the line id is in the key:
BatchGetItem finds the line ids already stored (a redelivered record, same `source`; or a
producer's duplicate, another `source`), then BatchWriteItem puts the new ones, 25 a request,
sending its unprocessed items again. Between the read and the write nothing else writes the same
invoice: the stream's partition key is InvoiceNo and a shard has one batch in flight at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from retail_pipeline import limits, rules
from retail_pipeline.stream.records import money

INVOICE_NO = "invoice_no"
LINE_KEY = "line_key"
STOCK_CODE = "stock_code"
LINE_ID = "line_id"
SOURCE = "source"
StoreResult = Literal["stored", "redelivered", "duplicate", "refused"]
Key = tuple[str, str]

BATCH_ATTEMPTS = 5  # for unprocessed items and keys; the client retries errors by itself
_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_DESERIALIZER = TypeDeserializer()


class StoreBusyError(RuntimeError):
    """DynamoDB left keys unprocessed after every attempt (throttling): retry later."""


class LineToStore(NamedTuple):
    position: int  # the record's index in its Kinesis batch
    line: rules.InvoiceLine
    line_id: str
    source: str


@dataclass
class WriteResult:
    """Per position: what became of each line before `failed_at`, the first position a
    retryable error left unstored (None: every line is done); `refusals` say why the table
    refused a line (it can never be stored)."""

    results: dict[int, StoreResult] = field(default_factory=dict)
    failed_at: int | None = None
    refusals: dict[int, str] = field(default_factory=dict)


def is_retryable(error: Exception) -> bool:
    """Throttling, a 5xx or no answer: the same request may succeed later."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return code in _RETRYABLE_CODES or status >= 500
    return isinstance(error, (BotoCoreError, StoreBusyError)) and not isinstance(error, ParamValidationError)


def is_refusal(error: Exception) -> bool:
    """The table refuses the request's content (key or item too large, ...): never retry it."""
    return (
        isinstance(error, ClientError)
        and error.response.get("Error", {}).get("Code") == "ValidationException"
    )


def line_key(stock_code: str, line_id: str) -> str:
    return f"{stock_code}{limits.KEY_SEPARATOR}{line_id}"


def key(invoice_no: str, stock_code: str, line_id: str) -> dict[str, dict[str, str]]:
    return {INVOICE_NO: {"S": invoice_no}, LINE_KEY: {"S": line_key(stock_code, line_id)}}


def line_item(line: rules.InvoiceLine, line_id: str, source: str) -> dict[str, Any]:
    """The typed DynamoDB item of one line."""
    description = {"S": line.description} if line.description is not None else {"NULL": True}
    return {
        **key(line.invoice_no, line.stock_code, line_id),
        STOCK_CODE: {"S": line.stock_code},
        LINE_ID: {"S": line_id},
        "description": description,
        "quantity": {"N": str(line.quantity)},
        "unit_price": {"N": money(line.unit_price)},
        "revenue": {"N": money(line.revenue)},
        "invoice_ts": {"S": line.invoice_ts.isoformat()},
        "customer_id": {"S": line.customer_id},
        "country": {"S": line.country},
        SOURCE: {"S": source},
    }


def _key_of(item: dict[str, Any]) -> Key:
    return item[INVOICE_NO]["S"], item[LINE_KEY]["S"]


def _store_key(line: LineToStore) -> Key:
    return line.line.invoice_no, line_key(line.line.stock_code, line.line_id)


def write_lines(dynamodb: Any, table: str, lines: Sequence[LineToStore]) -> WriteResult:
    """Store each line once, in batches (see the module's docstring); lines in batch order."""
    result = WriteResult()
    if not lines:
        return result
    keys = {line.position: _store_key(line) for line in lines}
    try:
        stored, refused = stored_sources(dynamodb, table, set(keys.values()))
    except Exception as error:
        if not is_retryable(error):
            raise
        result.failed_at = lines[0].position
        return result
    fresh: list[LineToStore] = []
    seen: set[Key] = set()
    for line in lines:
        item_key = keys[line.position]
        if item_key in refused:
            result.results[line.position] = "refused"
            result.refusals[line.position] = refused[item_key]
        elif item_key in seen:
            result.results[line.position] = "duplicate"  # the same line id twice in one batch
        elif item_key in stored:
            result.results[line.position] = "redelivered" if stored[item_key] == line.source else "duplicate"
        else:
            result.results[line.position] = "stored"
            fresh.append(line)
        seen.add(item_key)
    for start in range(0, len(fresh), limits.BATCH_WRITE_MAX_ITEMS):
        failed_at = _write_chunk(dynamodb, table, fresh[start : start + limits.BATCH_WRITE_MAX_ITEMS], result)
        if failed_at is not None:
            result.failed_at = failed_at
            result.results = {
                position: done for position, done in result.results.items() if position < failed_at
            }
            result.refusals = {
                position: why for position, why in result.refusals.items() if position < failed_at
            }
            return result
    return result


def _write_chunk(dynamodb: Any, table: str, chunk: Sequence[LineToStore], result: WriteResult) -> int | None:
    """One BatchWriteItem and its unprocessed items; the first position left unstored, if any."""
    by_key = {_store_key(line): line for line in chunk}
    requests = [{"PutRequest": {"Item": line_item(line.line, line.line_id, line.source)}} for line in chunk]

    def pending() -> list[LineToStore]:
        return [by_key[_key_of(request["PutRequest"]["Item"])] for request in requests]

    for attempt in range(BATCH_ATTEMPTS):
        try:
            response = dynamodb.batch_write_item(RequestItems={table: requests})
        except Exception as error:
            if is_refusal(error):
                return _write_one_by_one(dynamodb, table, pending(), result)
            if is_retryable(error):
                return min(line.position for line in pending())
            raise
        requests = response.get("UnprocessedItems", {}).get(table, [])
        if not requests:
            return None
        time.sleep(0.05 * 2**attempt)
    return min(line.position for line in pending())


def _write_one_by_one(
    dynamodb: Any, table: str, lines: Sequence[LineToStore], result: WriteResult
) -> int | None:
    """After the table refused a batch: each line alone, so only the lines it refuses fail."""
    for line in lines:
        try:
            dynamodb.put_item(TableName=table, Item=line_item(line.line, line.line_id, line.source))
        except Exception as error:
            if is_retryable(error):
                return line.position
            if not is_refusal(error):
                raise
            result.results[line.position] = "refused"
            result.refusals[line.position] = str(error)
    return None


def stored_sources(dynamodb: Any, table: str, keys: set[Key]) -> tuple[dict[Key, str], dict[Key, str]]:
    """The `source` of each key already stored, and the keys the table refuses (with why)."""
    stored: dict[Key, str] = {}
    refused: dict[Key, str] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), limits.BATCH_GET_MAX_KEYS):
        chunk = ordered[start : start + limits.BATCH_GET_MAX_KEYS]
        try:
            stored.update(_batch_get(dynamodb, table, chunk))
        except Exception as error:
            if not is_refusal(error):
                raise
            for one in chunk:  # find the keys it refuses, one at a time
                try:
                    stored.update(_batch_get(dynamodb, table, [one]))
                except Exception as single_error:
                    if not is_refusal(single_error):
                        raise
                    refused[one] = str(single_error)
    return stored, refused


def _batch_get(dynamodb: Any, table: str, keys: Sequence[Key]) -> dict[Key, str]:
    request: dict[str, Any] = {
        "Keys": [{INVOICE_NO: {"S": invoice_no}, LINE_KEY: {"S": sort_key}} for invoice_no, sort_key in keys],
        "ConsistentRead": True,
        "ProjectionExpression": "#invoice, #key, #source",
        "ExpressionAttributeNames": {"#invoice": INVOICE_NO, "#key": LINE_KEY, "#source": SOURCE},
    }
    found: dict[Key, str] = {}
    for attempt in range(BATCH_ATTEMPTS):
        response = dynamodb.batch_get_item(RequestItems={table: request})
        for item in response.get("Responses", {}).get(table, []):
            found[_key_of(item)] = item[SOURCE]["S"]
        unprocessed = response.get("UnprocessedKeys", {}).get(table)
        if not unprocessed:
            return found
        request = unprocessed
        time.sleep(0.05 * 2**attempt)
    raise StoreBusyError(f"{len(request['Keys'])} keys left unprocessed after {BATCH_ATTEMPTS} attempts")


# ---------------------------------------------------------------------------------------------
# Reading: lines grouped by (InvoiceNo, StockCode), as the query API answers them.
# ---------------------------------------------------------------------------------------------


def items_to_json(raw_items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Typed line items as plain JSON per (InvoiceNo, StockCode), in the order first seen: each
    with its lines in arrival order and the totals."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for raw in raw_items:
        plain = {name: _DESERIALIZER.deserialize(value) for name, value in raw.items()}
        groups.setdefault((plain[INVOICE_NO], plain[STOCK_CODE]), []).append(plain)
    return [_item_json(invoice_no, stock_code, lines) for (invoice_no, stock_code), lines in groups.items()]


def _item_json(invoice_no: str, stock_code: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    lines.sort(key=lambda line: (*_arrival_order(line[SOURCE]), line[LINE_ID]))
    return {
        INVOICE_NO: invoice_no,
        STOCK_CODE: stock_code,
        "line_count": len(lines),
        "total_quantity": sum(int(line["quantity"]) for line in lines),
        "total_revenue": money(sum((Decimal(line["revenue"]) for line in lines), Decimal(0))),
        "lines": [_line_json(line) for line in lines],
    }


def _arrival_order(source: str) -> tuple[str, int]:
    shard_id, _, sequence_number = source.rpartition(":")
    return shard_id, int(sequence_number) if sequence_number.isdigit() else 0


def _line_json(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "line_id": value[LINE_ID],
        "description": value["description"],
        "quantity": int(value["quantity"]),
        "unit_price": money(Decimal(value["unit_price"])),
        "revenue": money(Decimal(value["revenue"])),
        "invoice_ts": value["invoice_ts"],
        "customer_id": value["customer_id"],
        "country": value["country"],
    }


def _query(dynamodb: Any, table: str, invoice_no: str, stock_code: str | None) -> Iterator[dict[str, Any]]:
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "#invoice = :invoice_no",
        "ExpressionAttributeNames": {"#invoice": INVOICE_NO},
        "ExpressionAttributeValues": {":invoice_no": {"S": invoice_no}},
        "ConsistentRead": True,
    }
    if stock_code is not None:
        request["KeyConditionExpression"] += " AND begins_with(#key, :stock_code)"
        request["ExpressionAttributeNames"]["#key"] = LINE_KEY
        request["ExpressionAttributeValues"][":stock_code"] = {"S": line_key(stock_code, "")}
    while True:
        response = dynamodb.query(**request)
        yield from response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def get_item(dynamodb: Any, table: str, invoice_no: str, stock_code: str) -> dict[str, Any] | None:
    """One (InvoiceNo, StockCode) with all its lines and totals, or None."""
    items = items_to_json(_query(dynamodb, table, invoice_no, stock_code))
    return items[0] if items else None


def get_invoice(dynamodb: Any, table: str, invoice_no: str) -> list[dict[str, Any]]:
    """Every (InvoiceNo, StockCode) of one invoice, by StockCode (all pages of the query)."""
    return items_to_json(_query(dynamodb, table, invoice_no, None))


def scan_items(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    """Every (InvoiceNo, StockCode) of the table as plain JSON (for checks and the demo, not
    for the API: it reads the whole table)."""

    def pages() -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            response = dynamodb.scan(**request)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    return items_to_json(pages())
