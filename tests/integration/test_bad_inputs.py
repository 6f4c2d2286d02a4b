"""The bad-input corpus (tests/data/bad_inputs, issue #16) through the batch job: what each
kind of bad file gets. Each class runs once in-process on the session's Spark (a module cache
of runs); three runs of the CLI at the end, each in its own JVM.

For every accepted class: the report's counts and reasons, and read = published + filtered +
quarantined; exactly the lines the plain-Python rules publish are published, none with a
control character or U+FFFD in its text or a date outside the run's bounds; every quarantine
record names its reason, its raw line and its source file. For every refused class: one line
naming the file and what to do, and an earlier output in the same folder unchanged.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from retail_pipeline import batch, multiline, rules
from retail_pipeline.config import BatchSettings, QualitySettings
from retail_pipeline.inputs import InputError
from retail_pipeline.ledger import canonical_uri
from retail_pipeline.report import RunReport
from tests.conftest import REPO_ROOT, SAMPLE_CSV
from tests.integration.test_parser_properties import CONTROL, LINE_BREAKS, python_outcome

pytestmark = pytest.mark.integration

CORPUS = REPO_ROOT / "tests" / "data" / "bad_inputs"
TEXT_COLUMNS = ("invoice_no", "stock_code", "description", "customer_id", "country")
CURATED_VALUES = rules.CURATED_COLUMNS[:9]  # the columns the plain-Python rules compute too
HEADERS = {rules.RAW_HEADER, rules.UTF8_BOM + rules.RAW_HEADER}


# ---- running the job and reading what it left


def job_settings(source: Path, output: Path, encoding: str = "utf-8") -> BatchSettings:
    return BatchSettings(str(source), str(output), encoding, True)


@dataclass
class Run:
    source: Path
    encoding: str
    output: Path
    report: RunReport
    bounds: tuple[datetime, datetime]
    published: list[Any] = field(default_factory=list)
    quarantined: list[Any] = field(default_factory=list)


def finished_run(
    spark: SparkSession, source: Path, output: Path, *, encoding: str, quality: QualitySettings
) -> Run:
    started = datetime.now(UTC).replace(tzinfo=None)
    report = batch.run(spark, job_settings(source, output, encoding), quality=quality)
    # The run's bounds lie between those of the times around it.
    earliest, _ = quality.invoice_ts_bounds(started)
    _, latest = quality.invoice_ts_bounds(datetime.now(UTC).replace(tzinfo=None))
    run = Run(source, encoding, output, report, (earliest, latest))
    if (output / "curated").exists():
        run.published = spark.read.parquet(str(output / "curated")).collect()
    if (output / "quarantine").exists():
        run.quarantined = spark.read.parquet(str(output / "quarantine")).collect()
    return run


@pytest.fixture(scope="module")
def corpus_run(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, quality_off: QualitySettings
) -> Callable[[str, str], Run]:
    """Runs a corpus file (or folder) once per module, gate off (its bounds still apply)."""
    runs: dict[tuple[str, str], Run] = {}

    def run(name: str, encoding: str = "utf-8") -> Run:
        if (name, encoding) not in runs:
            output = tmp_path_factory.mktemp("corpus") / "out"
            runs[name, encoding] = finished_run(
                spark, CORPUS / name, output, encoding=encoding, quality=quality_off
            )
        return runs[name, encoding]

    return run


def snapshot(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
        if not str(path.relative_to(folder)).startswith(skip)
    }


def decoded_lines(source: Path, encoding: str) -> list[str]:
    """The text lines of a corpus file as the job reads them: decompressed, decoded (bytes
    invalid in the encoding as U+FFFD), split where Hadoop's line reader splits, each record
    whose quoted field spans lines read whole (`multiline`)."""
    files = (
        sorted(p for p in source.iterdir() if not p.name.startswith((".", "_")))
        if source.is_dir()
        else [source]
    )
    lines: list[str] = []
    for path in files:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        elif path.suffix == ".bz2":
            data = bz2.decompress(data)
        text = data.decode(encoding, "replace")
        text = text.removeprefix(rules.UTF8_BOM) if encoding == "utf-8" else text
        lines += [LINE_BREAKS.sub("", r.text) for r in multiline.join_records(multiline.split_lines(text))]
    return lines


# ---- the accepted classes: a run, lines accounted for, only clean lines published


@dataclass(frozen=True)
class Accepted:
    name: str
    read: int
    published: int
    quarantined: dict[str, int]
    header_lines: int = 1
    encoding: str = "utf-8"
    # A text found in exactly one quarantined line's raw text -> that line's reason.
    marks: dict[str, str] = field(default_factory=dict)
    # Records whose quoted field spans lines, read whole, and the lines they span.
    multiline: tuple[int, int] = (0, 0)


ACCEPTED = [
    Accepted("cp1252_export.csv", 9, 9, {}, encoding="cp1252"),
    Accepted(
        "cp1252_undefined_byte.csv",
        10,
        9,
        {"invalid_encoding": 1},
        encoding="cp1252",
        marks={"UNDEFINED \ufffd BYTE": "invalid_encoding"},
    ),
    Accepted(
        "utf8_one_bad_byte.csv",
        8,
        7,
        {"invalid_encoding": 1},
        marks={"CAF\ufffd LATIN-1": "invalid_encoding"},
    ),
    Accepted("export.csv.gz", 9, 9, {}),
    Accepted("export.csv.bz2", 9, 9, {}),
    Accepted("two_members.csv.gz", 13, 13, {}, header_lines=2),
    Accepted(
        "control_in_keys.csv",
        10,
        4,
        {
            "control_character_in_key": 4,
            "control_character_in_country": 1,
            "control_character_in_customer_id": 1,
        },
        marks={
            "NUL IN INVOICE NO": "control_character_in_key",
            "ESC IN STOCK CODE": "control_character_in_key",
            "VERTICAL TAB IN STOCK CODE": "control_character_in_key",
            "TAB BEFORE INVOICE NO": "control_character_in_key",
            "DEL IN COUNTRY": "control_character_in_country",
            "NEL IN CUSTOMER ID": "control_character_in_customer_id",
        },
    ),
    Accepted("control_in_description.csv", 5, 5, {}),
    Accepted("header_only.csv", 0, 0, {}),
    Accepted("empty_after_header.csv", 0, 0, {}),
    Accepted("empty.csv", 0, 0, {}, header_lines=0),
    Accepted("concatenated_bom.csv", 4, 4, {}, header_lines=2),
    Accepted("multiline_description.csv", 5, 5, {}, multiline=(3, 7)),
    Accepted("multiline_description.csv.gz", 5, 5, {}, multiline=(3, 7)),
    Accepted("multiline_cp1252.csv", 3, 3, {}, encoding="cp1252", multiline=(1, 2)),
    Accepted(
        "stray_quote.csv",
        13,
        12,
        {"unclosed_quote": 1},
        marks={"STRAY QUOTE": "unclosed_quote"},
        multiline=(1, 2),
    ),
    Accepted(
        "misplaced_quote.csv",
        10,
        3,
        {"unclosed_quote": 2, "misplaced_quote": 5},
        marks={
            "TEXT AFTER A CLOSING QUOTE": "misplaced_quote",
            '7" X 5" UNQUOTED': "misplaced_quote",
            "SPACE BEFORE A QUOTED FIELD": "misplaced_quote",
            "SPACE AFTER A QUOTED FIELD": "misplaced_quote",
            "DOUBLED QUOTES OPEN A PLAIN FIELD": "misplaced_quote",
            '"ALARM "X" CLOCK': "unclosed_quote",
            'BAKELIKE PINK"': "unclosed_quote",
        },
    ),
    Accepted(
        "dates_out_of_range.csv",
        7,
        2,
        {"invoice_date_out_of_range": 5},
        marks={
            "BEFORE THE EARLIEST,": "invoice_date_out_of_range",
            "BEFORE THE EARLIEST ISO": "invoice_date_out_of_range",
            "YEARS AHEAD": "invoice_date_out_of_range",
            "THE LAST SECOND": "invoice_date_out_of_range",
            "THE FIRST YEAR": "invoice_date_out_of_range",
        },
    ),
    Accepted("stale_crc", 4, 4, {}),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda case: f"{case.name}-{case.encoding}")
def test_each_accepted_class_is_accounted_for_and_publishes_only_clean_lines(
    corpus_run: Callable[[str, str], Run], case: Accepted
) -> None:
    run = corpus_run(case.name, case.encoding)
    report = run.report
    assert report.status == "succeeded"
    assert (report.read, report.published, report.header_lines) == (
        case.read,
        case.published,
        case.header_lines,
    )
    assert dict(report.quarantined) == case.quarantined
    assert report.read == report.published + sum(report.filtered.values()) + sum(report.quarantined.values())
    stored = RunReport.from_json((run.output / "reports" / "run_report.json").read_text())
    assert (stored.read, stored.published, dict(stored.quarantined)) == (
        case.read,
        case.published,
        case.quarantined,
    )
    assert (stored.multiline_records, stored.multiline_lines) == case.multiline
    # Every physical line is a header, a record's, or one more line of a multi-line record.
    physical = physical_line_count(run.source, run.encoding)
    assert physical == report.read + report.header_lines + report.multiline_lines - report.multiline_records

    # Published: exactly what the plain-Python rules publish, and nothing unclean.
    lines = decoded_lines(run.source, run.encoding)
    assert sum(line in HEADERS for line in lines) == case.header_lines
    expected = [python_outcome(line, bounds=run.bounds) for line in lines if line not in HEADERS]
    assert Counter(tuple(row[c] for c in CURATED_VALUES) for row in run.published) == Counter(
        outcome.values for outcome in expected if outcome.outcome == "published"
    )
    assert_clean(run.published, run.bounds)

    # Quarantined: each line with its reason, its raw text and its source file.
    assert len(run.quarantined) == sum(case.quarantined.values())
    for row in run.quarantined:
        assert row["raw_line"] in lines
        assert row["source_file"] in source_uris(run.source)
        marks = [mark for mark in case.marks if mark in row["raw_line"]]
        assert len(marks) == 1, row["raw_line"]
        assert row["reason"] == case.marks[marks[0]]
        assert row["run_id"] == report.run_id


def physical_line_count(source: Path, encoding: str) -> int:
    files = (
        [p for p in source.iterdir() if not p.name.startswith((".", "_"))] if source.is_dir() else [source]
    )
    count = 0
    for path in files:
        data = path.read_bytes()
        data = (
            gzip.decompress(data)
            if path.suffix == ".gz"
            else bz2.decompress(data)
            if path.suffix == ".bz2"
            else data
        )
        count += sum(1 for _ in multiline.split_lines(data.decode("latin-1")))
    return count


def source_uris(source: Path) -> set[str]:
    files = source.iterdir() if source.is_dir() else [source]
    return {canonical_uri(path.as_uri()) for path in files}


def assert_clean(published: list[Any], bounds: tuple[datetime, datetime]) -> None:
    for row in published:
        for column in TEXT_COLUMNS:
            text = row[column] or ""
            assert not CONTROL.search(text) and rules.REPLACEMENT_CHARACTER not in text, (column, text)
        assert bounds[0] <= row["invoice_ts"] <= bounds[1]
        assert None not in (row["quantity"], row["unit_price"], row["revenue"])
        assert row["revenue"] == row["quantity"] * row["unit_price"]


# ---- what some classes publish, line by line

ACCENTED_DESCRIPTIONS = {
    "ALARM CLOCK BAKELIKE CAFÉ",
    "CRÈME BRÛLÉE SET",
    "GIFT VOUCHER £10",
    "EURO COIN PURSE €",
    "PÂTISSERIE TIN",
}


@pytest.mark.parametrize(
    ("name", "encoding"),
    [("cp1252_export.csv", "cp1252"), ("export.csv.gz", "utf-8"), ("export.csv.bz2", "utf-8")],
)
def test_non_ascii_text_is_published_as_written(
    corpus_run: Callable[[str, str], Run], name: str, encoding: str
) -> None:
    run = corpus_run(name, encoding)
    assert {row["description"] for row in run.published} >= ACCENTED_DESCRIPTIONS
    assert "Côte d'Ivoire" in {row["country"] for row in run.published}


def test_control_characters_in_a_description_become_one_space(corpus_run: Callable[[str, str], Run]) -> None:
    run = corpus_run("control_in_description.csv")
    assert {row["stock_code"]: row["description"] for row in run.published} == {
        "85123A": "WHITE HANGING HEART",
        "71053": "WHITE METAL LANTERN",
        "84406B": "CREAM CUPID  HEARTS",  # the \x1f became one space beside the space after it
        "84029G": None,  # nothing but control characters
        "84029E": "RED WOOLLY HOTTIE",
    }


def test_a_key_with_a_nul_keeps_it_in_the_quarantine_record(corpus_run: Callable[[str, str], Run]) -> None:
    run = corpus_run("control_in_keys.csv")
    (nul,) = [row for row in run.quarantined if "NUL IN INVOICE NO" in row["raw_line"]]
    assert nul["raw_line"].startswith("5363\x0065,")
    assert {row["description"] for row in run.published} == {
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "WHITE METAL LANTERN",
        "ASSORTED COLOUR BIRD ORNAMENT",
        "AIRLINE LOUNGE,METAL SIGN",
    }


@pytest.mark.parametrize(
    ("name", "encoding"), [("multiline_description.csv", "utf-8"), ("multiline_description.csv.gz", "utf-8")]
)
def test_a_quoted_description_with_line_breaks_is_published_once_on_one_line(
    corpus_run: Callable[[str, str], Run], name: str, encoding: str
) -> None:
    run = corpus_run(name, encoding)
    assert sorted((row["stock_code"], row["description"]) for row in run.published) == [
        ("22726", "ALARM CLOCK BAKELIKE, GREEN AND BLUE"),
        ("22727", "ALARM CLOCK BAKELIKE RED"),
        ("22728", "ALARM CLOCK BAKELIKE PINK"),
        ("71053", "WHITE METAL LANTERN"),
        ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER"),
    ]
    assert run.quarantined == []
    assert {row["source_file"] for row in run.published} == {canonical_uri((CORPUS / name).as_uri())}
    ledger = json.loads((run.output / "_ledger.json").read_text())
    (entry,) = ledger["sources"]
    assert (entry["read"], entry["published"], entry["quarantined"]) == (5, 5, 0)
    assert not list(run.output.rglob("multiline"))  # the joined copies went with the staging


def test_a_multi_line_record_in_a_windows_1252_export_keeps_its_accents(
    corpus_run: Callable[[str, str], Run],
) -> None:
    run = corpus_run("multiline_cp1252.csv", "cp1252")
    assert "CRÈME BRÛLÉE SET" in {row["description"] for row in run.published}
    assert "Côte d'Ivoire" in {row["country"] for row in run.published}


def test_a_stray_quote_quarantines_its_own_line_and_the_rest_is_read(
    corpus_run: Callable[[str, str], Run],
) -> None:
    run = corpus_run("stray_quote.csv")
    assert [(row["reason"], row["raw_line"]) for row in run.quarantined] == [
        ("unclosed_quote", '536365,85123A,"STRAY QUOTE,6,12/1/2010 8:26,2.55,17850,United Kingdom')
    ]
    assert len(run.published) == 12
    assert "ALARM CLOCK BAKELIKE PINK" in {row["description"] for row in run.published}


def test_misplaced_quotes_quarantine_their_lines_and_well_quoted_ones_publish(
    corpus_run: Callable[[str, str], Run],
) -> None:
    run = corpus_run("misplaced_quote.csv")
    assert run.report.multiline_records == 0  # quotes that make a misquoted record: no record
    assert 'RECORD FRAME 7" SINGLE SIZE' in {row["description"] for row in run.published}
    assert {row["reason"] for row in run.quarantined} == {"misplaced_quote", "unclosed_quote"}


def test_a_multi_line_record_run_twice_gives_the_same_output(
    spark: SparkSession, tmp_path: Path, corpus_run: Callable[[str, str], Run], quality_off: QualitySettings
) -> None:
    first = corpus_run("multiline_description.csv")
    output = tmp_path / "out"
    shutil.copytree(first.output, output)
    again = finished_run(
        spark, CORPUS / "multiline_description.csv", output, encoding="utf-8", quality=quality_off
    )
    assert (again.report.read, again.report.multiline_records) == (5, 3)
    rows = sorted(tuple(row[c] for c in CURATED_VALUES) for row in again.published)
    assert rows == sorted(tuple(row[c] for c in CURATED_VALUES) for row in first.published)


def test_a_re_delivered_file_beside_a_stale_checksum_is_read_as_it_is_now(
    corpus_run: Callable[[str, str], Run],
) -> None:
    assert (CORPUS / "stale_crc" / ".data.csv.crc").exists()  # Hadoop's side file, out of date
    run = corpus_run("stale_crc")
    quantities = {row["stock_code"]: row["quantity"] for row in run.published}
    assert quantities["84879"] == 33  # the re-delivered value; the checksum was of 32
    assert run.report.inputs == [f"file:{CORPUS / 'stale_crc' / 'data.csv'}"]


def test_out_of_range_dates_are_quarantined_and_the_gate_passes(
    spark: SparkSession, tmp_path: Path, quality_on: QualitySettings
) -> None:
    run = finished_run(
        spark, CORPUS / "dates_out_of_range.csv", tmp_path / "out", encoding="utf-8", quality=quality_on
    )
    assert run.report.status == "succeeded"
    assert run.report.quality["enabled"] is True and run.report.quality["success"] is True
    assert "skipped" not in run.report.quality
    assert dict(run.report.quarantined) == {"invoice_date_out_of_range": 5}
    assert sorted(row["invoice_ts"] for row in run.published) == [
        datetime(2010, 12, 1, 0, 0),
        datetime(2011, 12, 9, 12, 50),
    ]


def test_the_latest_accepted_date_is_the_run_start_plus_the_tolerance(
    spark: SparkSession, tmp_path: Path, quality_off: QualitySettings
) -> None:
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    line = "536365,85123A,{name},6,{when:%Y-%m-%d %H:%M:%S},2.55,17850,United Kingdom\r\n"
    source = tmp_path / "live_shop.csv"
    source.write_text(
        rules.RAW_HEADER
        + "\r\n"
        + line.format(name="AN HOUR AGO", when=now - timedelta(hours=1))
        + line.format(name="WITHIN THE TOLERANCE", when=now + timedelta(hours=23))
        + line.format(name="BEYOND IT", when=now + timedelta(hours=25))
    )
    assert quality_off.future_tolerance_hours == 24 and quality_off.invoice_ts_max is None
    run = finished_run(spark, source, tmp_path / "out", encoding="utf-8", quality=quality_off)
    assert {row["description"] for row in run.published} == {"AN HOUR AGO", "WITHIN THE TOLERANCE"}
    assert [(row["reason"], "BEYOND IT" in row["raw_line"]) for row in run.quarantined] == [
        ("invoice_date_out_of_range", True)
    ]

    # A fixed latest date instead (quality.invoice_ts_max), as for a historical backfill.
    fixed = dataclasses.replace(quality_off, invoice_ts_max="2011-12-09 23:59:59")
    backfill = finished_run(spark, source, tmp_path / "backfill", encoding="utf-8", quality=fixed)
    assert backfill.published == [] and dict(backfill.report.quarantined) == {"invoice_date_out_of_range": 3}


@pytest.mark.parametrize("name", ["header_only.csv", "empty_after_header.csv", "empty.csv"])
def test_a_header_only_input_is_a_run_of_no_lines_with_the_gate_on(
    spark: SparkSession, tmp_path: Path, quality_on: QualitySettings, name: str
) -> None:
    run = finished_run(spark, CORPUS / name, tmp_path / "out", encoding="utf-8", quality=quality_on)
    assert (run.report.status, run.report.read, run.report.published) == ("succeeded", 0, 0)
    assert run.report.quality["success"] is True
    assert run.published == [] and run.quarantined == []
    assert (tmp_path / "out" / "_ledger.json").exists()  # the source is recorded, with 0 lines


def test_invalid_utf8_of_every_shape_is_quarantined(corpus_run: Callable[[str, str], Run]) -> None:
    run = corpus_run("utf8_bad_bytes.csv")
    assert dict(run.report.quarantined) == {"invalid_encoding": 6}
    assert run.report.published == 10
    assert_clean(run.published, run.bounds)


# ---- refused inputs: one line naming the file and what to do; the earlier output unchanged


@pytest.fixture(scope="module")
def earlier_output(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, quality_off: QualitySettings
) -> Path:
    """An output folder one good run published into; tests copy it."""
    output = tmp_path_factory.mktemp("earlier") / "out"
    batch.run(spark, job_settings(CORPUS / "export.csv.gz", output), quality=quality_off)
    assert (output / "curated").is_dir()
    return output


REFUSED = [
    ("cp1252_export.csv", ["not utf-8 text", "it reads as cp1252: set batch.encoding: cp1252"]),
    ("cut.csv.gz", ["the .gz file ends early", "re-deliver it"]),
    ("export.csv.zip", [".zip files are not read", "decompress it or re-deliver it as .gz"]),
    ("export.csv.zst", [".zst files are not read", "decompress it or re-deliver it as .gz"]),
]


@pytest.mark.parametrize("refused", REFUSED, ids=lambda refused: refused[0])
def test_a_refused_input_names_the_file_and_what_to_do_and_keeps_the_earlier_output(
    spark: SparkSession,
    tmp_path: Path,
    earlier_output: Path,
    quality_off: QualitySettings,
    refused: tuple[str, list[str]],
) -> None:
    name, hints = refused
    output = tmp_path / "out"
    shutil.copytree(earlier_output, output)
    before = snapshot(output)
    with pytest.raises(InputError) as refusal:
        batch.run(spark, job_settings(CORPUS / name, output), quality=quality_off)
    message = str(refusal.value)
    assert "\n" not in message
    assert message.startswith(f"file:{CORPUS / name}: ")
    for hint in hints:
        assert hint in message
    assert snapshot(output) == before


def test_an_output_that_is_a_file_is_refused_before_anything_runs(
    spark: SparkSession, tmp_path: Path, quality_off: QualitySettings
) -> None:
    output = tmp_path / "out"
    output.write_bytes(b"not a folder\n")
    with pytest.raises(InputError) as refusal:
        batch.run(spark, job_settings(CORPUS / "export.csv.gz", output), quality=quality_off)
    assert str(refusal.value) == f"output {output} is a file, not a folder: give the job a folder to write to"
    assert output.read_bytes() == b"not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ---- a disk that fills up or turns read-only (a tmpfs: root on Linux only)


@dataclass
class SmallDisk:
    path: Path

    def used_bytes(self) -> int:
        stats = os.statvfs(self.path)
        return (stats.f_blocks - stats.f_bfree) * stats.f_frsize

    def resize(self, *, free_bytes: int) -> None:
        """Shrink (or grow) the disk to what it holds now plus `free_bytes`."""
        size_kb = (self.used_bytes() + free_bytes) // 1024 + 1
        subprocess.run(["mount", "-o", f"remount,size={size_kb}k", str(self.path)], check=True)

    def fill(self) -> None:
        """Leave no byte free."""
        with (self.path / "filler").open("wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    path = tmp_path / "disk"
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield SmallDisk(path)
    finally:
        # Lazily: a failed Spark write may still hold a file open there.
        subprocess.run(["umount", "-l", str(path)], check=False)


def bigger_input(folder: Path) -> Path:
    """The committed sample three times over (~2 MB): more than a nearly full disk takes."""
    source = folder / "three_samples.csv"
    header, *lines = SAMPLE_CSV.read_text(encoding="utf-8-sig").splitlines()
    source.write_text("\n".join([header, *lines * 3]) + "\n")
    return source


def test_a_disk_that_fills_up_mid_run_is_one_line_and_the_earlier_output_stays(
    spark: SparkSession, tmp_path: Path, small_disk: SmallDisk, quality_off: QualitySettings
) -> None:
    output = small_disk.path / "out"
    batch.run(spark, job_settings(CORPUS / "export.csv.gz", output), quality=quality_off)
    before = snapshot(output)
    small_disk.resize(free_bytes=128 * 1024)
    with pytest.raises(batch.StorageError) as failure:
        batch.run(spark, job_settings(bigger_input(tmp_path), output), quality=quality_off)
    assert str(failure.value) == (
        f"writing {output} failed: No space left on device: free space there (the previous output is"
        " unchanged) and run again"
    )
    assert snapshot(output) == before


def test_a_disk_full_before_the_run_is_one_line_and_the_earlier_output_stays(
    spark: SparkSession, tmp_path: Path, small_disk: SmallDisk, quality_off: QualitySettings
) -> None:
    output = small_disk.path / "out"
    batch.run(spark, job_settings(CORPUS / "export.csv.gz", output), quality=quality_off)
    small_disk.fill()
    before = snapshot(output)
    with pytest.raises(batch.StorageError, match="No space left on device"):
        batch.run(spark, job_settings(CORPUS / "export.csv.bz2", output), quality=quality_off)
    assert snapshot(output) == before


def test_a_read_only_output_is_one_line(
    spark: SparkSession, small_disk: SmallDisk, quality_off: QualitySettings
) -> None:
    output = small_disk.path / "out"
    batch.run(spark, job_settings(CORPUS / "export.csv.gz", output), quality=quality_off)
    small_disk.read_only()
    with pytest.raises(
        batch.StorageError, match="Read-only file system: write the output to a writable folder"
    ):
        batch.run(spark, job_settings(CORPUS / "export.csv.bz2", output), quality=quality_off)


# ---- the CLI as a user runs it (each run starts a JVM: three runs only)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retail_pipeline", "batch", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "lib"), "SPARK_LOCAL_IP": "127.0.0.1"},
        timeout=300,
    )


def gate_off_config(folder: Path) -> Path:
    """configs/local.yaml with the gate off: the gate's own runs are tested in-process."""
    text = (REPO_ROOT / "configs" / "local.yaml").read_text()
    assert text.count("\n  enabled: true\n") == 1
    config = folder / "gate_off.yaml"
    config.write_text(text.replace("\n  enabled: true\n", "\n  enabled: false\n"))
    return config


def summary(stdout: str) -> dict[str, str]:
    """The run summary's rows ("read      9") by label."""
    rows = [line.rsplit(None, 1) for line in stdout.splitlines() if line[:1].isalpha() and " " in line]
    return {label.strip(): value for label, value in rows}


def assert_one_error_line(stderr: str) -> str:
    """The one `error:` line, last on stderr, and no Python traceback (Spark's own ERROR log
    lines, Java traces included, may come before it)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.rstrip().splitlines()[-1] == errors[0]
    return errors[0]


def test_cli_refuses_a_windows_1252_export_with_exit_2_and_one_line(
    tmp_path: Path, earlier_output: Path
) -> None:
    """The default config (gate on), as a new user runs it on an Excel export."""
    output = tmp_path / "out"
    shutil.copytree(earlier_output, output)
    before = snapshot(output)
    result = cli("--input", str(CORPUS / "cp1252_export.csv"), "--output", str(output))
    assert result.returncode == 2
    error = assert_one_error_line(result.stderr)
    assert error.startswith(f"error: file:{CORPUS / 'cp1252_export.csv'}: not utf-8 text")
    assert error.endswith("; it reads as cp1252: set batch.encoding: cp1252")
    # The data, quarantine, ledger and reports as they were (lineage/ logs every run's events).
    assert snapshot(output, skip=("lineage",)) == before


def test_cli_reads_a_gzip_drop(spark: SparkSession, tmp_path: Path) -> None:
    output = tmp_path / "out"
    result = cli(
        "--config",
        str(gate_off_config(tmp_path)),
        "--input",
        str(CORPUS / "export.csv.gz"),
        "--output",
        str(output),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    counts = summary(result.stdout)
    assert (counts["read"], counts["published"]) == ("9", "9")
    assert spark.read.parquet(str(output / "curated")).count() == 9


def test_cli_runs_a_header_only_file_as_a_run_of_no_lines(tmp_path: Path) -> None:
    """The default config (gate on): it was exit 1 with UNABLE_TO_INFER_SCHEMA (#16)."""
    output = tmp_path / "out"
    result = cli("--input", str(CORPUS / "header_only.csv"), "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "error:" not in result.stderr
    assert re.search(r"^Run \S+: succeeded$", result.stdout, re.MULTILINE), result.stdout
    assert summary(result.stdout)["read"] == summary(result.stdout)["published"] == "0"
    assert RunReport.from_json((output / "reports" / "run_report.json").read_text()).header_lines == 1
