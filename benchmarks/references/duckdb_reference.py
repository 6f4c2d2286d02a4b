"""The batch job's rules as one DuckDB SQL statement (a reference for issue #7).

read_csv (explicit VARCHAR columns, no sniffing, strict, `store_rejects`) -> the rules as one
SELECT, materialised once as a temporary table -> COPY the published rows to Parquet
partitioned by invoice_year/invoice_month, and one GROUP BY for the counts.

Malformed lines: the lines a CSV reader would misread are settled before the read
(`line_scan.scan_input`). DuckDB's strict reader rejects rows with too many or too few fields and
skips blank lines; `store_rejects` keeps reading after them (`ignore_errors` alone, with the
parallel reader, dropped every row after an unclosed quote on DuckDB 2.0.1). Those lines are
quarantined as `rejected_by_reader`.

Memory: under a cap on the process's data segment (the bench's `--memory-cap`, RLIMIT_DATA),
DuckDB's own default limit (80% of the machine's RAM) lies beyond the cap, and an allocation
past it stops the run ("Out of Memory Error: Allocation failure"). `limit_memory` sets
`memory_limit` to a share of the cap, so the buffer manager spills the temporary table and
its operators' state to `temp_directory` (under the output) instead.

    PYTHONPATH=lib python -m benchmarks.references.duckdb_reference --input F --output DIR
"""

from __future__ import annotations

import resource
import shutil
import time
from pathlib import Path

import duckdb

from benchmarks.references import common, line_scan
from retail_pipeline import rules

ENGINE = "duckdb"
# Spark's DDL for the decimals ("decimal(12,4)") is DuckDB's too.
FIELD_TYPES = {"quantity": "INTEGER", "unit_price": rules.UNIT_PRICE_TYPE}
REVENUE_PRECISION = common.decimal_type(rules.REVENUE_TYPE)[0]
# DuckDB's memory_limit bounds its buffer manager only: Python, pyarrow, the CSV reader's
# buffers and the threads' stacks live beside it under the same cap.
MEMORY_LIMIT_SHARE = 0.5


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def raw(name: str) -> str:
    """A raw field as read (DuckDB's names are case-insensitive: "Quantity" is "quantity")."""
    return ident(f"raw_{name}")


def clean(name: str) -> str:
    """A raw field trimmed of spaces, NULL when empty (as rules.clean_text)."""
    return ident(f"clean_{name}")


def invoice_date_sql() -> str:
    parsed = [
        f"CASE WHEN regexp_matches({clean('InvoiceDate')}, {literal(fmt.pattern)}) "
        f"THEN try_strptime({clean('InvoiceDate')}, {literal(common.strptime_format(fmt.spark_pattern))}) END"
        for fmt in rules.INVOICE_DATE_FORMATS
    ]
    return f"coalesce({', '.join(parsed)})"


def field_check_passes(check: rules.FieldCheck) -> str:
    if check.kind == "required":
        return f"{clean(check.field)} IS NOT NULL"
    if check.kind == "pattern":
        return f"coalesce(regexp_matches({clean(check.field)}, {literal(check.pattern)}), false)"
    if check.kind == "no_control":
        return (
            f"NOT coalesce(regexp_matches({clean(check.field)}, {literal(rules.CONTROL_CHARACTERS)}), false)"
        )
    if check.kind == "invoice_date":
        return "invoice_ts IS NOT NULL"
    if check.kind == "invoice_date_range":
        return "true"  # the references run without the job's InvoiceDate bounds
    raise ValueError(f"field check {check.reason!r} has an unknown kind {check.kind!r}")


def rule_condition(rule: rules.FilterRule) -> str:
    if rule.op == "starts_with":
        return f"starts_with(upper({rule.field}), {literal(str(rule.operand).upper())})"
    if rule.op == "at_most":
        return f"{rule.field} <= {int(rule.operand)}"
    raise ValueError(f"filter rule {rule.name!r} has an unknown op {rule.op!r}")


def quarantine_reason_sql(scan: common.InputScan) -> str:
    whens = []
    if scan.truncated_last_fields is not None:
        same_line = " AND ".join(
            f"coalesce({raw(name)}, '') = {literal(value)}"
            for name, value in zip(rules.RAW_COLUMNS, scan.truncated_last_fields, strict=True)
        )
        whens.append(f"WHEN {same_line} THEN 'truncated_last_line'")
    # empty_line, unclosed_quote and wrong_field_count never reach a row here (see the docstring).
    whens += [f"WHEN NOT ({field_check_passes(c)}) THEN {literal(c.reason)}" for c in rules.FIELD_CHECKS]
    return f"CASE {' '.join(whens)} END"


def classify_sql(csv_path: Path, scan: common.InputScan) -> str:
    """The rules as one SELECT: one row per CSV row with outcome, reason and curated columns."""
    columns = "{" + ", ".join(f"{literal('raw_' + name)}: 'VARCHAR'" for name in rules.RAW_COLUMNS) + "}"
    read = (
        f"read_csv({literal(str(csv_path))}, columns = {columns}, header = true, auto_detect = false, "
        "delim = ',', quote = '\"', escape = '\"', strict_mode = true, null_padding = false, "
        "store_rejects = true, encoding = 'utf-8')"
    )
    cleaned = ", ".join(f"nullif(trim({raw(n)}, ' '), '') AS {clean(n)}" for n in rules.RAW_COLUMNS)
    customer_id = (
        f"coalesce(regexp_replace({clean('CustomerID')}, {literal(rules.CUSTOMER_ID_FLOAT_SUFFIX)}, ''), "
        f"{literal(rules.UNKNOWN_CUSTOMER)})"
    )
    filters = " ".join(f"WHEN {rule_condition(r)} THEN {literal(r.name)}" for r in rules.FILTER_RULES)
    return f"""
WITH raw AS (SELECT * FROM {read}),
cleaned AS (SELECT *, {cleaned} FROM raw),
typed AS (
    SELECT *,
        {clean("InvoiceNo")} AS invoice_no,
        {clean("StockCode")} AS stock_code,
        nullif(trim(regexp_replace({raw("Description")}, {literal(rules.CONTROL_RUN)}, ' ', 'g'), ' '), '')
            AS description,
        TRY_CAST({clean("Quantity")} AS {FIELD_TYPES["quantity"]}) AS quantity,
        TRY_CAST({clean("UnitPrice")} AS {FIELD_TYPES["unit_price"]}) AS unit_price,
        {invoice_date_sql()} AS invoice_ts,
        {customer_id} AS customer_id,
        {clean("Country")} AS country
    FROM cleaned
),
reasons AS (SELECT *, {quarantine_reason_sql(scan)} AS quarantine_reason FROM typed),
classified AS (
    SELECT *, CASE WHEN quarantine_reason IS NULL THEN CASE {filters} END END AS filter_reason
    FROM reasons
)
SELECT
    CASE WHEN quarantine_reason IS NOT NULL THEN 'quarantined'
         WHEN filter_reason IS NOT NULL THEN 'filtered' ELSE 'published' END AS outcome,
    coalesce(quarantine_reason, filter_reason) AS reason,
    invoice_no, stock_code, description, quantity, unit_price,
    -- INTEGER x DECIMAL(12,4) widened first: exact in DECIMAL(23,4), never overflowing.
    CAST(CAST(quantity AS DECIMAL({REVENUE_PRECISION}, 0)) * unit_price AS {rules.REVENUE_TYPE}) AS revenue,
    invoice_ts, customer_id, country,
    CAST(year(invoice_ts) AS INTEGER) AS invoice_year,
    CAST(month(invoice_ts) AS INTEGER) AS invoice_month
FROM classified
"""


def limit_memory(connection: duckdb.DuckDBPyConnection, temp_directory: Path) -> str | None:
    """Spill to `temp_directory` (never DuckDB's default `.tmp` in the working directory), and
    under a cap on this process's data segment keep the buffer manager to a share of it:
    the memory_limit set, or None without a cap."""
    connection.execute(f"SET temp_directory = {literal(str(temp_directory))}")
    cap, _ = resource.getrlimit(resource.RLIMIT_DATA)
    if cap == resource.RLIM_INFINITY:
        return None
    limit = f"{int(cap * MEMORY_LIMIT_SHARE) // 2**20}MiB"
    connection.execute(f"SET memory_limit = {literal(limit)}")
    return limit


def run(input_path: Path, output: Path) -> common.ReferenceResult:
    scan = line_scan.scan_input(input_path)
    curated = common.prepare_output(output)
    csv_path = line_scan.input_for_reader(scan, output / "_work")
    durations: dict[str, float] = {}
    connection = duckdb.connect()
    spill = output / "_work" / "duckdb_tmp"
    spill.mkdir(parents=True, exist_ok=True)  # DuckDB creates the last folder only, when it spills
    memory_limit = limit_memory(connection, spill)
    # Row order is not part of the output contract; keeping it costs memory in COPY.
    connection.execute("SET preserve_insertion_order = false")
    started = time.perf_counter()
    connection.execute(f"CREATE TEMPORARY TABLE classified AS {classify_sql(csv_path, scan)}")
    durations["read_and_classify"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    columns = ", ".join(common.CURATED_COLUMNS)
    partitions = ", ".join(common.PARTITION_COLUMNS)
    connection.execute(
        f"COPY (SELECT {columns} FROM classified WHERE outcome = 'published') TO {literal(str(curated))} "
        f"(FORMAT PARQUET, PARTITION_BY ({partitions}), COMPRESSION {common.PARQUET_COMPRESSION})"
    )
    durations["write"] = round(time.perf_counter() - started, 3)
    groups = connection.execute(
        "SELECT outcome, reason, count(*), sum(revenue) FROM classified GROUP BY ALL"
    ).fetchall()
    connection.close()
    shutil.rmtree(spill, ignore_errors=True)
    if csv_path != input_path:
        csv_path.unlink()
    folded = common.OutcomeGroups.fold(groups)
    return common.build_result(
        engine=ENGINE,
        engine_version=duckdb.__version__,
        scan=scan,
        output=curated,
        counts=folded,
        durations_s=durations,
        notes=(f"memory_limit {memory_limit} (under the bench's memory cap)",) if memory_limit else (),
    )


if __name__ == "__main__":
    common.exit_now(common.main(run))
