"""The batch job's rules in pandas 2.2 (a reference for issue #7).

pd.read_csv(dtype=str, keep_default_na=False) -> vectorised string operations per column ->
pyarrow for the exact decimals -> pyarrow.parquet.write_to_dataset partitioned by
invoice_year/invoice_month.

Malformed lines: the lines a CSV reader would misread are settled before the read
(`line_scan.scan_input`). The C parser skips blank lines and lines with too many fields
(`on_bad_lines="skip"`): they are quarantined as `rejected_by_reader`. It pads a line with too
few fields with empty strings, so its Country is empty: quarantined all the same, but under
the first field check it fails (usually `missing_country`) instead of `wrong_field_count`.
pandas timestamps are nanoseconds: a date before 1677 or after 2262 is quarantined as
`invalid_invoice_date`, where Spark would publish it.

    PYTHONPATH=lib python -m benchmarks.references.pandas_reference --input F --output DIR
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.references import common, line_scan
from retail_pipeline import rules

ENGINE = "pandas"
UNIT_PRICE = pa.decimal128(*common.decimal_type(rules.UNIT_PRICE_TYPE))
REVENUE = pa.decimal128(*common.decimal_type(rules.REVENUE_TYPE))


def read_raw(csv_path: Path) -> pd.DataFrame:
    return pd.read_csv(
        csv_path,
        header=None,
        skiprows=1,
        names=list(rules.RAW_COLUMNS),
        index_col=False,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        quotechar='"',
        doublequote=True,
        on_bad_lines="skip",
        encoding="utf-8",
        engine="c",
    )


def invoice_date(text: pd.Series) -> pd.Series:
    """Naive timestamps where the text has an accepted shape and is a real date, else NaT."""
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    for date_format in rules.INVOICE_DATE_FORMATS:
        shaped = text.str.match(date_format.pattern) & parsed.isna()
        if not shaped.any():
            continue
        values = pd.to_datetime(
            text[shaped], format=common.strptime_format(date_format.spark_pattern), errors="coerce"
        )
        group = common.second_group(date_format)
        if group is not None:
            seconds = text[shaped].str.extract(date_format.pattern)[group - 1].astype("int64")
            values = values.where(values.dt.second == seconds)
        parsed[shaped] = values
    return parsed


def field_check_passes(check: rules.FieldCheck, clean: dict[str, pd.Series], ts: pd.Series) -> pd.Series:
    value = clean[check.field]
    if check.kind == "required":
        return value != ""
    if check.kind == "pattern":
        return value.str.match(check.pattern)
    if check.kind == "no_control":
        return ~value.str.contains(rules.CONTROL_CHARACTERS, regex=True)
    if check.kind == "invoice_date":
        return ts.notna()
    if check.kind == "invoice_date_range":
        return pd.Series(True, index=value.index)  # the references run without the job's bounds
    raise ValueError(f"field check {check.reason!r} has an unknown kind {check.kind!r}")


def quarantine_reason(
    raw: pd.DataFrame, clean: dict[str, pd.Series], ts: pd.Series, scan: common.InputScan
) -> np.ndarray:
    conditions, reasons = [], []
    if scan.truncated_last_fields is not None:
        same = np.logical_and.reduce(
            [
                raw[name] == value
                for name, value in zip(rules.RAW_COLUMNS, scan.truncated_last_fields, strict=True)
            ]
        )
        conditions.append(same)
        reasons.append("truncated_last_line")
    for check in rules.FIELD_CHECKS:
        conditions.append(~field_check_passes(check, clean, ts))
        reasons.append(check.reason)
    return np.select(conditions, reasons, default="")


def rule_matches(rule: rules.FilterRule, typed: dict[str, pd.Series | pa.Array]) -> np.ndarray:
    value = typed[rule.field]
    if rule.op == "starts_with":
        operand = str(rule.operand).upper()
        return (value.str.slice(0, len(operand)).str.upper() == operand).to_numpy()
    if rule.op == "at_most":
        if isinstance(value, pa.Array):
            return pc.less_equal(value, rule.operand).to_numpy(zero_copy_only=False)
        return value <= rule.operand
    raise ValueError(f"filter rule {rule.name!r} has an unknown op {rule.op!r}")


def curated_table(clean: dict[str, pd.Series], typed: dict, ts: pd.Series, published: np.ndarray) -> pa.Table:
    def text(name: str) -> pd.Series:
        return clean[name][published]

    quantity = pa.array(typed["quantity"][published], pa.int32())
    unit_price = typed["unit_price"].filter(pa.array(published))
    customer = text("CustomerID")
    customer_id = customer.str.replace(rules.CUSTOMER_ID_FLOAT_SUFFIX, "", regex=True)
    description = text("Description").str.replace(rules.CONTROL_RUN, " ", regex=True).str.strip(" ")
    invoice_ts = ts[published]
    return pa.table(
        {
            "invoice_no": pa.array(text("InvoiceNo"), pa.string()),
            "stock_code": pa.array(text("StockCode"), pa.string()),
            "description": pa.array(description, pa.string(), mask=(description == "").to_numpy()),
            "quantity": quantity,
            "unit_price": unit_price,
            # int32 as DECIMAL(10,0) x DECIMAL(12,4) is DECIMAL(23,4) in Arrow: exact.
            "revenue": pc.multiply(quantity.cast(pa.decimal128(10, 0)), unit_price).cast(REVENUE),
            "invoice_ts": pa.array(invoice_ts).cast(pa.timestamp("us")),
            "customer_id": pa.array(customer_id.where(customer != "", rules.UNKNOWN_CUSTOMER), pa.string()),
            "country": pa.array(text("Country"), pa.string()),
            "invoice_year": pa.array(invoice_ts.dt.year, pa.int32()),
            "invoice_month": pa.array(invoice_ts.dt.month, pa.int32()),
        }
    )


def run(input_path: Path, output: Path) -> common.ReferenceResult:
    scan = line_scan.scan_input(input_path)
    curated = common.prepare_output(output)
    csv_path = line_scan.input_for_reader(scan, output / "_work")
    durations: dict[str, float] = {}
    started = time.perf_counter()
    raw = read_raw(csv_path)
    if csv_path != input_path:
        csv_path.unlink()
    durations["read"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    clean = {name: raw[name].str.strip(" ") for name in rules.RAW_COLUMNS}
    ts = invoice_date(clean["InvoiceDate"])
    reason = quarantine_reason(raw, clean, ts, scan)
    rows_seen = len(raw)
    del raw
    well_formed = reason == ""
    clean = {name: values[well_formed] for name, values in clean.items()}
    ts = ts[well_formed]
    typed = {
        "invoice_no": clean["InvoiceNo"],
        "quantity": clean["Quantity"].astype("int32").to_numpy(),
        "unit_price": pa.array(clean["UnitPrice"], pa.string()).cast(UNIT_PRICE),
    }
    matches = [rule_matches(rule, typed) for rule in rules.FILTER_RULES]
    filter_reason = np.select(matches, [rule.name for rule in rules.FILTER_RULES], default="")
    published = filter_reason == ""
    table = curated_table(clean, typed, ts, published)
    durations["classify"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    pq.write_to_dataset(
        table, curated, partition_cols=list(common.PARTITION_COLUMNS), compression=common.PARQUET_COMPRESSION
    )
    durations["write"] = round(time.perf_counter() - started, 3)
    quarantined = pd.Series(reason[~well_formed]).value_counts().to_dict()
    filtered = pd.Series(filter_reason[~published]).value_counts().to_dict()
    revenue = pc.sum(table["revenue"]).as_py() or Decimal(0)
    return common.build_result(
        engine=ENGINE,
        engine_version=pd.__version__,
        scan=scan,
        output=curated,
        counts=common.OutcomeGroups(
            rows_seen=rows_seen,
            published=table.num_rows,
            published_revenue=Decimal(revenue).quantize(Decimal("0.0001")),
            filtered=filtered,
            quarantined=quarantined,
        ),
        durations_s=durations,
    )


if __name__ == "__main__":
    common.exit_now(common.main(run))
