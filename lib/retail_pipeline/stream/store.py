"""The DynamoDB model: one item per (InvoiceNo, StockCode), holding every line and the totals.

An invoice can hold several lines with the same StockCode (652 of the first 9,999 real rows
do), so the item cannot be the line. Each line is a map attribute `line#<line id>` of the item,
and the totals (`line_count`, `total_quantity`, `total_revenue`) are kept by the same update:

    SET #line = :line ADD line_count :one, total_quantity :q, total_revenue :r
    IF attribute_not_exists(#line)

One conditional UpdateItem per line: it creates the item if needed, and a line id that is
already there changes nothing (the data write is its own idempotency record, with no window
between the two). `source` (the Kinesis event id) tells a redelivery of the same Kinesis record
from the same line sent again by a producer. An item holds at most 400 KB: about 1,500 lines
of one StockCode in one invoice.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Literal

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from retail_pipeline import rules
from retail_pipeline.stream.records import money

LINE_PREFIX = "line#"
INVOICE_NO = "invoice_no"
STOCK_CODE = "stock_code"
StoreResult = Literal["stored", "redelivered", "duplicate"]

_UPDATE = "SET #line = :line ADD line_count :one, total_quantity :quantity, total_revenue :revenue"
_DESERIALIZER = TypeDeserializer()


def key(invoice_no: str, stock_code: str) -> dict[str, dict[str, str]]:
    return {INVOICE_NO: {"S": invoice_no}, STOCK_CODE: {"S": stock_code}}


def _line_attribute(line: rules.InvoiceLine, source: str) -> dict[str, Any]:
    description = {"S": line.description} if line.description is not None else {"NULL": True}
    return {
        "M": {
            "description": description,
            "quantity": {"N": str(line.quantity)},
            "unit_price": {"N": money(line.unit_price)},
            "revenue": {"N": money(line.revenue)},
            "invoice_ts": {"S": line.invoice_ts.isoformat()},
            "customer_id": {"S": line.customer_id},
            "country": {"S": line.country},
            "source": {"S": source},
        }
    }


def put_line(dynamodb: Any, table: str, *, line: rules.InvoiceLine, line_id: str, source: str) -> StoreResult:
    """Store one published line once. `source` is the Kinesis event id that carried it."""
    attribute = f"{LINE_PREFIX}{line_id}"
    try:
        dynamodb.update_item(
            TableName=table,
            Key=key(line.invoice_no, line.stock_code),
            UpdateExpression=_UPDATE,
            ConditionExpression="attribute_not_exists(#line)",
            ExpressionAttributeNames={"#line": attribute},
            ExpressionAttributeValues={
                ":line": _line_attribute(line, source),
                ":one": {"N": "1"},
                ":quantity": {"N": str(line.quantity)},
                ":revenue": {"N": money(line.revenue)},
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        stored = error.response.get("Item", {}).get(attribute, {}).get("M", {})
        return "redelivered" if stored.get("source", {}).get("S") == source else "duplicate"
    return "stored"


def item_to_json(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (typed form) as plain JSON: the lines in arrival order, then the totals."""
    plain = {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}
    lines = []
    for name, value in plain.items():
        if name.startswith(LINE_PREFIX):
            lines.append((_arrival_order(value["source"]), _line_json(name.removeprefix(LINE_PREFIX), value)))
    lines.sort(key=lambda pair: pair[0])
    return {
        INVOICE_NO: plain[INVOICE_NO],
        STOCK_CODE: plain[STOCK_CODE],
        "line_count": int(plain["line_count"]),
        "total_quantity": int(plain["total_quantity"]),
        "total_revenue": money(plain["total_revenue"]),
        "lines": [line for _, line in lines],
    }


def _arrival_order(source: str) -> tuple[str, int]:
    shard_id, _, sequence_number = source.rpartition(":")
    return shard_id, int(sequence_number) if sequence_number.isdigit() else 0


def _line_json(line_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "line_id": line_id,
        "description": value["description"],
        "quantity": int(value["quantity"]),
        "unit_price": money(Decimal(value["unit_price"])),
        "revenue": money(Decimal(value["revenue"])),
        "invoice_ts": value["invoice_ts"],
        "customer_id": value["customer_id"],
        "country": value["country"],
    }


def get_item(dynamodb: Any, table: str, invoice_no: str, stock_code: str) -> dict[str, Any] | None:
    """One (InvoiceNo, StockCode) with all its lines, or None."""
    response = dynamodb.get_item(TableName=table, Key=key(invoice_no, stock_code), ConsistentRead=True)
    item = response.get("Item")
    return item_to_json(item) if item else None


def get_invoice(dynamodb: Any, table: str, invoice_no: str) -> list[dict[str, Any]]:
    """Every item of one invoice, by StockCode (all pages of the query)."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "invoice_no = :invoice_no",
        "ExpressionAttributeValues": {":invoice_no": {"S": invoice_no}},
        "ConsistentRead": True,
    }
    while True:
        response = dynamodb.query(**request)
        items.extend(item_to_json(item) for item in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return items
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def scan_items(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    """Every item of the table as plain JSON (for checks and the demo, not for the API)."""
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        response = dynamodb.scan(**request)
        yield from (item_to_json(item) for item in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
