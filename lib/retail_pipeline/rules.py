"""The business rules of the Online Retail pipeline, written once, as data.

Both execution paths interpret these definitions: the Spark batch job turns them into column
expressions (`retail_pipeline.transforms`), the plain-Python streaming path applies them to one
record at a time (`parse_record` and `first_matching_rule` below). Nothing else in the project
restates a rule; a parity test runs both interpreters on the same lines.

A raw line ends in exactly one of three places:
- quarantined: it is malformed (`QUARANTINE_REASONS`, first match wins);
- filtered: it is well formed but out of scope (`FILTER_RULES`, first match wins);
- published: everything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from retail_pipeline import contract, limits

RAW_COLUMNS: tuple[str, ...] = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
RAW_HEADER = ",".join(RAW_COLUMNS)
UTF8_BOM = "\ufeff"

UNKNOWN_CUSTOMER = "Unknown"

# The curated output contract (its columns in order, the last two partitioning it, and its
# types) is `contract`'s; re-exported here for the interpreters of the rules.
CURATED_COLUMNS = contract.CURATED_COLUMNS
PARTITION_COLUMNS = contract.PARTITION_COLUMNS
LINEAGE_COLUMNS = contract.LINEAGE_COLUMNS
UNIT_PRICE_TYPE = contract.UNIT_PRICE_TYPE
REVENUE_TYPE = contract.REVENUE_TYPE

# Quantity must fit a 32-bit int exactly; "6.0" or "6e2" are not quantities.
QUANTITY_PATTERN = r"^[+-]?[0-9]{1,9}$"
# UnitPrice is money: at most 8 integer digits and 4 decimals, so it fits DECIMAL(12,4)
# without rounding. Anything else (thousands separators, exponents, currency) is malformed.
UNIT_PRICE_PATTERN = r"^[+-]?([0-9]{1,8}(\.[0-9]{0,4})?|\.[0-9]{1,4})$"
# Spreadsheet exports write whole customer numbers as floats ("17850.0").
CUSTOMER_ID_FLOAT_SUFFIX = r"\.0+$"
# Control characters (C0, DEL, C1): a key holding one is malformed (it breaks look-ups and,
# for NUL, PostgreSQL); in Description each run of them becomes one space. Same syntax in
# Java and Python regexes.
CONTROL_CHARACTERS = r"[\x00-\x1F\x7F-\x9F]"
CONTROL_RUN = CONTROL_CHARACTERS + "+"
# A key the query API can look up: at most limits.KEY_MAX_CHARS characters ([\s\S]: any
# character, the same in Java and Python).
KEY_PATTERN = rf"^[\s\S]{{1,{limits.KEY_MAX_CHARS}}}$"
# What a decoder puts where the bytes were not valid in the input's encoding.
REPLACEMENT_CHARACTER = "\ufffd"


@dataclass(frozen=True)
class DateFormat:
    """An accepted InvoiceDate shape: a full-match regex and what each group holds (Python),
    and the same shape as a Spark datetime pattern (parsed strictly: 2/30/2011 is no date)."""

    name: str
    pattern: str
    groups: tuple[str, ...]
    spark_pattern: str


# Years 1000-9999 only: Spark would read year 0000, Python's datetime would not.
INVOICE_DATE_FORMATS: tuple[DateFormat, ...] = (
    # The data set's own form, M/d/yyyy H:mm ("12/1/2010 8:26").
    DateFormat(
        "month_day_year",
        r"^([0-9]{1,2})/([0-9]{1,2})/([1-9][0-9]{3}) ([0-9]{1,2}):([0-9]{2})$",
        ("month", "day", "year", "hour", "minute"),
        "M/d/yyyy H:mm",
    ),
    # The spreadsheet export's form, yyyy-MM-dd HH:mm:ss.
    DateFormat(
        "iso",
        r"^([1-9][0-9]{3})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})$",
        ("year", "month", "day", "hour", "minute", "second"),
        "yyyy-MM-dd HH:mm:ss",
    ),
)


@dataclass(frozen=True)
class QuarantineReason:
    name: str
    description: str


@dataclass(frozen=True)
class CsvSyntax:
    """How a record's text splits into fields: RFC 4180, as the data set's exports write it.
    Both parsers derive from it (Spark's from_csv options, Python's csv dialect)."""

    delimiter: str
    quote: str  # doubled inside a quoted field: "7"" FRAME" is 7" FRAME
    field_count: int
    # What a line break inside a quoted field becomes once its record is read whole
    # (`retail_pipeline.multiline`): SUB, a control character no line reader splits on, so
    # the field checks treat it as the line break it was (one space in Description).
    line_break_in_field: str


CSV_SYNTAX = CsvSyntax(delimiter=",", quote='"', field_count=len(RAW_COLUMNS), line_break_in_field="\x1a")
if any(len(c) != 1 or re.escape(c) != c for c in (CSV_SYNTAX.delimiter, CSV_SYNTAX.quote)):
    raise RuntimeError("rules.CSV_SYNTAX: the patterns below take one plain character each")

# Well-formed quoting (RFC 4180, strictly): a field is either plain, with no quote in it, or
# quoted whole, each quote inside it doubled, and nothing outside its quotes, not even a space
# (RFC 4180 makes spaces part of a field, and a field holding a quote must be quoted). Spark's
# parser and Python's csv read other quoting each their own way (`"b"c`, ` "b"`, `b"c`), so such
# a line is malformed rather than read. Possessive quantifiers (the same in Java and Python
# 3.11): no backtracking, and Java loops over a long field instead of recursing.
_Q, _D = CSV_SYNTAX.quote, CSV_SYNTAX.delimiter
QUOTED_FIELD = f"{_Q}[^{_Q}]*+(?:{_Q}{_Q}[^{_Q}]*+)*+{_Q}"
PLAIN_FIELD = f"[^{_Q}{_D}]*+"
WELL_QUOTED_LINE = f"^(?:{QUOTED_FIELD}|{PLAIN_FIELD})(?:{_D}(?:{QUOTED_FIELD}|{PLAIN_FIELD}))*+$"
# U+FFFF, a noncharacter no text holds, ends the input for Spark's CSV parser: no line may hold it.
NONCHARACTER = "\uffff"


@dataclass(frozen=True)
class LineCheck(QuarantineReason):
    """A check on a line's (a record's) whole text, before it is split into fields.

    `kind` is one of:
    - "undecodable": the text holds U+FFFD (what a decoder puts for invalid bytes), a lone
      surrogate (bytes a surrogateescape decoder could not read) or NONCHARACTER;
    - "blank": the text is empty or spaces only;
    - "cut_short": the file's last line, without a line break (batch inputs only);
    - "odd_quotes": an odd number of CSV_SYNTAX.quote characters (a quoted field never closed);
    - "misquoted": the text holds a quote but is not WELL_QUOTED_LINE;
    - "field_count": CSV_SYNTAX splits it into other than CSV_SYNTAX.field_count fields
      (always the last check: it is the split itself).
    """

    kind: Literal["undecodable", "blank", "cut_short", "odd_quotes", "misquoted", "field_count"] = (
        "field_count"
    )


# Reasons found while splitting a line into fields, checked first and in this order.
LINE_REASONS: tuple[LineCheck, ...] = (
    LineCheck(
        "invalid_encoding",
        "the line holds bytes that are not valid in the input's encoding (batch.encoding), or U+FFFF",
        "undecodable",
    ),
    LineCheck("empty_line", "the line is empty", "blank"),
    LineCheck(
        "truncated_last_line",
        "the file's last line has no line break: the file was probably cut short",
        "cut_short",
    ),
    LineCheck("unclosed_quote", "a quoted field is never closed", "odd_quotes"),
    LineCheck(
        "misplaced_quote",
        "a quote inside an unquoted field, or text (even a space) outside a quoted field's quotes",
        "misquoted",
    ),
    LineCheck("wrong_field_count", f"the line does not have {CSV_SYNTAX.field_count} fields", "field_count"),
)
if LINE_REASONS[-1].kind != "field_count":
    raise RuntimeError("rules.LINE_REASONS must end with the field count check (it is the split)")


@dataclass(frozen=True)
class FieldCheck:
    """A check on one raw field (after trimming spaces); failing it quarantines the line.

    `kind` is one of:
    - "required": the field is not empty;
    - "pattern": the field fully matches the regex `pattern` (same syntax in Java and Python);
    - "no_control": the field is empty or holds no control character;
    - "invoice_date": the field is a real date in one of INVOICE_DATE_FORMATS;
    - "invoice_date_range": that date is within the run's bounds (when it has bounds).
    """

    reason: str
    description: str
    field: str
    kind: Literal["required", "pattern", "no_control", "invoice_date", "invoice_date_range"]
    pattern: str = ""


# Checked after the line reasons, in this order.
FIELD_CHECKS: tuple[FieldCheck, ...] = (
    FieldCheck("missing_invoice_no", "InvoiceNo is empty", "InvoiceNo", "required"),
    FieldCheck("missing_stock_code", "StockCode is empty", "StockCode", "required"),
    FieldCheck(
        "control_character_in_key",
        "InvoiceNo or StockCode holds a control character",
        "InvoiceNo",
        "no_control",
    ),
    FieldCheck(
        "control_character_in_key",
        "InvoiceNo or StockCode holds a control character",
        "StockCode",
        "no_control",
    ),
    # What the stores and the query API can hold and look up (limits.py, shared with ingest).
    FieldCheck(
        limits.INVALID_INVOICE_NO,
        f"InvoiceNo is longer than {limits.KEY_MAX_CHARS} characters",
        "InvoiceNo",
        "pattern",
        KEY_PATTERN,
    ),
    FieldCheck(
        limits.INVALID_STOCK_CODE,
        f"StockCode is longer than {limits.KEY_MAX_CHARS} characters",
        "StockCode",
        "pattern",
        KEY_PATTERN,
    ),
    FieldCheck("invalid_quantity", "Quantity is not a whole number", "Quantity", "pattern", QUANTITY_PATTERN),
    FieldCheck(
        "invalid_unit_price",
        "UnitPrice is not a decimal number with at most 4 decimals",
        "UnitPrice",
        "pattern",
        UNIT_PRICE_PATTERN,
    ),
    FieldCheck(
        "invalid_invoice_date",
        "InvoiceDate is no valid date as M/d/yyyy H:mm or yyyy-MM-dd HH:mm:ss",
        "InvoiceDate",
        "invoice_date",
    ),
    FieldCheck(
        "invoice_date_out_of_range",
        "InvoiceDate is before the earliest accepted date or later than now (quality.invoice_ts_min/max)",
        "InvoiceDate",
        "invoice_date_range",
    ),
    FieldCheck("missing_country", "Country is empty", "Country", "required"),
    FieldCheck("control_character_in_country", "Country holds a control character", "Country", "no_control"),
    FieldCheck(
        "control_character_in_customer_id", "CustomerID holds a control character", "CustomerID", "no_control"
    ),
)

# One reason per name, in the order of first use (a reason may cover checks of several fields).
QUARANTINE_REASONS: tuple[QuarantineReason, ...] = LINE_REASONS + tuple(
    {check.reason: QuarantineReason(check.reason, check.description) for check in FIELD_CHECKS}.values()
)
QUARANTINE_REASON_NAMES = tuple(reason.name for reason in QUARANTINE_REASONS)


@dataclass(frozen=True)
class FilterRule:
    """A business rule that takes a well-formed line out of the published data.

    `op` is one of:
    - "starts_with": the text field starts with `operand`, ignoring case;
    - "at_most": the numeric field is <= `operand`.
    """

    name: str
    reason: str
    field: str
    op: Literal["starts_with", "at_most"]
    operand: str | int


# Order matters: a line is counted under the first rule it matches.
FILTER_RULES: tuple[FilterRule, ...] = (
    FilterRule(
        "cancellation", "InvoiceNo starts with C: a cancelled order", "invoice_no", "starts_with", "C"
    ),
    FilterRule(
        "bad_debt", "InvoiceNo starts with A: a bad-debt adjustment", "invoice_no", "starts_with", "A"
    ),
    FilterRule("non_positive_quantity", "Quantity is zero or negative", "quantity", "at_most", 0),
    FilterRule("non_positive_price", "UnitPrice is zero or negative", "unit_price", "at_most", 0),
)
FILTER_RULE_NAMES = tuple(rule.name for rule in FILTER_RULES)


# ---------------------------------------------------------------------------------------------
# The plain-Python interpreter (streaming path). The Spark one lives in transforms.py.
# ---------------------------------------------------------------------------------------------

_PATTERNS = {check.pattern: re.compile(check.pattern) for check in FIELD_CHECKS if check.pattern}
_WELL_QUOTED_RE = re.compile(WELL_QUOTED_LINE)
_FIELD_RE = re.compile(f"{QUOTED_FIELD}|{PLAIN_FIELD}")
_CONTROL_RE = re.compile(CONTROL_CHARACTERS)
_CONTROL_RUN_RE = re.compile(CONTROL_RUN)
_CUSTOMER_SUFFIX_RE = re.compile(CUSTOMER_ID_FLOAT_SUFFIX)
_DATETIME_PARTS = ("year", "month", "day", "hour", "minute", "second")
# Per format: its regex and, for each of datetime's arguments, the regex group holding it
# (0 for none: the seconds of a format without them are 0).
_DATE_RES = tuple(
    (
        re.compile(fmt.pattern),
        tuple(fmt.groups.index(part) + 1 if part in fmt.groups else 0 for part in _DATETIME_PARTS),
    )
    for fmt in INVOICE_DATE_FORMATS
)
_FOUR_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class InvoiceLine:
    """A well-formed line with the curated types (before the filter rules)."""

    invoice_no: str
    stock_code: str
    description: str | None
    quantity: int
    unit_price: Decimal
    invoice_ts: datetime
    customer_id: str
    country: str

    @property
    def revenue(self) -> Decimal:
        return self.quantity * self.unit_price


def split_line(line: str, *, cut_short: bool = False) -> list[str] | str:
    """One line's (or record's) raw fields, or the first line reason that makes it malformed,
    in LINE_REASONS' order. `cut_short`: it is a file's last line and has no line break."""
    for check in LINE_REASONS[:-1]:
        if line_check_fails(check, line, cut_short=cut_short):
            return check.name
    fields = csv_fields(line)
    return fields if fields is not None and len(fields) == CSV_SYNTAX.field_count else LINE_REASONS[-1].name


def line_check_fails(check: LineCheck, line: str, *, cut_short: bool = False) -> bool:
    """Whether a line fails one of the checks before the split (see `LineCheck`)."""
    if check.kind == "undecodable":
        return REPLACEMENT_CHARACTER in line or NONCHARACTER in line or not limits.is_text(line)
    if check.kind == "blank":
        return line.strip(" ") == ""
    if check.kind == "cut_short":
        return cut_short
    if check.kind == "odd_quotes":
        return line.count(CSV_SYNTAX.quote) % 2 == 1
    if check.kind == "misquoted":
        return not well_quoted(line)
    raise ValueError(f"line check {check.name!r} of kind {check.kind!r} is the split, not a test of the text")


def well_quoted(line: str) -> bool:
    """Whether a line's quoting is WELL_QUOTED_LINE (a line without quotes always is)."""
    return CSV_SYNTAX.quote not in line or _WELL_QUOTED_RE.match(line) is not None


def csv_fields(line: str) -> list[str] | None:
    """A line (without its line break) split as CSV_SYNTAX says, or None if its quoting is not
    well formed (`well_quoted`). Split here rather than by the csv module, which allows other
    quoting and refuses fields over 128 KiB."""
    if CSV_SYNTAX.quote not in line:
        return line.split(CSV_SYNTAX.delimiter)
    if _WELL_QUOTED_RE.match(line) is None:
        return None
    fields, position, quote = [], 0, CSV_SYNTAX.quote
    while True:
        match = _FIELD_RE.match(line, position)
        assert match is not None  # PLAIN_FIELD matches the empty text
        text = match.group()
        fields.append(text[1:-1].replace(quote + quote, quote) if text.startswith(quote) else text)
        position = match.end() + 1  # past the delimiter
        if position > len(line):
            return fields


def clean_text(value: str | None) -> str | None:
    """Trim spaces (as Spark's trim does); empty becomes None."""
    if value is None:
        return None
    stripped = value.strip(" ")
    return stripped or None


def normalize_customer_id(value: str | None) -> str:
    text = clean_text(value)
    if text is None:
        return UNKNOWN_CUSTOMER
    return _CUSTOMER_SUFFIX_RE.sub("", text)


def parse_invoice_date(value: str | None) -> datetime | None:
    """The InvoiceDate as a naive timestamp, or None if it has no accepted shape or is no date."""
    if value is None:
        return None
    for regex, (year, month, day, hour, minute, second) in _DATE_RES:
        match = regex.match(value)
        if match is None:
            continue
        group = match.group
        try:
            return datetime(
                int(group(year)),
                int(group(month)),
                int(group(day)),
                int(group(hour)),
                int(group(minute)),
                int(group(second)) if second else 0,
            )
        except ValueError:
            return None
    return None


def clean_description(value: str | None) -> str | None:
    """Description as published: each run of control characters one space, then trimmed."""
    if value is None:
        return None
    return clean_text(_CONTROL_RUN_RE.sub(" ", value))


def parse_record(
    record: Mapping[str, str | None], *, invoice_ts_range: tuple[datetime, datetime] | None = None
) -> InvoiceLine | str:
    """Type one raw record (keyed by RAW_COLUMNS): the line, or the quarantine reason's name.

    Only the field checks apply here; line-level reasons (empty line, field count, quotes)
    belong to whoever split the text into fields. `invoice_ts_range` bounds InvoiceDate
    (inclusive); without it any real date passes.
    """
    fields: dict[str, str | None] = {}
    # clean_text, inlined: the streaming consumer's hot loop (docs/benchmarks.md).
    for name in RAW_COLUMNS:
        value = record.get(name)
        fields[name] = None if value is None else value.strip(" ") or None
    invoice_ts: datetime | None = None
    for check in FIELD_CHECKS:
        value = fields[check.field]
        if check.kind == "invoice_date":  # parsed once, for the check and the line
            invoice_ts = parse_invoice_date(value)
            if invoice_ts is None:
                return check.reason
        elif check.kind == "invoice_date_range":
            if not in_range(invoice_ts, invoice_ts_range):
                return check.reason
        elif not field_check_passes(check, value):
            return check.reason
    assert invoice_ts is not None  # FIELD_CHECKS holds the date's check
    return InvoiceLine(
        invoice_no=fields["InvoiceNo"] or "",
        stock_code=fields["StockCode"] or "",
        description=clean_description(record.get("Description")),
        quantity=int(fields["Quantity"] or ""),
        unit_price=Decimal(fields["UnitPrice"] or "").quantize(_FOUR_PLACES),
        invoice_ts=invoice_ts,
        customer_id=normalize_customer_id(fields["CustomerID"]),
        country=fields["Country"] or "",
    )


def in_range(invoice_ts: datetime | None, bounds: tuple[datetime, datetime] | None) -> bool:
    """Whether a parsed InvoiceDate is within the run's bounds (inclusive); no bounds: yes."""
    return bounds is None or (invoice_ts is not None and bounds[0] <= invoice_ts <= bounds[1])


def field_check_passes(check: FieldCheck, value: str | None) -> bool:
    if check.kind == "required":
        return value is not None
    if check.kind == "pattern":
        return value is not None and _PATTERNS[check.pattern].match(value) is not None
    if check.kind == "no_control":
        return value is None or _CONTROL_RE.search(value) is None
    if check.kind == "invoice_date":
        return parse_invoice_date(value) is not None
    if check.kind == "invoice_date_range":
        return True  # needs the run's bounds: parse_record checks it
    raise ValueError(f"field check {check.reason!r} has an unknown kind {check.kind!r}")


def _rule_predicate(rule: FilterRule) -> Callable[[Any], bool]:
    """A rule's test of its field's value."""
    if rule.op == "starts_with":
        prefix = str(rule.operand).upper()
        return lambda value: str(value).upper().startswith(prefix)
    if rule.op == "at_most":
        limit = rule.operand
        return lambda value: bool(value <= limit)
    raise ValueError(f"filter rule {rule.name!r} has an unknown op {rule.op!r}")


# Each rule with its field and its test, built once (the streaming consumer's hot loop).
_RULE_TESTS = tuple((rule, rule.field, _rule_predicate(rule)) for rule in FILTER_RULES)


def first_matching_rule(line: InvoiceLine) -> FilterRule | None:
    for rule, field_name, test in _RULE_TESTS:
        if test(getattr(line, field_name)):
            return rule
    return None
