"""`GET /transactions?InvoiceNo=..[&StockCode=..]`: stored lines as plain JSON.

With StockCode: that item, every line and the totals. Without: every item of the invoice and
the invoice's totals. 400 for a missing, repeated, unknown or malformed parameter, 404 when
nothing is stored, 401 without a valid access token. Money is exact decimal text ("15.3000").
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from retail_pipeline import limits
from retail_pipeline.stream import api, store
from retail_pipeline.stream.records import money
from retail_pipeline.stream.settings import QuerySettings

logger = Logger(service="retail-stream")

PARAMETERS = ("InvoiceNo", "StockCode")


class ParameterError(ValueError):
    """A query parameter is missing, repeated, unknown or malformed (HTTP 400)."""


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = QuerySettings.from_env(os.environ)
    return handle(event, settings, dynamodb=api.aws_client("dynamodb", settings.aws))


def handle(event: dict[str, Any], settings: QuerySettings, *, dynamodb: Any) -> dict[str, Any]:
    request = APIGatewayProxyEvent(event)
    if api.authorize(request, settings.auth) is None:
        return api.unauthorized_response()
    if request.http_method != "GET":
        return api.error_response(405, "use GET")
    try:
        invoice_no, stock_code = parse_parameters(request)
    except ParameterError as error:
        return api.error_response(400, str(error))
    found = lookup(dynamodb, settings.table_name, invoice_no, stock_code)
    if found is None:
        return api.error_response(404, "nothing is stored for these parameters")
    return api.json_response(200, found)


def lookup(dynamodb: Any, table: str, invoice_no: str, stock_code: str | None) -> dict[str, Any] | None:
    """One item with its lines, or the whole invoice; None when nothing is stored."""
    if stock_code is not None:
        return store.get_item(dynamodb, table, invoice_no, stock_code)
    items = store.get_invoice(dynamodb, table, invoice_no)
    return invoice_json(invoice_no, items) if items else None


def parse_parameters(request: APIGatewayProxyEvent) -> tuple[str, str | None]:
    values: dict[str, list[str]] = dict(request.multi_value_query_string_parameters)
    for name, value in request.query_string_parameters.items():
        values.setdefault(name, [value])
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise ParameterError(f"unknown parameter {unknown[0]} (known: {', '.join(PARAMETERS)})")
    found: dict[str, str] = {}
    for name, given in values.items():
        if len(given) != 1:
            raise ParameterError(f"give {name} once")
        # Stored keys are trimmed raw fields within the same limits (ingest checks them).
        value = given[0].strip(" ")
        if not limits.is_queryable_key(value):
            raise ParameterError(
                f"{name} must be 1 to {limits.KEY_MAX_CHARS} characters, none a control character"
            )
        found[name] = value
    if "InvoiceNo" not in found:
        raise ParameterError("InvoiceNo is required")
    return found["InvoiceNo"], found.get("StockCode")


def invoice_json(invoice_no: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "invoice_no": invoice_no,
        "line_count": sum(item["line_count"] for item in items),
        "total_quantity": sum(item["total_quantity"] for item in items),
        "total_revenue": money(sum((Decimal(item["total_revenue"]) for item in items), Decimal(0))),
        "items": items,
    }
