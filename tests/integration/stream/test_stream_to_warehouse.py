"""A streamed invoice reaches the warehouse tables through the same loader as the batch job."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from retail_pipeline import warehouse
from retail_pipeline.stream.objects import list_curated_objects

pytestmark = pytest.mark.integration

INVOICE = "\r\n".join(
    [
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
        "581999,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/9/2011 12:50,2.55,17850,United Kingdom",
        '581999,22423,"REGENCY CAKESTAND, 3 TIER",2,12/9/2011 12:50,12.75,17850,United Kingdom',
        "581999,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/9/2011 12:50,2.55,17850,United Kingdom",
        "C581999,22423,REGENCY CAKESTAND 3 TIER,-1,12/9/2011 12:51,12.75,17850,United Kingdom",
    ]
)


def download(stack: Any, uris: list[str], folder: Path) -> list[str]:
    s3 = stack.client("s3")
    paths = []
    for uri in uris:
        key = uri.split("/", 3)[3]
        target = folder / key
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(stack.resources.bucket, key, str(target))
        paths.append(str(target))
    return paths


def test_a_streamed_invoice_is_loaded_into_the_star_schema(make_stack: Any, tmp_path: Path) -> None:
    stack = make_stack()
    status, answer = stack.post(INVOICE)
    assert status == 202 and answer["accepted"] == 4
    stack.poller.drain()

    settings = stack.resources.process_settings()
    uris = list_curated_objects(stack.client("s3"), stack.resources.bucket, settings.curated_prefix)
    assert uris and all("invoice_year=2011/invoice_month=12/" in uri for uri in uris)
    files = download(stack, uris, tmp_path / "lake")

    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    result = warehouse.load_parquet_files(url, files, batch_id="stream-test")
    again = warehouse.load_parquet_files(url, files, batch_id="stream-test")
    assert result.rows == again.rows == 3  # the cancellation stays out; the repeated line stays in

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as db:
        query = "SELECT stock_code, quantity, revenue FROM fact_sales WHERE invoice_no = '581999'"
        lines = db.sql(query).fetchall()
        daily = db.sql("SELECT orders, lines, revenue FROM sales_daily WHERE date_key = 20111209").fetchall()
    assert sorted(lines) == [
        ("22423", 2, Decimal("25.5000")),
        ("85123A", 6, Decimal("15.3000")),
        ("85123A", 6, Decimal("15.3000")),
    ]
    assert daily == [(1, 3, Decimal("56.1000"))]
