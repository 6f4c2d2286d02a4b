"""Pure DataFrame -> DataFrame transforms of the batch job: the Spark interpreter of `rules`.

The chain, from raw text lines to one classified row per line:

    lines                      source_file, line
      .transform(split_fields)            + _well_quoted, fields (struct of the 8 raw strings,
                                            and _malformed; null where the quoting is not
                                            well formed)
      .transform(clean_fields)            + clean (the 8 fields trimmed, empty as null)
      .transform(type_fields)             + the curated columns (null where malformed)
      .transform(add_quarantine_reason, truncated_last_lines=...)   + quarantine_reason
      .transform(add_filter_reason)       + filter_reason
      .transform(add_outcome, header_lines=...)   + outcome, reason

Each value is computed once and referenced by name afterwards: Spark does not share common
subexpressions across the branches of a CASE WHEN, so an expression repeated inside the
reason chains would be evaluated again for every line.

No transform reads, writes, looks up a session or reads config. Every expression is a Spark
built-in (no Python UDF), so the whole chain is code-generated.

Invalid values become null rather than raising only while `spark.sql.ansi.enabled` is false
(Spark 3.5's default, and what `retail_pipeline.session` sets); quarantine reasons never depend
on that, because every field is checked against its pattern before it is cast.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from retail_pipeline import contract, rules
from retail_pipeline.ledger import SOURCE_ID_HEX_DIGITS

SOURCE_FILE = "source_file"
RUN_ID = "run_id"
SOURCE_ID = "source_id"  # the quarantine's partition column
LINE = "line"
FIELDS = "fields"
CLEAN = "clean"
CONTROL = "_control"
MALFORMED = "_malformed"
WELL_QUOTED = "_well_quoted"
PARTS = "_parts"

OUTCOME_HEADER = contract.OUTCOME_HEADER
OUTCOME_QUARANTINED = contract.OUTCOME_QUARANTINED
OUTCOME_FILTERED = contract.OUTCOME_FILTERED
OUTCOME_PUBLISHED = contract.OUTCOME_PUBLISHED

MAX_COLUMNS = 20_480
RAW_FIELDS_DDL = ", ".join([f"{name} STRING" for name in rules.RAW_COLUMNS] + [f"{MALFORMED} STRING"])
CSV_OPTIONS = {
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": MALFORMED,
    "sep": rules.CSV_SYNTAX.delimiter,
    # RFC 4180 quoting: a quote inside a quoted field is escaped by another quote.
    "quote": rules.CSV_SYNTAX.quote,
    "escape": rules.CSV_SYNTAX.quote,
    # Spark's default, named: a line of more fields fails the whole job (`split_fields`).
    "maxColumns": str(MAX_COLUMNS),
}
if len(rules.RAW_COLUMNS) != rules.CSV_SYNTAX.field_count:
    raise RuntimeError("rules.CSV_SYNTAX.field_count is not the number of raw columns")

# Hadoop spells one file's URI "file:/x" or "file:///x" depending on how the path was made;
# keys compare with the slashes after the scheme folded to one ("file:/x", "s3:/bucket/x").
FILE_URI_SLASHES = r"^([A-Za-z][A-Za-z0-9+.-]*):/+"


def canonical_source(file_path: Column) -> Column:
    """A file URI spelled as `ledger.canonical_uri` spells it (file:///x, s3://bucket/x)."""
    return F.regexp_replace(file_path, "^file:/+", "file:///")


def file_key(uri: str) -> str:
    """A file URI in the one spelling `add_quarantine_reason` compares."""
    return re.sub(FILE_URI_SLASHES, r"\1:/", uri)


PARTITION_COLUMNS = rules.PARTITION_COLUMNS
CURATED_COLUMNS = rules.CURATED_COLUMNS

# Names of the observed metrics (`outcome_metrics`).
ALL_LINES = "all_lines"
HEADER_LINES = "header_lines"
QUARANTINED_LINES = "quarantined_lines"
REVENUE = "published_revenue"
UNCLOSED_QUOTE = next(check.name for check in rules.LINE_REASONS if check.kind == "odd_quotes")
# The source files holding a line with an unclosed quote (at most one entry per input file).
UNCLOSED_QUOTE_FILES = "unclosed_quote_files"


def java_regex(pattern: str) -> str:
    """A rules pattern as Java must read it to mean what Python's re does: with UNIX_LINES
    ((?d)), `$` matches before a final line feed only, not before U+0085, U+2028 or U+2029."""
    return f"(?d){pattern}"


def raw_field(name: str) -> Column:
    """A raw field trimmed of spaces, null when empty (as `rules.clean_text`)."""
    return F.col(f"{CLEAN}.{name}")


def split_fields(lines: DataFrame) -> DataFrame:
    """Parse each CSV line into its raw string fields; a line of the wrong shape keeps its
    text in `fields._malformed`. Only well-quoted lines are parsed (`_well_quoted`, as
    `rules.well_quoted`): on others Spark's parser and Python's disagree; `fields` is null.

    A line without a quote (nearly all) is split at the delimiter, which reads it as the CSV
    parser would; only quoted lines go through `from_csv`, whose per-line parser setup cost
    about a quarter of the pass when every line took it (docs/benchmarks.md).
    """
    line = F.col(LINE)
    quoted = line.contains(rules.CSV_SYNTAX.quote)
    well_quoted = ~quoted | line.rlike(java_regex(rules.WELL_QUOTED_LINE))
    # The parser throws on more than MAX_COLUMNS fields; only a line that long can have them
    # (a character takes at least one byte, so the byte length bounds the count for free).
    outside_quotes = F.regexp_replace(line, rules.QUOTED_FIELD, "")
    delimiters = F.length(outside_quotes) - F.length(
        F.replace(outside_quotes, F.lit(rules.CSV_SYNTAX.delimiter))
    )
    parsable = F.col(WELL_QUOTED) & ((F.octet_length(line) < MAX_COLUMNS) | (delimiters < MAX_COLUMNS))
    parts = F.col(PARTS)
    unquoted = F.struct(
        *(parts[index].alias(name) for index, name in enumerate(rules.RAW_COLUMNS)),
        F.when(F.size(parts) != len(rules.RAW_COLUMNS), line).alias(MALFORMED),
    )
    return (
        lines.withColumn(WELL_QUOTED, well_quoted)
        .withColumn(PARTS, F.when(~quoted, F.split(line, re.escape(rules.CSV_SYNTAX.delimiter), -1)))
        .withColumn(
            FIELDS,
            F.when(~quoted, unquoted).otherwise(
                F.from_csv(F.when(parsable, line), RAW_FIELDS_DDL, CSV_OPTIONS)
            ),
        )
        .drop(PARTS)
    )


def clean_fields(fields: DataFrame) -> DataFrame:
    """The raw fields trimmed of spaces, empty as null, in the struct `clean`."""
    cleaned = []
    for name in rules.RAW_COLUMNS:
        trimmed = F.trim(F.col(f"{FIELDS}.{name}"))
        cleaned.append(F.when(trimmed != "", trimmed).alias(name))
    return fields.withColumn(CLEAN, F.struct(*cleaned))


def invoice_date(text: Column) -> Column:
    """InvoiceDate as TIMESTAMP_NTZ (a wall-clock time, as the data set records it), or null
    when it has none of the accepted shapes or is no real date (13/45/2010, 2/30/2011)."""
    parsed = [
        # The regex picks the one pattern to try, so no line pays for a failed parse.
        F.when(text.rlike(date_format.pattern), F.to_timestamp_ntz(text, F.lit(date_format.spark_pattern)))
        for date_format in rules.INVOICE_DATE_FORMATS
    ]
    return F.coalesce(*parsed)


def field_check_passes(
    check: rules.FieldCheck, *, invoice_ts_range: tuple[datetime, datetime] | None = None
) -> Column:
    """Whether a line passes a field check; needs `clean`, `_control` (whether the line holds
    a control character) and, for dates, `invoice_ts`."""
    value = raw_field(check.field)
    if check.kind == "required":
        return value.isNotNull()
    if check.kind == "pattern":
        return F.coalesce(value.rlike(java_regex(check.pattern)), F.lit(False))
    if check.kind == "no_control":
        # Only lines holding one pay for the field's scan (And short-circuits).
        return ~(F.col(CONTROL) & F.coalesce(value.rlike(rules.CONTROL_CHARACTERS), F.lit(False)))
    if check.kind == "invoice_date":
        return F.col("invoice_ts").isNotNull()
    if check.kind == "invoice_date_range":
        if invoice_ts_range is None:
            return F.lit(True)
        earliest, latest = (
            F.lit(f"{bound:%Y-%m-%d %H:%M:%S}").cast("timestamp_ntz") for bound in invoice_ts_range
        )
        return F.col("invoice_ts").between(earliest, latest)
    raise ValueError(f"field check {check.reason!r} has an unknown kind {check.kind!r}")


def line_check_fails(check: rules.LineCheck, *, truncated: Column) -> Column:
    """Whether a line fails a line check (as `rules.line_check_fails` and `rules.split_line`);
    needs `fields` and `_well_quoted`. `truncated`: whether it is a file's last line, cut short."""
    line = F.col(LINE)
    if check.kind == "undecodable":
        # The reader decoded bytes invalid in the input's encoding to U+FFFD (batch.read_lines).
        return line.contains(rules.REPLACEMENT_CHARACTER) | line.contains(rules.NONCHARACTER)
    if check.kind == "blank":
        return F.trim(line) == ""
    if check.kind == "cut_short":
        return truncated
    if check.kind == "odd_quotes":
        # replace() rather than translate(), which builds a hash map for every line (a profile
        # showed translate at 10% of all CPU samples); lines without quotes skip it. The parser
        # alone misses an unclosed quote in the last field.
        quote = F.lit(rules.CSV_SYNTAX.quote)
        quote_count = F.length(line) - F.length(F.replace(line, quote, F.lit("")))
        return line.contains(rules.CSV_SYNTAX.quote) & (quote_count % 2 == 1)
    if check.kind == "misquoted":
        return ~F.col(WELL_QUOTED)
    if check.kind == "field_count":
        # Null fields: a line of more than MAX_COLUMNS fields (or one quarantined before).
        return F.col(FIELDS).isNull() | F.col(f"{FIELDS}.{MALFORMED}").isNotNull()
    raise ValueError(f"line check {check.name!r} has an unknown kind {check.kind!r}")


def add_quarantine_reason(
    typed: DataFrame,
    *,
    truncated_last_lines: Mapping[str, str] | None = None,
    invoice_ts_range: tuple[datetime, datetime] | None = None,
) -> DataFrame:
    """Name the first reason that makes a typed line malformed (null when it is well formed).

    `truncated_last_lines` maps a source file (its URI, as in `source_file`) to the text of
    its last line, for files that do not end with a line break: a cut inside the last field
    still parses, so only the missing line break tells. `invoice_ts_range` bounds InvoiceDate
    (inclusive); without it any real date passes.
    """
    truncated = F.lit(False)
    source_key = F.regexp_replace(F.col(SOURCE_FILE), FILE_URI_SLASHES, "$1:/")
    for source_file, last_line in (truncated_last_lines or {}).items():
        truncated = truncated | ((source_key == file_key(source_file)) & (F.col(LINE) == last_line))
    failures = [(check.name, line_check_fails(check, truncated=truncated)) for check in rules.LINE_REASONS]
    failures += [
        (check.reason, ~field_check_passes(check, invoice_ts_range=invoice_ts_range))
        for check in rules.FIELD_CHECKS
    ]
    reason = F.when(failures[0][1], F.lit(failures[0][0]))
    for name, condition in failures[1:]:
        reason = reason.when(condition, F.lit(name))
    return (
        typed.withColumn(CONTROL, F.col(LINE).rlike(rules.CONTROL_CHARACTERS))
        .withColumn("quarantine_reason", reason)
        .drop(CONTROL, WELL_QUOTED)
    )


def description(text: Column) -> Column:
    """Description as published (as `rules.clean_description`): each run of control characters
    one space, then trimmed; empty is null."""
    spaced = F.trim(F.regexp_replace(text, rules.CONTROL_RUN, " "))
    return F.when(spaced != "", spaced)


def type_fields(cleaned: DataFrame) -> DataFrame:
    """The curated columns with their types; null where a field is malformed (such lines are
    quarantined and never published)."""
    quantity = raw_field("Quantity").cast("int")
    unit_price = raw_field("UnitPrice").cast(rules.UNIT_PRICE_TYPE)
    customer_id = F.regexp_replace(raw_field("CustomerID"), java_regex(rules.CUSTOMER_ID_FLOAT_SUFFIX), "")
    typed = cleaned.withColumns(
        {
            "invoice_no": raw_field("InvoiceNo"),
            "stock_code": raw_field("StockCode"),
            "description": description(raw_field("Description")),
            "quantity": quantity,
            "unit_price": unit_price,
            # int x DECIMAL(12,4) is DECIMAL(23,4): exact, never rounded, never overflowing.
            "revenue": (quantity * unit_price).cast(rules.REVENUE_TYPE),
            "invoice_ts": invoice_date(raw_field("InvoiceDate")),
            "customer_id": F.coalesce(customer_id, F.lit(rules.UNKNOWN_CUSTOMER)),
            "country": raw_field("Country"),
        }
    )
    return typed.withColumns(
        {"invoice_year": F.year(F.col("invoice_ts")), "invoice_month": F.month(F.col("invoice_ts"))}
    )


def rule_condition(rule: rules.FilterRule) -> Column:
    value = F.col(rule.field)
    if rule.op == "starts_with":
        return F.upper(value).startswith(str(rule.operand).upper())
    if rule.op == "at_most":
        return value <= F.lit(rule.operand)
    raise ValueError(f"filter rule {rule.name!r} has an unknown op {rule.op!r}")


def add_filter_reason(typed: DataFrame) -> DataFrame:
    """Name the first business rule a typed line matches (null when it is to be published)."""
    first, *rest = rules.FILTER_RULES
    reason = F.when(rule_condition(first), F.lit(first.name))
    for rule in rest:
        reason = reason.when(rule_condition(rule), F.lit(rule.name))
    return typed.withColumn("filter_reason", reason)


def add_outcome(classified: DataFrame, *, header_lines: Collection[str]) -> DataFrame:
    """Where each line ends: header, quarantined, filtered or published; `reason` says why.
    A header line counts with or without a byte-order mark (files concatenated whole)."""
    headers = sorted({*header_lines, *(rules.UTF8_BOM + header for header in header_lines)})
    is_header = F.col(LINE).isin(headers) if header_lines else F.lit(False)
    quarantined = F.col("quarantine_reason").isNotNull()
    filtered = F.col("filter_reason").isNotNull()
    outcome = (
        F.when(is_header, F.lit(OUTCOME_HEADER))
        .when(quarantined, F.lit(OUTCOME_QUARANTINED))
        .when(filtered, F.lit(OUTCOME_FILTERED))
        .otherwise(F.lit(OUTCOME_PUBLISHED))
    )
    reason = F.when(~is_header, F.coalesce("quarantine_reason", "filter_reason"))
    return classified.withColumns({"outcome": outcome, "reason": reason})


def classify_lines(
    lines: DataFrame,
    *,
    header_lines: Collection[str],
    truncated_last_lines: Mapping[str, str] | None = None,
    invoice_ts_range: tuple[datetime, datetime] | None = None,
) -> DataFrame:
    """The whole chain: raw lines (source_file, line) -> one classified row per line."""
    return (
        lines.transform(split_fields)
        .transform(clean_fields)
        .transform(type_fields)
        .transform(
            add_quarantine_reason,
            truncated_last_lines=truncated_last_lines,
            invoice_ts_range=invoice_ts_range,
        )
        .transform(add_filter_reason)
        .transform(add_outcome, header_lines=header_lines)
    )


def outcome_metrics() -> list[Column]:
    """Aggregates for `DataFrame.observe` over classified lines, so the write that consumes
    them counts what the staged lines cannot tell: every line, the header lines (never
    staged), the quarantined lines (a second read for their raw text must count the same),
    the published revenue and the files with an unclosed quote. The lines of each outcome and
    reason are counted from the staged partitions' folders (`batch.staged_lines`), not here:
    one comparison per line per reason cost more than the files' metadata."""
    return [
        F.count(F.lit(1)).alias(ALL_LINES),
        F.count(F.when(F.col("outcome") == OUTCOME_HEADER, 1)).alias(HEADER_LINES),
        F.count(F.when(F.col("outcome") == OUTCOME_QUARANTINED, 1)).alias(QUARANTINED_LINES),
        F.sum(F.when(is_published(), F.col("revenue"))).alias(REVENUE),
        F.to_json(F.collect_set(F.when(F.col("reason") == UNCLOSED_QUOTE, F.col(SOURCE_FILE)))).alias(
            UNCLOSED_QUOTE_FILES
        ),
    ]


def unclosed_quote_files(metrics: Mapping[str, Any]) -> set[str]:
    """The source files (URIs, as `source_file`) in which `outcome_metrics` saw an unclosed quote."""
    return set(json.loads(metrics[UNCLOSED_QUOTE_FILES] or "[]"))


def is_published() -> Column:
    return F.col("outcome") == OUTCOME_PUBLISHED


def to_curated(classified: DataFrame) -> DataFrame:
    """The published lines, in the curated output contract."""
    return classified.where(is_published()).select(*CURATED_COLUMNS)


def to_quarantine(classified: DataFrame) -> DataFrame:
    """The quarantined lines with their reason, raw text, source file and run."""
    quarantined = F.col("outcome") == OUTCOME_QUARANTINED
    return classified.where(quarantined).select(
        F.col(SOURCE_FILE),
        F.col(LINE).alias("raw_line"),
        F.col("reason"),
        F.col(RUN_ID),
        # The partition column: re-running a file replaces that file's quarantine records.
        F.substring(F.sha1(F.col(SOURCE_FILE)), 1, SOURCE_ID_HEX_DIGITS).alias(SOURCE_ID),
    )
