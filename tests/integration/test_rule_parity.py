"""The two interpreters of the rules agree: Spark (batch) and plain Python (streaming), each
through the parser that runs in its path (Spark's from_csv, the stream's CSV body parser)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from retail_pipeline import multiline, rules, transforms
from retail_pipeline.stream import body
from tests.conftest import BAD_INPUT_CSV, SAMPLE_CSV
from tests.integration.parity import python_outcome, spark_outcome


@pytest.mark.parametrize("path", [SAMPLE_CSV, BAD_INPUT_CSV], ids=lambda p: p.name)
def test_spark_and_python_classify_every_line_alike(spark: SparkSession, path: Path) -> None:
    text = path.read_text(encoding="utf-8-sig")
    header, *lines = text.splitlines()
    frame = spark.createDataFrame(
        [("file:///x.csv", line) for line in lines], "source_file string, line string"
    )
    classified = frame.transform(transforms.classify_lines, header_lines={header}).collect()
    mismatches = []
    for row in classified:
        spark_side, python_side = spark_outcome(row), python_outcome(row["line"])
        if spark_side != python_side:
            mismatches.append((row["line"], spark_side[:2], python_side[:2]))
    assert len(classified) == len(lines)
    assert mismatches == []


GOOD = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"
# Each line-level reason the stream can give, several ways, and records read whole: each
# physical line of the body, or record, by the reason both paths must give it.
LINE_LEVEL_CASES: list[tuple[str, str | None]] = [
    (GOOD, None),
    (GOOD.replace("HOLDER", "HOLDER \ufffd"), "invalid_encoding"),
    ("\ufffd", "invalid_encoding"),
    ("", "empty_line"),
    ("   ", "empty_line"),
    ('536365,"85123A,X,6,12/1/2010 8:26,2.55,17850,United Kingdom', "unclosed_quote"),
    ('536365,85123A,X,6,12/1/2010 8:26,2.55,17850,"United Kingdom', "unclosed_quote"),
    ('536365,"85123A"X,X,6,12/1/2010 8:26,2.55,17850,United Kingdom', "misplaced_quote"),
    ('536365,85123A,X "Y",6,12/1/2010 8:26,2.55,17850', "misplaced_quote"),
    ("536365,85123A,X,6,12/1/2010 8:26,2.55,17850", "wrong_field_count"),
    (GOOD + ",", "wrong_field_count"),
    ('536365,85123A,"X,Y",6,12/1/2010 8:26,2.55,17850', "wrong_field_count"),
    # Not before a line ending in `,"United Kingdom`: the two would be one valid record.
    ('"', "unclosed_quote"),
    ("x", "wrong_field_count"),
    # A quoted Description over two and three lines; a quoted Country over two.
    ('536370,22728,"ALARM CLOCK\r\nBAKELIKE PINK",24,12/1/2010 8:45,3.75,12583,France', None),
    ('536370,22726,"ALARM\nBAKELIKE, GREEN\rAND BLUE",24,12/1/2010 8:45,3.75,12583,France', None),
    ('536370,22726,X,24,12/1/2010 8:45,3.75,12583,"FRA\nNCE"', "control_character_in_country"),
    # Quotes that close over lines but make no record: each line as it is.
    ('536370,"22728\nX,1",24,12/1/2010 8:45,3.75,12583,France', "unclosed_quote"),
]


def test_spark_and_the_stream_give_each_line_level_reason_alike(spark: SparkSession) -> None:
    text = "".join(f"{line}\r\n" for line, _ in LINE_LEVEL_CASES)
    streamed = body.parse_csv(f"{rules.RAW_HEADER}\r\n{text}")
    # The batch job's lines: the same records, read whole by the one joiner.
    records = [
        multiline.LINE_BREAK.sub("", r.text) for r in multiline.join_records(multiline.split_lines(text))
    ]
    frame = spark.createDataFrame([("file:///x.csv", r) for r in records], "source_file string, line string")
    classified = frame.transform(transforms.classify_lines, header_lines={rules.RAW_HEADER}).collect()
    assert len(streamed) == len(classified) == len(records)

    def reason_of(found: body.BodyRecord) -> str | None:
        if found.record is None:
            return found.reason
        parsed = rules.parse_record(found.record)
        return parsed if isinstance(parsed, str) else None

    batch_reasons = [row["reason"] for row in classified]
    stream_reasons = [reason_of(found) for found in streamed]
    assert batch_reasons == stream_reasons
    # Per reason, against the cases: each reason is given to exactly its lines.
    single = [reason for line, reason in LINE_LEVEL_CASES if "\n" not in line]
    # The three records read whole, and the last case's two lines as they are.
    expected = (
        Counter(single)
        + Counter([None, None, "control_character_in_country"])
        + Counter({"unclosed_quote": 2})
    )
    assert Counter(batch_reasons) == expected
    line_level = {check.name for check in rules.LINE_REASONS} - {"truncated_last_line"}
    assert line_level <= set(batch_reasons)  # every reason the stream can give is exercised
    published = [row["description"] for row in classified if row["outcome"] == "published"]
    assert "ALARM CLOCK BAKELIKE PINK" in published and "ALARM BAKELIKE, GREEN AND BLUE" in published


def date_texts() -> list[str]:
    """InvoiceDate texts around every range edge of both accepted shapes, and near misses."""
    texts = [
        f"{month}/{day}/{year} {hour}:{minute}"
        for month in ("0", "1", "01", "2", "12", "13", "00")
        for day in ("0", "1", "28", "29", "30", "31", "32")
        for year in ("1000", "2010", "2012", "9999")
        for hour in ("0", "08", "23", "24")
        for minute in ("00", "59", "60")
    ]
    texts += [
        f"{year}-{month}-{day} {hour}:{minute}:{second}"
        for year in ("1000", "2011", "2012")
        for month in ("00", "01", "02", "12", "13")
        for day in ("00", "01", "29", "30", "31")
        for hour in ("00", "23", "24")
        for minute in ("00", "59", "60")
        for second in ("00", "59", "60")
    ]
    near_misses = [
        "12/1/2010 8:26:00",
        "12/1/10 8:26",
        "12/1/0999 8:26",
        "12/1/2010 8:6",
        "12/1/2010T8:26",
        "12-1-2010 8:26",
        "123/1/2010 8:26",
        "12/1/2010  8:26",
        "12/1/2010 8:26\u0085",
        "12/1/2010 8:26\u2028",
        "12/1/2010 8:26\t",
        "\t12/1/2010 8:26",
        "2011-12-09T12:50:07",
        "2011-12-09 12:50",
        "2011-12-09",
        "2011-1-09 12:50:07",
        "+2011-12-09 12:50:07",
        "2011-12-09 12:50:07Z",
        "2011-12-09 12:50:07.5",
        "\uff12011-12-09 12:50:07",
        "",
    ]
    return texts + near_misses


def test_spark_and_python_read_invoice_dates_alike(spark: SparkSession) -> None:
    texts = date_texts()
    frame = spark.createDataFrame([(text,) for text in texts], "text string")
    rows = frame.select("text", transforms.invoice_date(frame["text"]).alias("ts")).collect()
    mismatches = [(row.text, row.ts) for row in rows if row.ts != rules.parse_invoice_date(row.text)]
    assert len(rows) == len(texts)
    assert mismatches == []
    # The grid holds real dates of both shapes, and impossible ones.
    parsed = [row.ts for row in rows]
    assert sum(ts is not None for ts in parsed) > 500 and sum(ts is None for ts in parsed) > 2000


HARDENING_LINES = [
    "9" * 64 + ",85123A,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "9" * 65 + ",85123A,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "536365," + "A" * 65 + ",HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    # Key lengths count characters (code points), not bytes or UTF-16 units.
    "536365," + "\U0001f600" * 64 + ",HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "536365," + "\u00e9" * 65 + ",HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "5363\x0065,85123A,HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "536365,85123A,\tWHITE\x00\x07HEART\x1b,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850\x85,United Kingdom",
    "536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850,United\x7fKingdom",
    "536365,85123A,\u00c9CLAIR \u2028 \U0001f600,6,12/1/2010 8:26,2.55,17850,France",
]


def test_spark_and_python_agree_on_keys_and_control_characters(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [("file:///x.csv", line, "run-1") for line in HARDENING_LINES],
        "source_file string, line string, run_id string",
    )
    classified = frame.transform(transforms.classify_lines, header_lines={rules.RAW_HEADER}).collect()
    got = [
        (
            row["line"],
            row["outcome"],
            row["reason"],
            row["description"] if row["outcome"] != "quarantined" else None,
        )
        for row in classified
    ]
    expected = []
    for line in HARDENING_LINES:
        outcome, reason, values = python_outcome(line)
        expected.append((line, outcome, reason, values[2] if values else None))
    assert sorted(got) == sorted(expected)
    reasons = {reason for _, _, reason, _ in got}
    assert {"invalid_invoice_no", "invalid_stock_code", "control_character_in_key"} <= reasons


TAIL = ",6,12/1/2010 8:26,2.55,17850,United Kingdom"
# Lines whose quoting Spark's parser (univocity) and Python's csv once read apart, by the
# reason both paths must now give them (None: well-formed, published with the same values).
QUOTING_CASES: list[tuple[str, str | None]] = [
    ('536365,"85123A"X,HEART' + TAIL, "misplaced_quote"),  # text after a closing quote
    ('536365,85123A,"HEART"""X' + TAIL, "misplaced_quote"),
    ('536365,85123A,""HEART' + TAIL, "misplaced_quote"),  # "" opening an unquoted field
    ('536365,85123A,HEART ""7""' + TAIL, "misplaced_quote"),  # "" inside an unquoted field
    ('536365,85123A,7" FRAME 8" X' + TAIL, "misplaced_quote"),  # a quote inside an unquoted field
    ('536365,85123A,"HEART" ' + TAIL, "misplaced_quote"),  # a space after a quoted field
    ('536365,85123A, "HEART"' + TAIL, "misplaced_quote"),  # a space before a quoted field
    ('536365,85123A,"HEART"\t' + TAIL, "misplaced_quote"),
    ('536365,85123A,HE"AR"T' + TAIL, "misplaced_quote"),  # quotes around part of a field
    ('"5363"65,85123A,HEART' + TAIL, "misplaced_quote"),
    ('536365,85123A,"A,"B' + TAIL, "misplaced_quote"),
    ('536365,85123A,"HEART\x1a"\x1a"X"' + TAIL, "misplaced_quote"),  # around a joined break
    ('536365,85123A,"HE\\"ART\\""' + TAIL, "misplaced_quote"),  # a backslash is no escape
    ("536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850," + '"UK"X', "misplaced_quote"),
    ("536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850," + '"U"K"', "unclosed_quote"),
    ('536365,85123A,"' + TAIL, "unclosed_quote"),  # a lone quote
    # Well formed: quoted whole, inner quotes doubled; the same values on both paths.
    ('536365,85123A,"7"" FRAME ""X"""' + TAIL, None),
    ('536365,85123A,""""' + TAIL, None),
    ('536365,85123A,""' + TAIL, None),
    ('"536365","85123A","HEART","6","12/1/2010 8:26","2.55","17850","United Kingdom"', None),
    ('536365,85123A,"HEART\x1aRED"' + TAIL, None),
    ('536365,85123A,"A,B,C"' + TAIL, None),
    ('536365,85123A," HEART "' + TAIL, None),
    # Text the CSV parser of Spark reads as the end of its input (U+FFFF, a noncharacter).
    ("536365,85123A,HEART\uffffRED" + TAIL, "invalid_encoding"),
]


def test_spark_and_python_read_every_quoting_alike(spark: SparkSession) -> None:
    lines = [line for line, _ in QUOTING_CASES]
    frame = spark.createDataFrame(
        [("file:///x.csv", line) for line in lines], "source_file string, line string"
    )
    classified = frame.transform(transforms.classify_lines, header_lines={rules.RAW_HEADER}).collect()
    assert [row["line"] for row in classified] == lines
    for row, (line, reason) in zip(classified, QUOTING_CASES, strict=True):
        assert spark_outcome(row) == python_outcome(line), line
        assert row["reason"] == reason, line
    published = {row["description"] for row in classified if row["outcome"] == "published"}
    assert {'7" FRAME "X"', '"', "HEART RED", "A,B,C", "HEART"} <= published


def test_a_long_line_is_classified_not_a_crash(spark: SparkSession) -> None:
    """Spark's parser fails the whole job on a line of more than 20,480 fields; 160 KiB lines
    of commas, of quoted fields and of doubled quotes are classified like any other."""
    kib_160 = 160 * 1024
    description = '"' + '""' * (kib_160 // 2) + '"'
    lines = [
        "," * kib_160,
        '"",' * (kib_160 // 3),
        "536365,85123A," + description + TAIL,
        '536365,85123A,"' + "," * kib_160 + '"' + TAIL,
        '536365,85123A,X"' + "," * kib_160 + '"' + TAIL,
        "536365,85123A," + description + "X" + TAIL,
    ]
    frame = spark.createDataFrame(
        [("file:///x.csv", line) for line in lines], "source_file string, line string"
    )
    classified = frame.transform(transforms.classify_lines, header_lines={rules.RAW_HEADER}).collect()
    reasons = [row["reason"] for row in classified]
    assert reasons == [python_outcome(line)[1] for line in lines]
    assert reasons == [
        "wrong_field_count",
        "wrong_field_count",
        None,
        None,
        "misplaced_quote",
        "misplaced_quote",
    ]
    assert classified[2]["description"] == '"' * (kib_160 // 2)
