"""The load's SQL: staging tables in, one transaction of deletes and inserts out.

The same statement text runs on PostgreSQL, Redshift and DuckDB (nothing here takes a
dialect): the tests run it on PostgreSQL and DuckDB, and the Redshift load sends it unchanged.
Only the staging tables' DDL and the byte-length function of the check come from `dialects`.

Delete-then-insert rather than MERGE: an invoice's corrected version may have fewer lines than
the old one, and a MERGE on (invoice_no, line_no) would still need a DELETE for the lines that
went; delete-insert in one transaction is also the staged merge AWS documents for Redshift.
Nothing relies on constraints (Redshift does not enforce keys): the scope of every delete is
the scope of the matching insert.

One load, inside one transaction:
    stage_lines   <- the files' Parquet rows (COPY / read_parquet, by the backend)
    stage_sources <- a batch run's sources (the input files whose lines it replaced), or for a
                     whole-output load every source in stage_lines
    stage_sales   <- stage_lines (a run's: those it published) with line_no, date_key, batch_id
    stage_touched <- the product, customer, day and country of every line replaced or added
    fact_sales    -  the lines the load replaces (`Replaces`): a batch run's, those of its
                     sources; a stream batch's, those of its invoices (and of months named)
    fact_sales    +  stage_sales
    dim_product, dim_customer, sales_daily: rows of the touched keys recomputed from fact_sales
    dim_date      +  the missing days of every year the sales touch

A batch run replaces whole source files, so a run load deletes by source_file only: an
invoice's lines from other sources (or a stream) and the rest of its months stay. Any split of
the input into runs, loaded run by run, leaves the tables one run over all of it would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from retail_pipeline.warehouse.dialects import Dialect, create_table
from retail_pipeline.warehouse.model import (
    COUNTRY,
    CUSTOMER_ID,
    DIM_DATE,
    FACT_SALES,
    SOURCE_FILE,
    STAGE_LINES,
    STOCK_CODE,
    Table,
    column,
)

STAGE_SALES = Table("stage_sales", FACT_SALES.columns, distkey="invoice_no")
STAGE_TOUCHED = Table("stage_touched", (STOCK_CODE, CUSTOMER_ID, column("date_key", "INTEGER"), COUNTRY))
STAGE_DATES = Table("stage_dates", DIM_DATE.columns)
STAGE_SOURCES = Table("stage_sources", (SOURCE_FILE,))
STAGING_TABLES = (STAGE_SOURCES, STAGE_LINES, STAGE_SALES, STAGE_TOUCHED, STAGE_DATES)

# The line key: a line's ordinal among its invoice's lines in its source file, in this order
# over all its columns. Text compares by byte on all three databases (see dialects), so the key
# is the same everywhere.
LINE_ORDER = (
    "stock_code",
    "description NULLS LAST",
    "quantity",
    "unit_price",
    "invoice_ts",
    "customer_id",
    "country",
)
DATE_KEY = (
    "CAST(EXTRACT(YEAR FROM invoice_ts) * 10000 + EXTRACT(MONTH FROM invoice_ts) * 100"
    " + EXTRACT(DAY FROM invoice_ts) AS INTEGER)"
)
# A Glue job run id is 67 characters ("jr_" and 64 hex digits); the columns hold 128 bytes.
BATCH_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:+-]{1,128}$")
SOURCES_PER_INSERT = 500
UNSAFE_IN_LITERAL = re.compile(r"[\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Replaces:
    """The fact lines a load replaces (deletes before inserting the staged ones)."""

    sources: bool = False  # every line of the sources in stage_sources (a batch run)
    invoices: bool = False  # every line of the invoices in stage_sales (a stream batch)
    months: tuple[tuple[int, int], ...] = ()  # every line of these (year, month)s


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def check_batch_id(batch_id: str) -> str:
    if not BATCH_ID_PATTERN.match(batch_id):
        raise ValueError(f"batch id {batch_id!r} must be 1-128 letters, digits or _.:+-")
    return batch_id


def create_staging(dialect: Dialect) -> list[str]:
    return [create_table(table, dialect, temporary=True) for table in STAGING_TABLES]


def drop_staging() -> list[str]:
    return [f"DROP TABLE IF EXISTS {table.name}" for table in reversed(STAGING_TABLES)]


def check_source(source: str) -> str:
    """A source URI the SQL can hold as a literal (Redshift may read a backslash as an escape)."""
    if not source or UNSAFE_IN_LITERAL.search(source):
        raise ValueError(f"source {source!r} is empty or holds a backslash or a control character")
    return source


def stage_sources(sources: Sequence[str]) -> list[str]:
    """INSERTs that fill stage_sources, a few hundred sources each."""
    unique = sorted({check_source(s) for s in sources})
    starts = range(0, len(unique), SOURCES_PER_INSERT)
    chunks = [unique[start : start + SOURCES_PER_INSERT] for start in starts]
    return [
        "INSERT INTO stage_sources (source_file) VALUES\n" + ",\n".join(f"({sql_literal(s)})" for s in chunk)
        for chunk in chunks
    ]


def prepare_sales(batch_id: str | None, *, run_id: str | None = None) -> str:
    """stage_lines -> stage_sales: the fact's rows, with their line key and date key. With
    `run_id`, only the lines that run published (the rest of its months are other sources').
    batch_id None: each line's own run_id (a whole-output load)."""
    columns = ", ".join(FACT_SALES.column_names)
    batch = "run_id" if batch_id is None else sql_literal(check_batch_id(batch_id))
    where = f"\nWHERE run_id = {sql_literal(check_batch_id(run_id))}" if run_id is not None else ""
    return f"""INSERT INTO stage_sales ({columns})
SELECT invoice_no,
       ROW_NUMBER() OVER (PARTITION BY source_file, invoice_no ORDER BY {", ".join(LINE_ORDER)}),
       stock_code, description, customer_id, country, invoice_ts,
       {DATE_KEY},
       quantity, unit_price, revenue, source_file, {batch}
FROM stage_lines{where}"""


def stage_summary(dialect: Dialect) -> str:
    """One row: staged lines and the longest value (bytes) of each text column."""
    lengths = [
        f"MAX({dialect.byte_length}({c.name}))" for c in STAGE_LINES.columns if c.max_bytes is not None
    ]
    return f"SELECT COUNT(*), {', '.join(lengths)} FROM stage_lines"


# A whole-output load replaces every source its files hold.
SOURCES_OF_STAGE = "INSERT INTO stage_sources (source_file) SELECT DISTINCT source_file FROM stage_lines"
# The lines the load inserts, their revenue, and how many come from a source the load does not
# replace (a run's lines must all be of its report's sources, or they would meet old copies).
SALES_SUMMARY = "SELECT COUNT(*), SUM(revenue) FROM stage_sales"
SALES_OUTSIDE_SOURCES = (
    "SELECT COUNT(*) FROM stage_sales WHERE source_file NOT IN (SELECT source_file FROM stage_sources)"
)


def replaced_lines(replaces: Replaces) -> str:
    """The fact lines the load replaces, as a WHERE condition."""
    scopes = []
    if replaces.sources:
        scopes.append("source_file IN (SELECT source_file FROM stage_sources)")
    if replaces.invoices:
        scopes.append("invoice_no IN (SELECT invoice_no FROM stage_sales)")
    for year, month in sorted(set(replaces.months)):
        first = int(year) * 10000 + int(month) * 100
        scopes.append(f"date_key BETWEEN {first + 1} AND {first + 31}")
    return " OR ".join(scopes) or "1 = 0"


def merge_statements(replaces: Replaces) -> list[str]:
    """Replace the load's lines in fact_sales and refresh every dimension and mart row they
    touch. Runs after `prepare_sales`, in the same transaction."""
    replaced = replaced_lines(replaces)
    keys = "stock_code, customer_id, date_key, country"
    fact_columns = ", ".join(FACT_SALES.column_names)
    return [
        f"""INSERT INTO stage_touched ({keys})
SELECT {keys} FROM fact_sales WHERE {replaced}
UNION
SELECT {keys} FROM stage_sales""",
        f"DELETE FROM fact_sales WHERE {replaced}",
        f"INSERT INTO fact_sales ({fact_columns})\nSELECT {fact_columns} FROM stage_sales",
        "DELETE FROM dim_product WHERE stock_code IN (SELECT stock_code FROM stage_touched)",
        REFRESH_PRODUCTS,
        "DELETE FROM dim_customer WHERE customer_id IN (SELECT customer_id FROM stage_touched)",
        REFRESH_CUSTOMERS,
        # Redshift's DELETE ... USING takes tables, not subqueries.
        """DELETE FROM sales_daily USING stage_touched
WHERE sales_daily.date_key = stage_touched.date_key AND sales_daily.country = stage_touched.country""",
        REFRESH_SALES_DAILY,
    ]


# The most frequent non-null description; ties go to the first in byte order. A product whose
# lines have no description keeps a row (description null) so every fact line has its product.
REFRESH_PRODUCTS = """INSERT INTO dim_product (stock_code, description)
SELECT stock_code, description
FROM (
    SELECT stock_code, description,
           ROW_NUMBER() OVER (
               PARTITION BY stock_code
               ORDER BY CASE WHEN description IS NULL THEN 1 ELSE 0 END, lines DESC, description
           ) AS pick
    FROM (
        SELECT stock_code, description, COUNT(*) AS lines
        FROM fact_sales
        WHERE stock_code IN (SELECT stock_code FROM stage_touched)
        GROUP BY stock_code, description
    ) AS counted
) AS ranked
WHERE pick = 1"""

# A customer's country is that of their latest purchase (ties: the first in byte order).
REFRESH_CUSTOMERS = """INSERT INTO dim_customer
    (customer_id, country, first_purchase_ts, last_purchase_ts, orders, revenue)
SELECT totals.customer_id, latest.country, totals.first_purchase_ts, totals.last_purchase_ts,
       totals.orders, totals.revenue
FROM (
    SELECT customer_id, MIN(invoice_ts) AS first_purchase_ts, MAX(invoice_ts) AS last_purchase_ts,
           COUNT(DISTINCT invoice_no) AS orders, SUM(revenue) AS revenue
    FROM fact_sales
    WHERE customer_id IN (SELECT customer_id FROM stage_touched)
    GROUP BY customer_id
) AS totals
JOIN (
    SELECT customer_id, country,
           ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY invoice_ts DESC, country) AS pick
    FROM fact_sales
    WHERE customer_id IN (SELECT customer_id FROM stage_touched)
) AS latest ON latest.customer_id = totals.customer_id AND latest.pick = 1"""

TOUCHED_DAYS = "SELECT DISTINCT date_key, country FROM stage_touched"

REFRESH_SALES_DAILY = f"""INSERT INTO sales_daily (date_key, country, orders, lines, units, revenue)
SELECT f.date_key, f.country, COUNT(DISTINCT f.invoice_no), COUNT(*), SUM(f.quantity), SUM(f.revenue)
FROM fact_sales AS f
JOIN ({TOUCHED_DAYS}) AS touched ON touched.date_key = f.date_key AND touched.country = f.country
GROUP BY f.date_key, f.country"""

# The days the batch has sales on, and the days dim_date already covers.
DATE_KEY_RANGES = (
    "SELECT MIN(date_key), MAX(date_key) FROM stage_sales",
    "SELECT MIN(date_key), MAX(date_key) FROM dim_date",
)
