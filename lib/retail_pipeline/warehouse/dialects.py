"""The model's tables as DDL for Redshift, PostgreSQL and DuckDB, rendered from `model`.

What differs between the three is only how a table is created; the load's SQL (`merge`) is the
same text everywhere. The differences:
- Redshift: DISTKEY / DISTSTYLE ALL, SORTKEY and ENCODE AUTO (it picks each column's
  compression); primary keys are declared for the planner but not enforced.
- PostgreSQL: text columns use the "C" collation, so ordering (the line key, tie-breaks) is by
  byte, as on Redshift and DuckDB, whatever the database's locale; the sort key is an index.
- DuckDB: plain DDL (its VARCHAR(n) does not enforce n; the loader checks lengths itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from retail_pipeline.warehouse.model import TABLES, Column, Table


@dataclass(frozen=True)
class Dialect:
    name: str
    text_collation: str = ""  # appended to VARCHAR columns
    placement: bool = False  # DISTKEY / SORTKEY / ENCODE AUTO
    sortkey_index: bool = False  # index the sort key columns
    # Serialises concurrent loads (None: the database allows one writer at a time).
    lock: str | None = None
    byte_length: str = "OCTET_LENGTH"  # a function: the bytes of a text value


REDSHIFT = Dialect("redshift", placement=True, lock="LOCK fact_sales")
# SHARE ROW EXCLUSIVE conflicts with itself and with writers, not with readers (Power BI keeps
# querying during a load).
POSTGRESQL = Dialect(
    "postgresql",
    text_collation=' COLLATE "C"',
    sortkey_index=True,
    lock="LOCK TABLE fact_sales IN SHARE ROW EXCLUSIVE MODE",
)
DUCKDB = Dialect("duckdb", byte_length="STRLEN")

DIALECTS = {d.name: d for d in (REDSHIFT, POSTGRESQL, DUCKDB)}


def column_ddl(col: Column, dialect: Dialect) -> str:
    collation = dialect.text_collation if col.is_text else ""
    null = "" if col.nullable else " NOT NULL"
    return f"{col.name} {col.type}{collation}{null}"


def create_table(table: Table, dialect: Dialect, *, temporary: bool = False) -> str:
    """CREATE TABLE for one table; permanent tables are created only when missing. A
    temporary (staging) table has no primary key: the load's SQL keeps keys unique."""
    lines = [column_ddl(col, dialect) for col in table.columns]
    if table.primary_key and not temporary:
        lines.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    head = "CREATE TEMPORARY TABLE" if temporary else "CREATE TABLE IF NOT EXISTS"
    body = ",\n    ".join(lines)
    return f"{head} {table.name} (\n    {body}\n){_placement(table, dialect, temporary=temporary)}"


def _placement(table: Table, dialect: Dialect, *, temporary: bool) -> str:
    if not dialect.placement:
        return ""
    parts = [f"DISTSTYLE KEY DISTKEY ({table.distkey})" if table.distkey else "DISTSTYLE ALL"]
    if temporary:  # staging lives for one load: only co-locate it with the fact's lines
        return "\n" + parts[0]
    if table.sortkey:
        parts.append(f"COMPOUND SORTKEY ({', '.join(table.sortkey)})")
    parts.append("ENCODE AUTO")
    return "\n" + "\n".join(parts)


def create_indexes(table: Table, dialect: Dialect) -> list[str]:
    covered = table.primary_key[: len(table.sortkey)] == table.sortkey  # the key's index serves
    if not (dialect.sortkey_index and table.sortkey) or covered:
        return []
    return [
        f"CREATE INDEX IF NOT EXISTS {table.name}_{'_'.join(table.sortkey)}_idx "
        f"ON {table.name} ({', '.join(table.sortkey)})"
    ]


def schema_ddl(dialect: Dialect) -> list[str]:
    """Every statement that creates the model's tables (each a no-op when they exist)."""
    statements: list[str] = []
    for table in TABLES:
        statements.append(create_table(table, dialect))
        statements += create_indexes(table, dialect)
    return statements


def column_check(table: Table) -> str:
    """One row: the columns the existing table has, and how many of them the model names; both
    are the model's count when the table is the model's (a table made by an older model is not)."""
    names = ", ".join(f"'{name}'" for name in table.column_names)
    return (
        f"SELECT COUNT(*), SUM(CASE WHEN column_name IN ({names}) THEN 1 ELSE 0 END)\n"
        "FROM information_schema.columns\n"
        f"WHERE table_schema = CURRENT_SCHEMA() AND table_name = '{table.name}'"
    )
