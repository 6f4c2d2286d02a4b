"""The BI analyses on a handful of invoice lines whose answers can be worked out by hand (DuckDB;
tests/integration/test_notebooks.py shows Spark gives the same on the sample)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from retail_pipeline import analytics

# (customer, country, [(day of December 2010, revenue), ...]): one invoice per purchase, one line
# each, product P<customer>. As of 10 December: c1 bought 3 times (last on the 10th), c2 once on
# the 10th, c3 4 times (last on the 4th), c4 once on the 2nd, c5 twice (last on the 6th).
PURCHASES = [
    ("c1", "United Kingdom", [(8, 100), (9, 100), (10, 100)]),
    ("c2", "United Kingdom", [(10, 50)]),
    ("c3", "France", [(1, 100), (2, 100), (3, 100), (4, 100)]),
    ("c4", "France", [(2, 20)]),
    ("c5", "Germany", [(5, 30), (6, 30)]),
    ("Unknown", "United Kingdom", [(10, 999)]),
]


@pytest.fixture(scope="module")
def connection() -> Iterator[Any]:
    connection = duckdb.connect()
    rows = []
    for customer, country, purchases in PURCHASES:
        for number, (day, revenue) in enumerate(purchases):
            description = f"product of {customer} #{number}"
            invoice = f"{customer}-{number}"
            rows.append(
                f"('{invoice}', 'P{customer}', '{description}', 1, {revenue}, {revenue}, "
                f"TIMESTAMP '2010-12-{day:02d} 10:00:00', '{customer}', '{country}', 2010, 12)"
            )
    connection.execute(
        f"""CREATE TABLE {analytics.CURATED_VIEW} AS
        SELECT invoice_no, stock_code, description, CAST(quantity AS INTEGER) AS quantity,
               CAST(unit_price AS DECIMAL(12, 4)) AS unit_price, CAST(revenue AS DECIMAL(23, 4)) AS revenue,
               invoice_ts, customer_id, country, invoice_year, invoice_month
        FROM (VALUES {", ".join(rows)}) AS t(invoice_no, stock_code, description, quantity, unit_price,
             revenue, invoice_ts, customer_id, country, invoice_year, invoice_month)"""
    )
    yield connection
    connection.close()


def test_revenue_by_month_counts_orders_units_and_exact_revenue(connection: Any) -> None:
    assert connection.sql(analytics.REVENUE_BY_MONTH).fetchall() == [(2010, 12, 12, 12, Decimal("1829.0000"))]


def test_revenue_by_country_counts_known_customers_only(connection: Any) -> None:
    assert connection.sql(analytics.REVENUE_BY_COUNTRY).fetchall() == [
        ("United Kingdom", 5, 2, Decimal("1349.0000")),
        ("France", 5, 2, Decimal("420.0000")),
        ("Germany", 2, 1, Decimal("60.0000")),
    ]


def test_top_products_rank_by_revenue(connection: Any) -> None:
    top = connection.sql(analytics.TOP_PRODUCTS).fetchall()
    assert [(code, revenue) for code, _, _, revenue in top] == [
        ("PUnknown", Decimal("999.0000")),
        ("Pc3", Decimal("400.0000")),
        ("Pc1", Decimal("300.0000")),
        ("Pc5", Decimal("60.0000")),
        ("Pc2", Decimal("50.0000")),
        ("Pc4", Decimal("20.0000")),
    ]
    assert top[2][1] == "product of c1 #2"  # the largest description of the product


def test_rfm_scores_customers_by_quintile_and_names_their_segment(connection: Any) -> None:
    # Recency ranks c4 (9 days), c3 (7), c5 (5), c1 (1), c2 (1, after c1 by id): r = 1..5;
    # frequency then revenue rank c4, c2, c5, c1, c3: f = m = 1..5.
    assert connection.sql(analytics.CUSTOMER_RFM).fetchall() == [
        ("c1", 1, 3, Decimal("300.0000"), 4, 4, 4, "Champions"),
        ("c2", 1, 1, Decimal("50.0000"), 5, 2, 2, "Recent"),
        ("c3", 7, 4, Decimal("400.0000"), 2, 5, 5, "At risk"),
        ("c4", 9, 1, Decimal("20.0000"), 1, 1, 1, "Hibernating"),
        ("c5", 5, 2, Decimal("60.0000"), 3, 3, 3, "Loyal"),
    ]


def test_rfm_segments_sum_up_the_customers(connection: Any) -> None:
    assert [row[:3] for row in connection.sql(analytics.RFM_SEGMENTS).fetchall()] == [
        ("At risk", 1, Decimal("400.0000")),
        ("Champions", 1, Decimal("300.0000")),
        ("Loyal", 1, Decimal("60.0000")),
        ("Recent", 1, Decimal("50.0000")),
        ("Hibernating", 1, Decimal("20.0000")),
    ]


def test_the_duckdb_view_reads_hive_partitions_as_integers(tmp_path: Any) -> None:
    partition = tmp_path / "curated" / "invoice_year=2011" / "invoice_month=3"
    partition.mkdir(parents=True)
    with duckdb.connect() as writer:
        writer.execute(
            f"COPY (SELECT 'x' AS invoice_no) TO '{partition / 'part-0.parquet'}' (FORMAT parquet)"
        )
    with duckdb.connect() as reader:
        analytics.register_duckdb(reader, str(tmp_path / "curated"))
        view = f"SELECT invoice_no, invoice_year + 0, invoice_month + 0 FROM {analytics.CURATED_VIEW}"
        assert reader.sql(view).fetchall() == [("x", 2011, 3)]
