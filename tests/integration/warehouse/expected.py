"""What the warehouse must hold, worked out in plain Python from the curated Parquet (an
independent statement of the model's rules, not the loader's SQL), and readers that fetch what
a warehouse does hold, for both DuckDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

Row = tuple[Any, ...]

COLUMNS = {
    # Every column but batch_id (the load that wrote the line: one run, or each day's run).
    "fact_sales": "invoice_no, line_no, stock_code, description, customer_id, country, invoice_ts, "
    "date_key, quantity, unit_price, revenue, source_file",
    "dim_product": "stock_code, description",
    "dim_customer": "customer_id, country, first_purchase_ts, last_purchase_ts, orders, revenue",
    "dim_date": "date_key, calendar_date, year, quarter, month, month_name, year_month, day_of_month, "
    "day_of_week, day_name, iso_week, is_weekend",
    "sales_daily": "date_key, country, orders, lines, units, revenue",
}
TABLES = tuple(COLUMNS)


def curated_lines(output: Path) -> list[dict[str, Any]]:
    """Every published line in the batch output's curated folder."""
    lines: list[dict[str, Any]] = []
    for path in sorted((output / "curated").rglob("*.parquet")):
        if not path.name.startswith((".", "_")):
            lines += pq.ParquetFile(path).read().to_pylist()
    return lines


def day_key(moment: dt.datetime | dt.date) -> int:
    return moment.year * 10000 + moment.month * 100 + moment.day


def expected_fact(lines: Iterable[dict[str, Any]]) -> list[Row]:
    """A line's number counts its invoice's lines in its own source file: the same however the
    input is split into runs."""
    by_invoice: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        by_invoice[(line["source_file"], line["invoice_no"])].append(line)
    rows = []
    for (source_file, invoice_no), invoice_lines in by_invoice.items():
        # Python compares str by code point: the byte order of UTF-8, as the "C" collation.
        ordered = sorted(
            invoice_lines,
            key=lambda x: (x["stock_code"], x["description"] is None, x["description"] or "", x["quantity"],
                           x["unit_price"], x["invoice_ts"], x["customer_id"], x["country"]),
        )  # fmt: skip
        for number, x in enumerate(ordered, start=1):
            rows.append(
                (invoice_no, number, x["stock_code"], x["description"], x["customer_id"], x["country"],
                 x["invoice_ts"], day_key(x["invoice_ts"]), x["quantity"], x["unit_price"], x["revenue"],
                 source_file)
            )  # fmt: skip
    return rows


def expected_products(lines: list[dict[str, Any]]) -> list[Row]:
    descriptions: dict[str, Counter[str]] = defaultdict(Counter)
    for line in lines:
        counts = descriptions[line["stock_code"]]
        if line["description"] is not None:
            counts[line["description"]] += 1
    rows: list[Row] = []
    for stock_code, counts in descriptions.items():
        best = min(counts.items(), key=lambda item: (-item[1], item[0]))[0] if counts else None
        rows.append((stock_code, best))
    return rows


def expected_customers(lines: list[dict[str, Any]]) -> list[Row]:
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        by_customer[line["customer_id"]].append(line)
    rows: list[Row] = []
    for customer_id, mine in by_customer.items():
        latest = max(x["invoice_ts"] for x in mine)
        country = min(x["country"] for x in mine if x["invoice_ts"] == latest)
        rows.append(
            (customer_id, country, min(x["invoice_ts"] for x in mine), latest,
             len({x["invoice_no"] for x in mine}), sum((x["revenue"] for x in mine), Decimal(0)))
        )  # fmt: skip
    return rows


def expected_calendar(lines: list[dict[str, Any]]) -> list[Row]:
    years = {x["invoice_ts"].year for x in lines}
    day = dt.date(min(years), 1, 1)
    rows: list[Row] = []
    while day.year <= max(years):
        weekday = day.isoweekday()
        rows.append(
            (day_key(day), day, day.year, (day.month + 2) // 3, day.month, f"{day:%B}",
             f"{day:%Y-%m}", day.day, weekday, f"{day:%A}", day.isocalendar()[1], weekday in (6, 7))
        )  # fmt: skip
        day += dt.timedelta(days=1)
    return rows


def expected_daily(lines: list[dict[str, Any]]) -> list[Row]:
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        groups[(day_key(line["invoice_ts"]), line["country"])].append(line)
    return [
        (key, country, len({x["invoice_no"] for x in group}), len(group), sum(x["quantity"] for x in group),
         sum((x["revenue"] for x in group), Decimal(0)))
        for (key, country), group in groups.items()
    ]  # fmt: skip


def expected_tables(lines: list[dict[str, Any]]) -> dict[str, list[Row]]:
    return {
        "fact_sales": expected_fact(lines),
        "dim_product": expected_products(lines),
        "dim_customer": expected_customers(lines),
        "dim_date": expected_calendar(lines),
        "sales_daily": expected_daily(lines),
    }


def query(url: str, sql: str) -> list[Row]:
    if url.startswith("duckdb:"):
        import duckdb

        with duckdb.connect(url.removeprefix("duckdb:///"), read_only=True) as connection:
            return [tuple(row) for row in connection.execute(sql).fetchall()]
    import psycopg

    with psycopg.connect(url) as connection:
        return [tuple(row) for row in connection.execute(sql.encode()).fetchall()]


def execute(url: str, sql: str) -> None:
    if url.startswith("duckdb:"):
        import duckdb

        with duckdb.connect(url.removeprefix("duckdb:///")) as connection:
            connection.execute(sql)
        return
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute(sql.encode())


def fetch(url: str, table: str, columns: str | None = None) -> list[Row]:
    return query(url, f"SELECT {columns or COLUMNS[table]} FROM {table}")


def snapshot(url: str) -> dict[str, tuple[int, str]]:
    """Each table's row count and a checksum of all its rows (every column, batch_id too)."""
    result = {}
    for table in TABLES:
        rows = sorted(repr(row) for row in fetch(url, table, "*"))
        result[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return result


def differences(actual: list[Row], expected: list[Row], limit: int = 3) -> str:
    """A short description of how two multisets of rows differ (empty when they are equal)."""
    have, want = Counter(actual), Counter(expected)
    extra, missing = list((have - want).elements()), list((want - have).elements())
    if not extra and not missing:
        return ""
    return (
        f"{len(extra)} unexpected rows, e.g. {extra[:limit]}; {len(missing)} missing, e.g. {missing[:limit]}"
    )
