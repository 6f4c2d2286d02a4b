"""The warehouse's SQL as text: one model rendered per dialect, the shared merge, the calendar."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import re

import pyarrow as pa
import pytest

from retail_pipeline import rules
from retail_pipeline.warehouse import dates, merge
from retail_pipeline.warehouse.dialects import (
    DUCKDB,
    POSTGRESQL,
    REDSHIFT,
    column_check,
    create_table,
    schema_ddl,
)
from retail_pipeline.warehouse.files import CURATED_SCHEMA
from retail_pipeline.warehouse.model import DIM_DATE, FACT_SALES, STAGE_LINES, TABLES
from tests.conftest import SAMPLE_CSV

COLUMN_LINE = re.compile(r"^\s+([a-z_]+) ([A-Z]+(?:\(\d+(?:,\d+)?\))?)", re.MULTILINE)


def columns_of(ddl: str) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind in COLUMN_LINE.findall(ddl) if name != "PRIMARY"]


def test_every_dialect_renders_the_same_columns_and_types_from_the_one_model() -> None:
    for table in TABLES:
        rendered = {d.name: columns_of(create_table(table, d)) for d in (REDSHIFT, POSTGRESQL, DUCKDB)}
        expected = [(c.name, c.type) for c in table.columns]
        assert rendered == {"redshift": expected, "postgresql": expected, "duckdb": expected}, table.name


def test_redshift_ddl_places_and_encodes_every_table() -> None:
    fact = create_table(FACT_SALES, REDSHIFT)
    assert "DISTSTYLE KEY DISTKEY (invoice_no)" in fact
    assert "COMPOUND SORTKEY (date_key)" in fact
    assert fact.rstrip().endswith("ENCODE AUTO")
    assert "PRIMARY KEY (source_file, invoice_no, line_no)" in fact  # informational on Redshift
    assert "unit_price DECIMAL(12,4) NOT NULL" in fact and "revenue DECIMAL(23,4) NOT NULL" in fact
    for table in TABLES:
        ddl = create_table(table, REDSHIFT)
        assert ddl.startswith(f"CREATE TABLE IF NOT EXISTS {table.name} (")
        assert "ENCODE AUTO" in ddl and "SORTKEY" in ddl
        assert ("DISTSTYLE ALL" in ddl) == (table is not FACT_SALES)  # small tables on every node
        assert "COLLATE" not in ddl and "FLOAT" not in ddl and "DOUBLE" not in ddl
    staging = create_table(STAGE_LINES, REDSHIFT, temporary=True)
    assert staging.startswith("CREATE TEMPORARY TABLE stage_lines (") and "PRIMARY KEY" not in staging


def test_postgresql_compares_text_by_byte_and_duckdb_ddl_is_plain() -> None:
    postgres = "\n".join(schema_ddl(POSTGRESQL))
    varchar_columns = re.findall(r"VARCHAR\(\d+\)[^,\n]*", postgres)
    assert varchar_columns and all('COLLATE "C"' in c for c in varchar_columns)
    assert "CREATE INDEX IF NOT EXISTS fact_sales_date_key_idx ON fact_sales (date_key)" in postgres
    duckdb = "\n".join(schema_ddl(DUCKDB))
    for word in ("COLLATE", "DISTKEY", "DISTSTYLE", "SORTKEY", "ENCODE"):
        assert word not in duckdb and word not in postgres.replace('COLLATE "C"', "")


def longest_values_in_sample() -> dict[str, int]:
    """The longest value (UTF-8 bytes) of each text column in the real sample, as published."""
    longest: dict[str, int] = {}
    with SAMPLE_CSV.open(encoding="utf-8-sig", newline="") as handle:
        for record in csv.DictReader(handle):
            customer = re.sub(r"\.0+$", "", record["CustomerID"].strip()) or rules.UNKNOWN_CUSTOMER
            for name, value in (
                ("invoice_no", record["InvoiceNo"]),
                ("stock_code", record["StockCode"]),
                ("description", record["Description"]),
                ("customer_id", customer),
                ("country", record["Country"]),
            ):
                longest[name] = max(longest.get(name, 0), len(value.strip().encode("utf-8")))
    return longest


def test_varchar_sizes_hold_the_real_data_with_room() -> None:
    for name, length in longest_values_in_sample().items():
        size = STAGE_LINES.column(name).max_bytes
        assert size is not None and size >= 2 * length, (name, length, size)
        assert FACT_SALES.column(name).max_bytes == size


def test_the_curated_contract_is_one_schema_the_staging_table_follows_column_for_column() -> None:
    # Redshift's COPY of Parquet fills stage_lines by position: names, order and types agree.
    sql_types = {
        pa.string(): "VARCHAR",
        pa.int32(): "INTEGER",
        pa.decimal128(12, 4): "DECIMAL(12,4)",
        pa.decimal128(23, 4): "DECIMAL(23,4)",
        pa.timestamp("us"): "TIMESTAMP",
    }
    staged = [(c.name, c.type.split("(")[0] if c.is_text else c.type) for c in STAGE_LINES.columns]
    assert staged == [(f.name, sql_types[f.type]) for f in CURATED_SCHEMA]


def test_a_run_load_replaces_the_lines_of_its_sources_and_nothing_else() -> None:
    replaces = merge.Replaces(sources=True)
    scope = merge.replaced_lines(replaces)
    # No invoice or month scope: an invoice's lines from other files and months stay.
    assert scope == "source_file IN (SELECT source_file FROM stage_sources)"
    statements = merge.merge_statements(replaces)
    deletes = [s for s in statements if s.startswith("DELETE FROM fact_sales")]
    assert deletes == [f"DELETE FROM fact_sales WHERE {scope}"]
    # The touched keys are read before the fact's delete: old lines' dims must be refreshed too.
    assert (
        statements[0].startswith("INSERT INTO stage_touched")
        and f"FROM fact_sales WHERE {scope}" in statements[0]
    )
    assert statements.index(deletes[0]) == 1
    for table in ("dim_product", "dim_customer", "sales_daily"):
        delete = next(i for i, s in enumerate(statements) if s.startswith(f"DELETE FROM {table}"))
        assert statements[delete + 1].startswith(f"INSERT INTO {table}")
    assert merge.replaced_lines(merge.Replaces()) == "1 = 0"


def test_a_stream_load_replaces_its_invoices_and_the_months_it_names() -> None:
    scope = merge.replaced_lines(merge.Replaces(invoices=True, months=((2011, 1), (2010, 12), (2010, 12))))
    assert scope == (
        "invoice_no IN (SELECT invoice_no FROM stage_sales)"
        " OR date_key BETWEEN 20101201 AND 20101231 OR date_key BETWEEN 20110101 AND 20110131"
    )


def test_a_run_load_stages_only_the_runs_lines_numbered_within_their_file() -> None:
    for_run = merge.prepare_sales("run-1", run_id="run-1")
    assert for_run.endswith("FROM stage_lines\nWHERE run_id = 'run-1'")
    assert "ROW_NUMBER() OVER (PARTITION BY source_file, invoice_no ORDER BY stock_code," in for_run
    assert merge.prepare_sales("stream-7").endswith("FROM stage_lines")  # a stream batch: every row


def test_sources_are_staged_as_escaped_literals_and_unsafe_ones_refused() -> None:
    sources = [f"s3://b/in/{n:04d}.csv" for n in range(merge.SOURCES_PER_INSERT + 1)]
    statements = merge.stage_sources([*sources, sources[0], "file:///in/o'brien.csv"])
    assert len(statements) == 2 and all(
        s.startswith("INSERT INTO stage_sources (source_file) VALUES") for s in statements
    )
    staged = re.findall(r"^\('(.*)'\),?$", "\n".join(statements), re.MULTILINE)
    assert staged == sorted([*sources, "file:///in/o''brien.csv"])  # each once, quotes doubled
    assert merge.stage_sources([]) == []
    for unsafe in ("", "file:///in/a\\b.csv", "s3://b/x\n.csv", "s3://b/\x00.csv"):
        with pytest.raises(ValueError, match="source"):
            merge.stage_sources([unsafe])


def test_an_existing_table_is_checked_against_the_model_by_name() -> None:
    check = column_check(FACT_SALES)
    assert "'source_file'" in check and "'batch_id'" in check
    assert check.endswith("WHERE table_schema = CURRENT_SCHEMA() AND table_name = 'fact_sales'")


def test_the_shared_sql_has_no_dialect_specific_syntax() -> None:
    shared = "\n".join(
        [
            merge.prepare_sales("run-1", run_id="run-1"),
            *merge.stage_sources(["s3://b/in/x.csv"]),
            *merge.merge_statements(merge.Replaces(sources=True)),
            *merge.merge_statements(merge.Replaces(invoices=True, months=((2010, 12),))),
            merge.SALES_SUMMARY,
            merge.SALES_OUTSIDE_SOURCES,
            *(column_check(table) for table in TABLES),
        ]
    )
    shared += "\n".join(dates.calendar_statements(2010, 2010))
    for construct in ("::", "COLLATE", "LIMIT", "ILIKE", "ON CONFLICT", "QUALIFY", "generate_series", '"'):
        assert construct not in shared, construct


@pytest.mark.parametrize("batch_id", ["", "it's", "a b", "x" * 129, "run;DROP TABLE fact_sales"])
def test_batch_ids_that_could_break_the_sql_are_refused(batch_id: str) -> None:
    with pytest.raises(ValueError, match="batch id"):
        merge.prepare_sales(batch_id)
    with pytest.raises(ValueError, match="batch id"):
        merge.prepare_sales("run-1", run_id=batch_id)


def test_the_calendar_is_contiguous_and_right_about_known_days() -> None:
    rows = list(dates.calendar_years(2010, 2011))
    assert len(rows) == 365 + 365
    days = [day for _, day, *_ in rows if isinstance(day, dt.date)]
    assert all(b - a == dt.timedelta(days=1) for a, b in itertools.pairwise(days))
    by_day = {row[1]: dict(zip(DIM_DATE.column_names, row, strict=True)) for row in rows}
    first_sale = by_day[dt.date(2010, 12, 1)]  # a Wednesday in ISO week 48
    assert (first_sale["date_key"], first_sale["day_name"], first_sale["day_of_week"]) == (
        20101201,
        "Wednesday",
        3,
    )
    assert (first_sale["iso_week"], first_sale["quarter"], first_sale["year_month"]) == (48, 4, "2010-12")
    new_year = by_day[dt.date(2011, 1, 1)]  # a Saturday, still in ISO week 52 of 2010
    assert (new_year["is_weekend"], new_year["iso_week"], new_year["month_name"]) == (True, 52, "January")


def test_the_calendar_covers_whole_years_of_the_batch_and_the_table() -> None:
    assert dates.years_to_cover((20101201, 20101209, None, None)) == (2010, 2010)
    assert dates.years_to_cover((20111201, 20111209, 20100101, 20101231)) == (2010, 2011)
    assert dates.years_to_cover((None, None, 20100101, 20101231)) is None
    statements = dates.calendar_statements(2010, 2012)
    assert sum(s.count("\n(") for s in statements[:-1]) == 365 * 2 + 366
    assert statements[-1].endswith("WHERE date_key NOT IN (SELECT date_key FROM dim_date)")
