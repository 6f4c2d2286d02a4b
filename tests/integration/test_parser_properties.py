"""Property tests of both parsers (issue #16): the batch job's (Spark) and the streaming path's
(plain Python). Arbitrary bytes and rows never make them raise, every line is accounted for,
and the two agree on every generated line.

Examples are few and hold many lines each, so Spark runs few jobs; `derandomize=True` makes
every run (and CI) draw the same examples. No shrinking: a failure lists every line that
disagreed, which is smaller than what shrinking through Spark jobs would give in minutes.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from retail_pipeline import batch, limits, multiline, rules, transforms
from retail_pipeline.config import BatchSettings, QualitySettings
from retail_pipeline.inputs import InputError
from retail_pipeline.stream import body
from tests.integration.parity import CONTROL, LINE_BREAKS, python_outcome, spark_outcome

pytestmark = pytest.mark.integration

# A fixed InvoiceDate range, so the range check takes part (the job takes it from the config).
BOUNDS = (datetime(2010, 12, 1), datetime(2011, 12, 9, 23, 59, 59))
LINE_REASONS = tuple(reason.name for reason in rules.LINE_REASONS)

SPARK_PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
PYTHON_PROPERTY = settings(SPARK_PROPERTY, max_examples=300)


# ---- the two readings of one line


def written_as_csv(fields: list[str], *, quoting: int = csv.QUOTE_MINIMAL) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="", quoting=quoting).writerow(fields)
    return buffer.getvalue()


def classify_in_spark(spark: SparkSession, lines: list[str]) -> list[Any]:
    frame = spark.createDataFrame(
        [("file:///x.csv", line) for line in lines], "source_file string, line string"
    )
    return frame.transform(
        transforms.classify_lines, header_lines={rules.RAW_HEADER}, invoice_ts_range=BOUNDS
    ).collect()


# ---- strategies: rows as exports, spreadsheets and broken systems write them

REALISTIC = {
    "InvoiceNo": ["536365", "581587", "C536379", "c536383", "A563185", "a563186", "5363 65", ""],
    "StockCode": ["85123A", "22139", "POST", "D", "M", "BANK CHARGES", ""],
    "Description": [
        "WHITE HANGING HEART T-LIGHT HOLDER",
        'RECORD FRAME 7" SINGLE SIZE ',
        "AIRLINE LOUNGE,METAL SIGN",
        "CAFÉ CRÈME BRÛLÉE €",
        "",
    ],
    "Quantity": [
        "6",
        "-1",
        "0",
        "+12",
        "007",
        "999999999",
        "1000000000",
        "2147483647",
        "6.0",
        "1e3",
        "1,000",
    ],
    "InvoiceDate": [
        "12/1/2010 8:26",
        "12/9/2011 12:50",
        "2011-12-09 12:50:00",
        "2010-12-01 00:00:00",
        "11/30/2010 23:59",
        "2011-12-10 00:00:00",
        "1/1/2099 0:00",
        "9999-12-31 23:59:59",
        "2/29/2011 10:19",
        "13/45/2010 10:19",
        "12/1/2010 8:26:00",
        "2010-12-01",
    ],
    "UnitPrice": [
        "2.55",
        ".5",
        "+.5",
        "0",
        "0.0000",
        "-11062.06",
        "12345678.1234",
        "123456789",
        "2.55555",
        "£2.55",
    ],
    "CustomerID": ["17850", "17850.0", "17850.00", "13047.5", ".0", "x.0", ""],
    "Country": ["United Kingdom", "France", "EIRE", "Côte d'Ivoire", "日本", "Unspecified", ""],
}
EDGE_CHARACTERS = [
    " ", "  ", ",", '"', '""', "\t", "\x00", "\x07", "\x0b", "\x1b", "\x1f", "\x7f", "\x85", "\x9f",
    "\xa0", "\u2028", "\u2029", "\ufeff", "\ufffd", "é", "€", "日", "😀", "0", ".", "-", "+", "/", ":",
    '"""', '" ', ' "', '"\t', "\x1a", "\uffff", "\\", '\\"',
]  # fmt: skip
# Quoting as broken exporters write it, put anywhere in a line: a quote in a plain field, text
# or a space beside a quoted field's quotes, doubled quotes outside quotes, a quoted part.
QUOTE_BITS = ['"', '""', '"""', '" ', ' "', '","', '"x"', '\\"', '"\x1a"']
# Any text a line can hold (Hadoop ends lines at \r and \n; no lone surrogates in a str Spark takes).
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12)


@st.composite
def field_value(draw: st.DrawFn, column: str) -> str:
    kind = draw(
        st.sampled_from(["realistic", "realistic", "realistic", "edited", "edge", "any", "part_quoted"])
    )
    if kind == "edge":
        return draw(st.sampled_from(EDGE_CHARACTERS))
    if kind == "part_quoted":  # quotes around a part of a realistic value (or all of it)
        value = draw(st.sampled_from(REALISTIC[column]))
        start = draw(st.integers(0, len(value)))
        end = draw(st.integers(start, len(value)))
        return f'{value[:start]}"{value[start:end]}"{value[end:]}'
    if kind == "any":
        return draw(ANY_TEXT)
    value = draw(st.sampled_from(REALISTIC[column]))
    if kind == "edited":
        position = draw(st.integers(0, len(value)))
        inserted = draw(st.one_of(st.sampled_from(EDGE_CHARACTERS), ANY_TEXT))
        value = value[:position] + inserted + value[position:]
    return value


# Rows that publish (or are filtered) as they are; most generated lines are one of them with a
# field or two changed, so most lines get far enough for their values to be compared.
GOOD_ROWS = [
    next(csv.reader([line]))
    for line in (
        "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom",
        '536477,22041,"RECORD FRAME 7"" SINGLE SIZE ",48,12/1/2010 12:27,2.1,16210.0,Côte d\'Ivoire',
        '581587,POST,"AIRLINE LOUNGE,METAL SIGN",+2,2011-12-09 12:50:00,.5,,EIRE',
        "C536379,D,Discount,-1,12/9/2011 12:50,27.50,14527,United Kingdom",
        "536414,22139,,56,12/1/2010 11:52,0,,United Kingdom",
    )
]


@st.composite
def text_line(draw: st.DrawFn) -> str:
    """One line: a good row with a field or two changed, a row of 7-9 drawn fields, written as
    a CSV writer would (or plainly joined), or a broken one: a stray quote, nothing, spaces,
    arbitrary text."""
    kind = draw(
        st.sampled_from(["edited"] * 5 + ["row"] * 3 + ["stray_quote", "quotes_anywhere", "blank", "any"])
    )
    if kind == "blank":
        return draw(st.sampled_from(["", " ", "   "]))
    if kind == "any":
        return draw(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n")))
    columns = list(rules.RAW_COLUMNS)
    if kind == "edited":
        fields = list(draw(st.sampled_from(GOOD_ROWS)))
        for index in draw(st.lists(st.integers(0, len(columns) - 1), max_size=2)):
            fields[index] = draw(field_value(columns[index]))
    else:
        count = draw(st.sampled_from([8] * 10 + [7, 9]))
        fields = [draw(field_value(columns[i % len(columns)])) for i in range(count)]
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_MINIMAL, csv.QUOTE_ALL, "joined"]))
    line = ",".join(fields) if quoting == "joined" else written_as_csv(fields, quoting=int(quoting))
    if kind == "stray_quote":
        position = draw(st.integers(0, len(line)))
        line = line[:position] + draw(st.sampled_from(['"', '""'])) + line[position:]
    if kind == "quotes_anywhere":
        for _ in range(draw(st.integers(1, 3))):
            position = draw(st.integers(0, len(line)))
            line = line[:position] + draw(st.sampled_from(QUOTE_BITS)) + line[position:]
    return line


LINES = st.lists(text_line(), min_size=40, max_size=60)


# ---- (b) Spark and plain Python classify every line alike


@settings(SPARK_PROPERTY, max_examples=6)
@given(lines=LINES)
@example(
    lines=[
        "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom",
        "5363\x0065,85123A,X,6,12/1/2010 8:26,2.55,17850,United Kingdom",
        "536365,85123A,\t\x07X\x00,6,12/1/2010 8:26,2.55,17850.0,United\x85Kingdom",
        "536365,85123A, \x07WHITE\tHEART\x00 ,6,12/1/2010 8:26,2.55,17850.0,United Kingdom",
        "536365,85123A,X,6,11/30/2010 23:59,2.55,17850,United Kingdom",
        # Each pattern's and bound's edges, both sides.
        "536365,85123A,X,999999999,12/9/2011 23:59,12345678.1234,17850.00,United Kingdom",
        "536365,85123A,X,1000000000,12/1/2010 8:26,2.55,17850,United Kingdom",
        "536365,85123A,X,6,12/1/2010 8:26,123456789,17850,United Kingdom",
        "536365,85123A,X,6,12/1/2010 8:26,2.55555,17850,United Kingdom",
        "536365,85123A,X,6,2011-12-10 00:00:00,2.55,17850,United Kingdom",
        "536365,85123A,X,6,12/1/2010 0:00,2.55,17850,United Kingdom",
        'C536379,D,"Discount, ""7""",-1,12/9/2011 12:50,27.5,14527,United Kingdom',
        "536365,85123A,X,6,12/1/2010 8:26,2.55,17850,United Kingdom,",
        '536365,"85123A,X,6,12/1/2010 8:26,2.55,17850,United Kingdom',
        "536365,85123A,CAF\ufffd,6,12/1/2010 8:26,2.55,17850,France",
        "",
        # Quoting the two parsers read apart (test_rule_parity.QUOTING_CASES has more).
        '536365,"85123A"X,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom',
        '536365,85123A,HEART "7",6,12/1/2010 8:26,2.55,17850,United Kingdom',
        '536365,85123A,"HEART" ,6,12/1/2010 8:26,2.55,17850,United Kingdom',
        '536365,85123A, "HEART",6,12/1/2010 8:26,2.55,17850,United Kingdom',
        '536365,85123A,""HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom',
        '536365,85123A,"7"" ""X""",6,12/1/2010 8:26,2.55,17850,"United Kingdom"',
        "536365,85123A,HEART\uffff,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    ]
)
def test_spark_and_python_classify_every_line_alike(spark: SparkSession, lines: list[str]) -> None:
    rows = classify_in_spark(spark, lines)
    assert [row["line"] for row in rows] == lines  # one row per line, none lost or added
    mismatches = []
    for row in rows:
        spark_side, python_side = spark_outcome(row), python_outcome(row["line"], bounds=BOUNDS)
        if spark_side != python_side:
            mismatches.append((row["line"], spark_side, python_side))
    assert mismatches == []
    for row in rows:
        assert row["outcome"] in {"published", "filtered", "quarantined"}
        assert (row["outcome"] == "published") == (row["reason"] is None)


@PYTHON_PROPERTY
@given(line=text_line())
def test_the_rules_split_well_quoted_lines_as_the_csv_module_does(line: str) -> None:
    """Only well-quoted lines are split, and as RFC 4180 (the csv module, strict) splits them;
    any other line holding a quote is named unclosed_quote or misplaced_quote, never split."""
    outcome = rules.split_line(line)
    if not rules.well_quoted(line):
        assert rules.csv_fields(line) is None
        assert outcome in {"invalid_encoding", "empty_line", "unclosed_quote", "misplaced_quote"}
    elif line:
        assert rules.csv_fields(line) == next(csv.reader([line], strict=True))
        assert isinstance(outcome, list) or outcome not in {"unclosed_quote", "misplaced_quote"}


# Java's `$` also matches before a final U+0085, U+2028 or U+2029 unless read with UNIX_LINES.
def test_a_number_ending_in_a_unicode_line_separator_is_malformed_in_both(spark: SparkSession) -> None:
    good = "536365,85123A,X,{quantity},12/1/2010 8:26,{price},{customer},United Kingdom"
    lines = [
        good.format(quantity="6\u2028", price="2.55", customer="17850"),
        good.format(quantity="6\x85", price="2.55", customer="17850"),
        good.format(quantity="6", price="2.55\u2029", customer="17850"),
        good.format(quantity="6", price="2.55", customer="17850.0\u2028"),
    ]
    rows = classify_in_spark(spark, lines)
    assert [spark_outcome(row) for row in rows] == [python_outcome(line, bounds=BOUNDS) for line in lines]
    assert all(
        row["quantity"] is not None and row["unit_price"] is not None
        for row in rows
        if row["outcome"] != "quarantined"
    )


# ---- (a) arbitrary bytes as an input file: the job never fails on them, every line counted


@st.composite
def line_bytes(draw: st.DrawFn, encoding: str) -> bytes:
    kind = draw(st.sampled_from(["text"] * 6 + ["mangled", "binary", "header"]))
    if kind == "binary":
        return draw(st.binary(max_size=60))
    if kind == "header":
        return draw(st.sampled_from([rules.RAW_HEADER, rules.UTF8_BOM + rules.RAW_HEADER])).encode(
            encoding, "replace"
        )
    data = draw(text_line()).encode(encoding, "replace")
    if kind == "mangled":
        position = draw(st.integers(0, len(data)))
        data = data[:position] + draw(st.binary(min_size=1, max_size=3)) + data[position:]
    return data


@st.composite
def input_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """(encoding, bytes): the header, then lines of text, mangled text and arbitrary bytes, with
    any of the three line breaks (or none at the end)."""
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "cp1252"]))
    lines = draw(st.lists(line_bytes(encoding), min_size=20, max_size=80))
    breaks = draw(
        st.lists(st.sampled_from([b"\r\n", b"\n", b"\r"]), min_size=len(lines) + 1, max_size=len(lines) + 1)
    )
    bom = rules.UTF8_BOM.encode() if encoding == "utf-8" and draw(st.booleans()) else b""
    data = bom + rules.RAW_HEADER.encode() + breaks[0]
    for line, line_break in zip(lines, breaks[1:], strict=True):
        data += line + line_break
    if draw(st.booleans()):
        data = data.removesuffix(breaks[-1])
    return encoding, data


def physical_lines(data: bytes, encoding: str) -> list[str]:
    """The lines Hadoop's reader gives: split at \\r\\n, \\r or \\n; a final break ends the
    last line; a UTF-8 byte-order mark at the start is dropped."""
    text = data.decode(encoding, "replace")
    if encoding == "utf-8":
        text = text.removeprefix(rules.UTF8_BOM)
    lines = LINE_BREAKS.split(text)
    return lines[:-1] if lines[-1] == "" else lines


def joined_records(data: bytes, encoding: str) -> list[str]:
    """The records the job reads: physical lines, those of a record whose quoted field spans
    lines read whole (joined on the bytes, as the job joins them), then decoded."""
    text = data.decode("latin-1")
    if encoding == "utf-8":
        text = text.removeprefix(rules.UTF8_BOM.encode().decode("latin-1"))
    joined = multiline.join_records(multiline.split_lines(text))
    return [LINE_BREAKS.sub("", r.text).encode("latin-1").decode(encoding, "replace") for r in joined]


@settings(SPARK_PROPERTY, max_examples=5)
@given(drawn=input_file())
def test_arbitrary_bytes_never_fail_the_job_and_every_line_is_counted(
    spark: SparkSession,
    tmp_path_factory: pytest.TempPathFactory,
    quality_off: QualitySettings,
    drawn: tuple[str, bytes],
) -> None:
    encoding, data = drawn
    folder = tmp_path_factory.mktemp("arbitrary")
    source = folder / "drop.csv"
    source.write_bytes(data)
    job = BatchSettings(str(source), str(folder / "out"), encoding, True)
    lines = physical_lines(data, encoding)
    try:
        report = batch.run(spark, job, quality=quality_off)
    except InputError as refusal:
        # The only refusal a file with the right header may get: mostly not in its encoding.
        message = str(refusal)
        assert "\n" not in message and str(source) in message
        assert f"not {codecs.lookup(encoding).name} text" in message
        undecodable = [line for line in data.split(b"\n") if not decodes(line, encoding)]
        assert len(undecodable) >= 2
        return
    headers = {rules.RAW_HEADER, rules.UTF8_BOM + rules.RAW_HEADER}
    records = joined_records(data, encoding)
    assert report.header_lines == sum(record in headers for record in records) >= 1
    assert report.read + report.header_lines == len(records)
    # A record read whole spans several lines: each of the others is accounted for there.
    assert len(records) + report.multiline_lines - report.multiline_records == len(lines)
    assert report.read == report.published + sum(report.filtered.values()) + sum(report.quarantined.values())
    stored = read_outputs(spark, folder / "out")
    assert stored["quarantined"] == sum(report.quarantined.values())
    assert len(stored["published"]) == report.published
    earliest, latest = quality_off.invoice_ts_bounds(datetime.now(UTC).replace(tzinfo=None))
    for row in stored["published"]:
        assert not any(
            CONTROL.search(row[c] or "") for c in ("invoice_no", "stock_code", "customer_id", "country")
        )
        assert earliest <= row["invoice_ts"] <= latest


def decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def read_outputs(spark: SparkSession, output: Path) -> dict[str, Any]:
    curated, quarantine = output / "curated", output / "quarantine"
    return {
        "published": spark.read.parquet(str(curated)).collect() if curated.exists() else [],
        "quarantined": spark.read.parquet(str(quarantine)).count() if quarantine.exists() else 0,
    }


# ---- (c) the streaming body parser: arbitrary bytes and JSON never raise but as documented

BODY_ERRORS = (body.BodyError, body.UnsupportedMediaTypeError)
CONTENT_TYPES = [
    None,
    "",
    "text/csv",
    "text/csv; charset=utf-8",
    "application/csv",
    "application/json",
    "application/vnd.api+json",
    "text/plain",
    "application/octet-stream",
    "image/png",
]


@PYTHON_PROPERTY
@given(
    content_type=st.sampled_from(CONTENT_TYPES),
    raw=st.one_of(
        st.binary(max_size=400),
        st.lists(line_bytes("utf-8"), max_size=30).map(
            lambda lines: b"\r\n".join([rules.RAW_HEADER.encode(), *lines])
        ),
    ),
)
def test_the_body_parser_never_raises_on_arbitrary_bytes(content_type: str | None, raw: bytes) -> None:
    try:
        kind, records = body.read_body(raw, content_type, max_records=20)
    except BODY_ERRORS as error:
        assert str(error) and "\n" not in str(error)
        return
    assert records and kind in {"json", "csv"}
    positions = [record.position for record in records]
    assert positions == sorted(set(positions))
    for record in records:
        assert (record.record is None) != (record.reason is None)
        if record.record is not None:
            assert tuple(record.record) == rules.RAW_COLUMNS
    if kind == "csv":
        text = raw.decode("utf-8", "surrogateescape").removeprefix(rules.UTF8_BOM)
        # Each record by its first line's number: a line, or a quoted field's lines read whole.
        by_position, position = {}, 1
        for joined in multiline.join_records(multiline.split_lines(text), size=limits.utf8_bytes):
            by_position[position] = LINE_BREAKS.sub("", joined.text)
            position += joined.lines
        header, *rest = by_position.values()
        assert len(records) == len(rest) - rest.count(header)  # every record after the header
        assert {record.reason for record in records} <= {None, *LINE_REASONS}
        for record in records:
            line = by_position[record.position]
            # Bytes that were not UTF-8 (escaped to U+DC80..U+DCFF) fail their line, as in the job.
            if rules.REPLACEMENT_CHARACTER in line or any("\udc80" <= c <= "\udcff" for c in line):
                assert record.reason == "invalid_encoding", line


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
RAW_RECORDS = st.fixed_dictionaries(
    {},
    optional={
        name: st.one_of(
            st.sampled_from(REALISTIC[name]),
            st.none(),
            st.integers(),
            st.floats(allow_nan=False),
            st.booleans(),
        )
        for name in rules.RAW_COLUMNS
    },
)


def json_text(value: object, *, ascii_only: bool, spaced: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only, indent=1 if spaced else None)


@PYTHON_PROPERTY
@given(
    document=st.one_of(st.lists(st.one_of(RAW_RECORDS, JSON_VALUES), max_size=30), RAW_RECORDS, JSON_VALUES),
    ascii_only=st.booleans(),
    spaced=st.booleans(),
    bom=st.booleans(),
)
@example(document=[[[[[[[[[[1]]]]]]]]]] * 2, ascii_only=True, spaced=False, bom=False)
def test_the_body_parser_reads_any_json_element_by_element(
    document: object, ascii_only: bool, spaced: bool, bom: bool
) -> None:
    raw = (
        (rules.UTF8_BOM if bom else "") + json_text(document, ascii_only=ascii_only, spaced=spaced)
    ).encode()
    elements = document if isinstance(document, list) else [document]
    try:
        kind, records = body.read_body(raw, "application/json", max_records=20)
    except BODY_ERRORS as error:
        assert "\n" not in str(error)
        # Refused only as documented: no object, an empty list, or too many elements.
        assert not isinstance(document, list | dict) or elements == [] or len(elements) > 20
        return
    assert kind == "json"
    assert [record.position for record in records] == list(range(len(elements)))
    for record, element in zip(records, elements, strict=True):
        is_record = isinstance(element, dict) and all(
            not isinstance(element.get(name), bool | list | dict) for name in rules.RAW_COLUMNS
        )
        assert (record.record is not None) == is_record, (element, record)
        assert record.reason == (None if is_record else body.NOT_A_RECORD)


def test_a_body_nested_too_deeply_is_refused_not_a_crash() -> None:
    with pytest.raises(body.BodyError, match="JSON"):
        body.read_body(b"[" * 100_000 + b"]" * 100_000, "application/json")
