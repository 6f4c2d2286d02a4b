"""The warehouse's star schema, defined once; `dialects` renders it for each database.

    fact_sales     one row per published invoice line (source_file, invoice_no, line_no)
    dim_product    stock_code -> its most frequent description
    dim_customer   customer_id -> country of the last purchase, first/last purchase, orders, revenue
    dim_date       one row per calendar day of every year the sales touch (a contiguous calendar)
    sales_daily    the mart: date x country -> orders, lines, units, revenue

Types are written in the SQL that Redshift, PostgreSQL and DuckDB all accept (VARCHAR(n),
INTEGER, DECIMAL(p,s), TIMESTAMP, ...). Money is DECIMAL, never floating point: unit_price and
revenue keep the curated data's exact DECIMAL(12,4) and DECIMAL(23,4); sums are DECIMAL(38,4).

VARCHAR lengths are bytes (Redshift counts bytes; the loader checks bytes on every database so
one batch loads everywhere or nowhere). The real data set's longest values are 7 (invoice_no),
12 (stock_code), 35 (description), 7 (customer_id, 'Unknown') and 20 (country) bytes.

Every fact line keeps its lineage: `source_file`, the input file it came from (the unit a batch
run replaces), and `batch_id`, the run that published it (or the stream batch that loaded it).
"""

from __future__ import annotations

from dataclasses import dataclass

from retail_pipeline import contract


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # portable SQL type
    nullable: bool = True
    max_bytes: int | None = None  # VARCHAR columns: the longest value the column holds

    @property
    def is_text(self) -> bool:
        return self.max_bytes is not None


def varchar(name: str, max_bytes: int, *, nullable: bool = False) -> Column:
    return Column(name, f"VARCHAR({max_bytes})", nullable=nullable, max_bytes=max_bytes)


def column(name: str, sql_type: str, *, nullable: bool = False) -> Column:
    return Column(name, sql_type, nullable=nullable)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    # Redshift placement: the distribution key (None: a copy on every node, DISTSTYLE ALL, for
    # small tables) and the sort key (also indexed on PostgreSQL).
    distkey: str | None = None
    sortkey: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        (found,) = [c for c in self.columns if c.name == name]
        return found


# The SQL of the contract's non-text types (its decimals are written the same in both).
SQL_TYPES = {"int": "INTEGER", "timestamp_ntz": "TIMESTAMP"}
# The curated text columns' widths in bytes: the warehouse's choice, the contract has none.
TEXT_BYTES = {
    "invoice_no": 20,
    "stock_code": 32,
    "description": 256,
    "customer_id": 20,
    "country": 64,
    # A URI: s3://, at most 5 + 63 (bucket) + 1 + 1,024 (key) bytes, or file:// and a local
    # path. Redshift compresses it (ENCODE AUTO); no join, sort or mart reads it.
    "source_file": 2048,
    "run_id": 128,  # a batch run id or a stream batch id
}


def curated_column(spec: contract.CuratedColumn) -> Column:
    """A curated column in SQL: its contract type and nullability, text as VARCHAR(TEXT_BYTES)."""
    if spec.type == "string":
        return varchar(spec.name, TEXT_BYTES[spec.name], nullable=spec.nullable)
    return column(spec.name, SQL_TYPES.get(spec.type, spec.type.upper()), nullable=spec.nullable)


# The curated Parquet columns, in the files' order: Redshift's COPY of Parquet fills a table's
# columns by position, so this staging table matches the files column for column.
STAGE_LINES = Table(
    "stage_lines", tuple(curated_column(c) for c in contract.CURATED_FILE_COLUMNS), distkey="invoice_no"
)
INVOICE_NO = STAGE_LINES.column("invoice_no")
STOCK_CODE = STAGE_LINES.column("stock_code")
DESCRIPTION = STAGE_LINES.column("description")
QUANTITY = STAGE_LINES.column("quantity")
UNIT_PRICE = STAGE_LINES.column("unit_price")
REVENUE = STAGE_LINES.column("revenue")
INVOICE_TS = STAGE_LINES.column("invoice_ts")
CUSTOMER_ID = STAGE_LINES.column("customer_id")
COUNTRY = STAGE_LINES.column("country")
SOURCE_FILE = STAGE_LINES.column("source_file")
MONEY_TOTAL = "DECIMAL(38,4)"

FACT_SALES = Table(
    "fact_sales",
    (
        INVOICE_NO,
        # The line's ordinal among its invoice's lines in its source file, by a stable order over
        # all of the line's columns (the data set repeats (invoice_no, stock_code) within
        # invoices). Numbered within the source, a line keeps its key however the input is split
        # into runs, and a run that replaces a source cannot collide with other sources' lines.
        column("line_no", "INTEGER"),
        STOCK_CODE,
        DESCRIPTION,  # as recorded on the line; dim_product holds the canonical one
        CUSTOMER_ID,
        COUNTRY,
        INVOICE_TS,
        column("date_key", "INTEGER"),  # yyyymmdd, joins dim_date
        QUANTITY,
        UNIT_PRICE,
        REVENUE,
        SOURCE_FILE,  # the input file the line came from: what a batch run's load replaces
        # The run that published the line (a run's load, or a whole-output load), or the stream
        # batch that loaded it: as wide as run_id.
        varchar("batch_id", TEXT_BYTES["run_id"]),
    ),
    # Source first: on PostgreSQL the key's index serves a run load's delete by source.
    primary_key=("source_file", "invoice_no", "line_no"),
    # Even spread (customer_id would not be: a quarter of the lines are 'Unknown'), and an
    # invoice's lines together, where a stream load replaces them.
    distkey="invoice_no",
    sortkey=("date_key",),
)

DIM_PRODUCT = Table(
    "dim_product",
    (STOCK_CODE, DESCRIPTION),
    primary_key=("stock_code",),
    sortkey=("stock_code",),
)

DIM_CUSTOMER = Table(
    "dim_customer",
    (
        CUSTOMER_ID,
        COUNTRY,  # of the customer's most recent purchase
        column("first_purchase_ts", "TIMESTAMP"),
        column("last_purchase_ts", "TIMESTAMP"),
        column("orders", "INTEGER"),
        column("revenue", MONEY_TOTAL),
    ),
    primary_key=("customer_id",),
    sortkey=("customer_id",),
)

DIM_DATE = Table(
    "dim_date",
    (
        column("date_key", "INTEGER"),
        column("calendar_date", "DATE"),
        column("year", "SMALLINT"),
        column("quarter", "SMALLINT"),
        column("month", "SMALLINT"),
        varchar("month_name", 9),
        varchar("year_month", 7),  # 2010-12
        column("day_of_month", "SMALLINT"),
        column("day_of_week", "SMALLINT"),  # ISO: 1 = Monday
        varchar("day_name", 9),
        column("iso_week", "SMALLINT"),
        column("is_weekend", "BOOLEAN"),
    ),
    primary_key=("date_key",),
    sortkey=("date_key",),
)

SALES_DAILY = Table(
    "sales_daily",
    (
        column("date_key", "INTEGER"),
        COUNTRY,
        column("orders", "INTEGER"),
        column("lines", "INTEGER"),
        column("units", "BIGINT"),
        column("revenue", MONEY_TOTAL),
    ),
    primary_key=("date_key", "country"),
    sortkey=("date_key",),
)

# Creation order; the load refreshes them in this order too.
TABLES: tuple[Table, ...] = (FACT_SALES, DIM_PRODUCT, DIM_CUSTOMER, DIM_DATE, SALES_DAILY)
