"""The analyses BI users look at, as SQL written once for every engine that reads the data:
DuckDB (the Jupyter notebook, the local warehouse), Spark SQL (the Zeppelin note on EMR),
Athena/Trino and Redshift. Notebooks import the queries and the helpers from here; no logic
lives only in a notebook.

    CURATED_QUERIES    over the view `curated_invoice_lines`: the batch job's curated Parquet
                       with its partition columns (register_duckdb, register_spark)
    WAREHOUSE_QUERIES  over the star schema (fact_sales, dim_*, sales_daily)

Only SQL every engine reads the same way: no engine's date functions (a day difference is the
difference of two DATEs cast to INTEGER), window orders that leave no ties, so NTILE puts each
customer in the same quintile everywhere.
"""

from __future__ import annotations

from typing import Any

CURATED_VIEW = "curated_invoice_lines"

REVENUE_BY_MONTH = """
SELECT invoice_year, invoice_month,
       COUNT(DISTINCT invoice_no) AS orders,
       SUM(quantity) AS units,
       SUM(revenue) AS revenue
FROM curated_invoice_lines
GROUP BY invoice_year, invoice_month
ORDER BY invoice_year, invoice_month
""".strip()

REVENUE_BY_COUNTRY = """
SELECT country,
       COUNT(DISTINCT invoice_no) AS orders,
       COUNT(DISTINCT CASE WHEN customer_id <> 'Unknown' THEN customer_id END) AS customers,
       SUM(revenue) AS revenue
FROM curated_invoice_lines
GROUP BY country
ORDER BY revenue DESC, country
""".strip()

TOP_PRODUCTS = """
SELECT stock_code,
       MAX(description) AS description,
       SUM(quantity) AS units,
       SUM(revenue) AS revenue
FROM curated_invoice_lines
GROUP BY stock_code
ORDER BY revenue DESC, stock_code
LIMIT 10
""".strip()

# Recency, frequency and monetary value of every known customer, as of the day after the last
# sale in the data; each scored 1-5 by quintile (5 = most recent, most orders, most revenue),
# then named the usual way. Anonymous purchases ('Unknown') are no customer.
_CUSTOMER_RFM_ROWS = """
WITH customers AS (
    SELECT customer_id,
           MAX(invoice_ts) AS last_purchase_ts,
           COUNT(DISTINCT invoice_no) AS frequency,
           SUM(revenue) AS monetary
    FROM curated_invoice_lines
    WHERE customer_id <> 'Unknown'
    GROUP BY customer_id
),
as_of AS (
    SELECT CAST(MAX(invoice_ts) AS DATE) AS last_sale_date FROM curated_invoice_lines
),
measured AS (
    SELECT c.customer_id, c.frequency, c.monetary,
           CAST(a.last_sale_date - CAST(c.last_purchase_ts AS DATE) AS INTEGER) + 1 AS recency_days
    FROM customers AS c
    CROSS JOIN as_of AS a
),
scored AS (
    SELECT customer_id, recency_days, frequency, monetary,
           NTILE(5) OVER (ORDER BY recency_days DESC, customer_id) AS r_score,
           NTILE(5) OVER (ORDER BY frequency, monetary, customer_id) AS f_score,
           NTILE(5) OVER (ORDER BY monetary, frequency, customer_id) AS m_score
    FROM measured
)
SELECT customer_id, recency_days, frequency, monetary, r_score, f_score, m_score,
       CASE
           WHEN r_score >= 4 AND f_score >= 4 THEN 'Champions'
           WHEN r_score >= 3 AND f_score >= 3 THEN 'Loyal'
           WHEN r_score >= 4 THEN 'Recent'
           WHEN r_score <= 2 AND f_score >= 3 THEN 'At risk'
           WHEN r_score <= 2 THEN 'Hibernating'
           ELSE 'Needs attention'
       END AS segment
FROM scored
""".strip()

CUSTOMER_RFM = f"{_CUSTOMER_RFM_ROWS}\nORDER BY customer_id"

RFM_SEGMENTS = f"""
WITH customer_rfm AS (
{_CUSTOMER_RFM_ROWS}
)
SELECT segment,
       COUNT(*) AS customers,
       SUM(monetary) AS revenue,
       CAST(AVG(recency_days) AS DECIMAL(10, 1)) AS average_recency_days,
       CAST(AVG(frequency) AS DECIMAL(10, 1)) AS average_orders
FROM customer_rfm
GROUP BY segment
ORDER BY revenue DESC, segment
""".strip()

CURATED_QUERIES = {
    "revenue_by_month": REVENUE_BY_MONTH,
    "revenue_by_country": REVENUE_BY_COUNTRY,
    "top_products": TOP_PRODUCTS,
    "customer_rfm": CUSTOMER_RFM,
    "rfm_segments": RFM_SEGMENTS,
}

# The warehouse's view of the same months (sales_daily is what Power BI reads).
WAREHOUSE_REVENUE_BY_MONTH = """
SELECT d.year AS invoice_year, d.month AS invoice_month,
       SUM(s.orders) AS orders,
       SUM(s.units) AS units,
       SUM(s.revenue) AS revenue
FROM sales_daily AS s
JOIN dim_date AS d ON d.date_key = s.date_key
GROUP BY d.year, d.month
ORDER BY d.year, d.month
""".strip()

WAREHOUSE_QUERIES = {"revenue_by_month": WAREHOUSE_REVENUE_BY_MONTH}


def curated_parquet_glob(curated: str) -> str:
    """Every Parquet file under the curated folder, partition folders included."""
    return f"{curated.rstrip('/')}/**/*.parquet"


def register_duckdb(connection: Any, curated: str) -> None:
    """The view `curated_invoice_lines` over the curated Parquet, on a DuckDB connection
    (hive partitioning turns invoice_year=/invoice_month= into integer columns)."""
    source = curated_parquet_glob(curated).replace("'", "''")
    connection.execute(
        f"CREATE OR REPLACE VIEW {CURATED_VIEW} AS "
        f"SELECT * FROM read_parquet('{source}', hive_partitioning = true, hive_types_autocast = true)"
    )


def register_spark(spark: Any, curated: str) -> None:
    """The view `curated_invoice_lines` over the curated Parquet, in a Spark session."""
    spark.read.parquet(curated).createOrReplaceTempView(CURATED_VIEW)
