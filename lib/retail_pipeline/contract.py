"""The curated output contract, stated once and Spark-free.

What every published invoice line is, whoever writes it: the Spark job (`transforms`), the
streaming consumer (`stream.objects`), the warehouse loader (`warehouse.files`, whose SQL
staging table must match it column for column) and the tests all derive from here. Also the
names of where a line can end (its outcome) and of the run statuses.

Types are Spark's DDL names; `arrow_schema` maps them to the Parquet files' Arrow types (Spark
reads a timestamp without time zone, isAdjustedToUTC=false, as TIMESTAMP_NTZ).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

# Money and quantity: revenue = quantity x unit_price is exact in DECIMAL(23,4), since an int
# has at most 10 digits and the price at most 12.
UNIT_PRICE_TYPE = "decimal(12,4)"
REVENUE_TYPE = "decimal(23,4)"


@dataclass(frozen=True)
class CuratedColumn:
    name: str
    type: str  # Spark DDL
    nullable: bool = False


# Lineage: the input file's URI (the unit a run replaces) and the run that published it.
SOURCE_FILE: Final = "source_file"
RUN_ID: Final = "run_id"

# In the files' order; the partition columns are folder names, not in the files.
CURATED_FILE_COLUMNS: tuple[CuratedColumn, ...] = (
    CuratedColumn("invoice_no", "string"),
    CuratedColumn("stock_code", "string"),
    CuratedColumn("description", "string", nullable=True),
    CuratedColumn("quantity", "int"),
    CuratedColumn("unit_price", UNIT_PRICE_TYPE),
    CuratedColumn("revenue", REVENUE_TYPE),
    CuratedColumn("invoice_ts", "timestamp_ntz"),
    CuratedColumn("customer_id", "string"),
    CuratedColumn("country", "string"),
    CuratedColumn(SOURCE_FILE, "string"),
    CuratedColumn(RUN_ID, "string"),
)
PARTITION_COLUMNS: tuple[str, ...] = ("invoice_year", "invoice_month")
LINEAGE_COLUMNS: tuple[str, ...] = (SOURCE_FILE, RUN_ID)
CURATED_COLUMNS: tuple[str, ...] = (*(c.name for c in CURATED_FILE_COLUMNS), *PARTITION_COLUMNS)

# Where a line ends, and the run statuses a report can carry.
OUTCOME_HEADER: Final = "header"
OUTCOME_QUARANTINED: Final = "quarantined"
OUTCOME_FILTERED: Final = "filtered"
OUTCOME_PUBLISHED: Final = "published"
STATUS_SUCCEEDED = "succeeded"
STATUS_NOTHING_NEW = "nothing_new"
STATUS_FAILED_QUALITY_GATE = "failed_quality_gate"

_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")


def spark_ddl(*, partitions: bool = True) -> str:
    """The curated columns as a Spark DDL schema string."""
    columns = [f"{c.name} {c.type}" for c in CURATED_FILE_COLUMNS]
    if partitions:
        columns += [f"{name} int" for name in PARTITION_COLUMNS]
    return ", ".join(columns)


def arrow_schema() -> Any:
    """The curated files' Arrow schema (pyarrow is imported only when asked for)."""
    import pyarrow as pa

    def arrow_type(spark_type: str) -> Any:
        decimal = _DECIMAL.fullmatch(spark_type)
        if decimal:
            return pa.decimal128(int(decimal[1]), int(decimal[2]))
        return {"string": pa.string(), "int": pa.int32(), "timestamp_ntz": pa.timestamp("us")}[spark_type]

    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in CURATED_FILE_COLUMNS])
