"""The bad-input corpus (tests/data/bad_inputs, issue #16) through the batch job: what each
kind of bad file gets. The classes that can share a run do (one run per encoding over a folder
of copies, each file its own source, told apart by its lines' source_file and its ledger
entry); a folder whose meaning is the folder itself and inputs of no data lines run alone.
One run of the CLI in its own JVM (the refusal: exit code and the one error line); the others
call the CLI's main in this process.

For every accepted class: its read, published, filtered and quarantined lines (ledger, quarantine
reasons) with read = published + filtered + quarantined, and each run's report the sum of its
classes'; exactly the lines the plain-Python rules publish are published, none with a control
character or U+FFFD in its text or a date outside the run's bounds; every quarantine record
names its reason, its raw line and its source file. For every refused class: one line naming
the file and what to do, and an earlier output in the same folder unchanged.
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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from retail_pipeline import batch, multiline, rules
from retail_pipeline.config import BatchSettings, QualitySettings
from retail_pipeline.inputs import InputError, select_inputs
from retail_pipeline.ledger import Ledger, canonical_uri
from retail_pipeline.report import RunReport
from retail_pipeline.storage import HadoopFileSystem
from tests.conftest import REPO_ROOT, SAMPLE_CSV
from tests.integration.job_process import assert_one_error_line, cli_main, suite_config
from tests.integration.parity import CONTROL, CURATED_VALUES, LINE_BREAKS, python_outcome

pytestmark = pytest.mark.integration

CORPUS = REPO_ROOT / "tests" / "data" / "bad_inputs"
TEXT_COLUMNS = ("invoice_no", "stock_code", "description", "customer_id", "country")
HEADERS = {rules.RAW_HEADER, rules.UTF8_BOM + rules.RAW_HEADER}


# ---- the accepted classes, and the runs they get


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
    Accepted(
        "utf8_bad_bytes.csv",
        16,
        10,
        {"invalid_encoding": 6},
        marks={
            "LONE CONTINUATION": "invalid_encoding",
            ",BYTE ": "invalid_encoding",
            "CONTINUATION BYTE IN A KEY": "invalid_encoding",
            "OVERLONG": "invalid_encoding",
            "ENCODED SURROGATE": "invalid_encoding",
            "LEAD BYTE ENDING THE LINE": "invalid_encoding",
        },
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

# Classes that get a run of their own, and whether the gate is on: a folder whose meaning is
# the folder itself; inputs of no data lines (a run of no lines, which the gate must pass).
RUN_ALONE = {"stale_crc": False, "header_only.csv": True, "empty_after_header.csv": True, "empty.csv": True}


def run_name(case: Accepted) -> str:
    """The run a class gets: its own, or its encoding's run of all the classes that share one."""
    return case.name if case.name in RUN_ALONE else f"together-{case.encoding}"


RUNS = {name: [case for case in ACCEPTED if run_name(case) == name] for name in map(run_name, ACCEPTED)}


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

    def ledger_entries(self) -> dict[str, dict[str, Any]]:
        ledger = json.loads((self.output / "_ledger.json").read_text())
        return {entry["source"]: entry for entry in ledger["sources"]}


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


@dataclass
class Share:
    """One corpus file's share of a run: its lines are those naming it as their source."""

    path: Path  # the file the run read (a copy, in a run of several classes)
    run: Run

    @property
    def uri(self) -> str:
        return canonical_uri(self.path.as_uri())

    @property
    def published(self) -> list[Any]:
        return [row for row in self.run.published if row["source_file"] == self.uri]

    @property
    def quarantined(self) -> list[Any]:
        return [row for row in self.run.quarantined if row["source_file"] == self.uri]

    @property
    def entry(self) -> dict[str, Any]:
        return self.run.ledger_entries()[self.uri]


class CorpusRuns:
    """The accepted classes' runs, each run once per module, gate off unless RUN_ALONE says
    on (the bounds apply either way)."""

    def __init__(
        self, spark: SparkSession, folders: pytest.TempPathFactory, quality: dict[bool, QualitySettings]
    ):
        self.spark, self.folders, self.quality = spark, folders, quality
        self.runs: dict[str, Run] = {}

    def run(self, name: str) -> Run:
        if name not in self.runs:
            cases = RUNS[name]
            folder = self.folders.mktemp(name)
            if name in RUN_ALONE:
                source = CORPUS / name
            else:
                source = folder / "in"
                source.mkdir()
                for case in cases:
                    shutil.copy2(CORPUS / case.name, source / case.name)
            self.runs[name] = finished_run(
                self.spark,
                source,
                folder / "out",
                encoding=cases[0].encoding,
                quality=self.quality[RUN_ALONE.get(name, False)],
            )
        return self.runs[name]

    def share(self, name: str, encoding: str = "utf-8") -> Share:
        (case,) = [case for case in ACCEPTED if (case.name, case.encoding) == (name, encoding)]
        run = self.run(run_name(case))
        if name in RUN_ALONE:
            (path,) = input_files(run.source)
        else:
            path = run.source / name
        return Share(path, run)


@pytest.fixture(scope="module")
def corpus(
    spark: SparkSession,
    tmp_path_factory: pytest.TempPathFactory,
    quality_off: QualitySettings,
    quality_on: QualitySettings,
) -> CorpusRuns:
    return CorpusRuns(spark, tmp_path_factory, {False: quality_off, True: quality_on})


def input_files(source: Path) -> list[Path]:
    """The files a run over `source` reads: the file, or the folder's files but hidden ones."""
    if not source.is_dir():
        return [source]
    return sorted(p for p in source.iterdir() if not p.name.startswith((".", "_")))


def snapshot(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
        if not str(path.relative_to(folder)).startswith(skip)
    }


def decompressed(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".bz2":
        return bz2.decompress(data)
    return data


def decoded_lines(path: Path, encoding: str) -> list[str]:
    """The text lines of a corpus file as the job reads them: decompressed, decoded (bytes
    invalid in the encoding as U+FFFD), split where Hadoop's line reader splits, each record
    whose quoted field spans lines read whole (`multiline`)."""
    text = decompressed(path).decode(encoding, "replace")
    text = text.removeprefix(rules.UTF8_BOM) if encoding == "utf-8" else text
    return [LINE_BREAKS.sub("", r.text) for r in multiline.join_records(multiline.split_lines(text))]


def physical_line_count(path: Path) -> int:
    return sum(1 for _ in multiline.split_lines(decompressed(path).decode("latin-1")))


# ---- the accepted classes: lines accounted for, only clean lines published


def totals(cases: list[Accepted]) -> dict[str, Any]:
    return {
        "read": sum(case.read for case in cases),
        "published": sum(case.published for case in cases),
        "quarantined": dict(sum((Counter(case.quarantined) for case in cases), Counter())),
        "header_lines": sum(case.header_lines for case in cases),
        "multiline": tuple(sum(case.multiline[i] for case in cases) for i in (0, 1)),
    }


def report_totals(report: RunReport) -> dict[str, Any]:
    return {
        "read": report.read,
        "published": report.published,
        "quarantined": dict(report.quarantined),
        "header_lines": report.header_lines,
        "multiline": (report.multiline_records, report.multiline_lines),
    }


@pytest.mark.parametrize("name", RUNS)
def test_each_run_reports_the_sum_of_its_classes_and_each_file_is_a_source(
    corpus: CorpusRuns, name: str
) -> None:
    run = corpus.run(name)
    report = run.report
    assert report.status == "succeeded"
    assert report_totals(report) == totals(RUNS[name])
    assert report.read == report.published + sum(report.filtered.values()) + sum(report.quarantined.values())
    stored = RunReport.from_json((run.output / "reports" / "run_report.json").read_text())
    assert report_totals(stored) == totals(RUNS[name])

    # Each input file is a source of its own: a ledger entry, and the lines naming it.
    sources = {canonical_uri(path.as_uri()) for path in input_files(run.source)}
    entries = run.ledger_entries()
    assert set(entries) == sources
    assert sum(entry["read"] for entry in entries.values()) == report.read
    assert {row["source_file"] for row in run.published + run.quarantined} <= sources
    assert len(run.quarantined) == sum(report.quarantined.values())
    assert {row["run_id"] for row in run.quarantined} <= {report.run_id}


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda case: f"{case.name}-{case.encoding}")
def test_each_accepted_class_is_accounted_for_and_publishes_only_clean_lines(
    corpus: CorpusRuns, case: Accepted
) -> None:
    share = corpus.share(case.name, case.encoding)
    entry = share.entry
    assert (entry["read"], entry["published"], entry["quarantined"]) == (
        case.read,
        case.published,
        sum(case.quarantined.values()),
    )
    assert entry["read"] == entry["published"] + entry["filtered"] + entry["quarantined"]
    # Every physical line is a header, a record's, or one more line of a multi-line record.
    records, spanned = case.multiline
    assert physical_line_count(share.path) == case.read + case.header_lines + spanned - records

    # Published: exactly what the plain-Python rules publish, and nothing unclean.
    lines = decoded_lines(share.path, case.encoding)
    assert sum(line in HEADERS for line in lines) == case.header_lines
    expected = [python_outcome(line, bounds=share.run.bounds) for line in lines if line not in HEADERS]
    assert Counter(tuple(row[c] for c in CURATED_VALUES) for row in share.published) == Counter(
        outcome.values for outcome in expected if outcome.outcome == "published"
    )
    assert_clean(share.published, share.run.bounds)

    # Quarantined: each line with its reason, its raw text and its source file.
    assert Counter(row["reason"] for row in share.quarantined) == Counter(case.quarantined)
    # (The JVM's decoder may make one U+FFFD of an invalid sequence where Python makes several.)
    raw_lines = {one_replacement_per_run(line) for line in lines}
    for row in share.quarantined:
        assert one_replacement_per_run(row["raw_line"]) in raw_lines
        marks = [mark for mark in case.marks if mark in row["raw_line"]]
        assert len(marks) == 1, row["raw_line"]
        assert row["reason"] == case.marks[marks[0]]


def one_replacement_per_run(text: str) -> str:
    return re.sub(f"{rules.REPLACEMENT_CHARACTER}+", rules.REPLACEMENT_CHARACTER, text)


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
def test_non_ascii_text_is_published_as_written(corpus: CorpusRuns, name: str, encoding: str) -> None:
    share = corpus.share(name, encoding)
    assert {row["description"] for row in share.published} >= ACCENTED_DESCRIPTIONS
    assert "Côte d'Ivoire" in {row["country"] for row in share.published}


def test_control_characters_in_a_description_become_one_space(corpus: CorpusRuns) -> None:
    share = corpus.share("control_in_description.csv")
    assert {row["stock_code"]: row["description"] for row in share.published} == {
        "85123A": "WHITE HANGING HEART",
        "71053": "WHITE METAL LANTERN",
        "84406B": "CREAM CUPID  HEARTS",  # the \x1f became one space beside the space after it
        "84029G": None,  # nothing but control characters
        "84029E": "RED WOOLLY HOTTIE",
    }


def test_a_key_with_a_nul_keeps_it_in_the_quarantine_record(corpus: CorpusRuns) -> None:
    share = corpus.share("control_in_keys.csv")
    (nul,) = [row for row in share.quarantined if "NUL IN INVOICE NO" in row["raw_line"]]
    assert nul["raw_line"].startswith("5363\x0065,")
    assert {row["description"] for row in share.published} == {
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "WHITE METAL LANTERN",
        "ASSORTED COLOUR BIRD ORNAMENT",
        "AIRLINE LOUNGE,METAL SIGN",
    }


@pytest.mark.parametrize("name", ["multiline_description.csv", "multiline_description.csv.gz"])
def test_a_quoted_description_with_line_breaks_is_published_once_on_one_line(
    corpus: CorpusRuns, name: str
) -> None:
    share = corpus.share(name)
    assert sorted((row["stock_code"], row["description"]) for row in share.published) == [
        ("22726", "ALARM CLOCK BAKELIKE, GREEN AND BLUE"),
        ("22727", "ALARM CLOCK BAKELIKE RED"),
        ("22728", "ALARM CLOCK BAKELIKE PINK"),
        ("71053", "WHITE METAL LANTERN"),
        ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER"),
    ]
    assert share.quarantined == []
    entry = share.entry
    assert (entry["read"], entry["published"], entry["quarantined"]) == (5, 5, 0)
    assert not list(share.run.output.rglob("multiline"))  # the joined copies went with the staging


def test_a_multi_line_record_in_a_windows_1252_export_keeps_its_accents(corpus: CorpusRuns) -> None:
    share = corpus.share("multiline_cp1252.csv", "cp1252")
    assert "CRÈME BRÛLÉE SET" in {row["description"] for row in share.published}
    assert "Côte d'Ivoire" in {row["country"] for row in share.published}


def test_a_stray_quote_quarantines_its_own_line_and_the_rest_is_read(corpus: CorpusRuns) -> None:
    share = corpus.share("stray_quote.csv")
    assert [(row["reason"], row["raw_line"]) for row in share.quarantined] == [
        ("unclosed_quote", '536365,85123A,"STRAY QUOTE,6,12/1/2010 8:26,2.55,17850,United Kingdom')
    ]
    assert len(share.published) == 12
    assert "ALARM CLOCK BAKELIKE PINK" in {row["description"] for row in share.published}


def test_misplaced_quotes_quarantine_their_lines_and_well_quoted_ones_publish(corpus: CorpusRuns) -> None:
    share = corpus.share("misplaced_quote.csv")
    # Quotes that close over a line break but make a misquoted record: two lines, no record
    # (a joined record would count as one line read).
    assert share.entry["read"] == physical_line_count(share.path) - 1 == 10
    assert 'RECORD FRAME 7" SINGLE SIZE' in {row["description"] for row in share.published}
    assert {row["reason"] for row in share.quarantined} == {"misplaced_quote", "unclosed_quote"}


def test_a_multi_line_record_run_twice_gives_the_same_output(
    spark: SparkSession, tmp_path: Path, corpus: CorpusRuns, quality_off: QualitySettings
) -> None:
    first = corpus.share("multiline_description.csv")
    output = tmp_path / "out"
    shutil.copytree(first.run.output, output)
    again = finished_run(spark, first.path, output, encoding="utf-8", quality=quality_off)
    assert (again.report.read, again.report.multiline_records) == (5, 3)

    def rows(published: list[Any]) -> Counter[tuple[Any, ...]]:
        return Counter(tuple(row[c] for c in ("source_file", *CURATED_VALUES)) for row in published)

    # Its lines as they were, and the other sources' lines kept.
    assert rows(again.published) == rows(first.run.published)
    assert Share(first.path, again).entry["read"] == 5


def test_the_joined_copies_are_gone_once_the_lines_are_staged(spark: SparkSession, tmp_path: Path) -> None:
    """The copies with multi-line records joined are read by the whole-record pass (and the
    quarantine pass), then deleted, though the whole-record pass left no quote open."""
    fs = HadoopFileSystem(spark)
    source = CORPUS / "multiline_description.csv"
    inputs = select_inputs(fs, str(source), Ledger(), incremental=False, encoding="utf-8").inputs
    staging = tmp_path / "staging"
    staged = batch.write_staging(
        spark,
        fs,
        inputs,
        job_settings(source, tmp_path / "out"),
        staging=str(staging),
        scope=batch.LineScope("run-1"),
        timer=batch.StageTimer(),
    )
    assert (staged.counts.read, staged.counts.multiline_records) == (5, 3)
    assert (staging / batch.LINES).is_dir()
    assert not (staging / batch.MULTILINE).exists()


def test_a_re_delivered_file_beside_a_stale_checksum_is_read_as_it_is_now(corpus: CorpusRuns) -> None:
    assert (CORPUS / "stale_crc" / ".data.csv.crc").exists()  # Hadoop's side file, out of date
    share = corpus.share("stale_crc")
    quantities = {row["stock_code"]: row["quantity"] for row in share.published}
    assert quantities["84879"] == 33  # the re-delivered value; the checksum was of 32
    assert share.run.report.inputs == [f"file:{CORPUS / 'stale_crc' / 'data.csv'}"]


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
def test_a_header_only_input_is_a_run_of_no_lines_with_the_gate_on(corpus: CorpusRuns, name: str) -> None:
    run = corpus.run(name)
    assert (run.report.status, run.report.read, run.report.published) == ("succeeded", 0, 0)
    assert run.report.quality["enabled"] is True and run.report.quality["success"] is True
    assert run.published == [] and run.quarantined == []
    assert (run.output / "_ledger.json").exists()  # the source is recorded, with 0 lines


# ---- refused inputs: one line naming the file and what to do; the earlier output unchanged


@pytest.fixture(scope="module")
def earlier_output(corpus: CorpusRuns) -> Path:
    """An output folder one good run published into (the UTF-8 classes' run); tests copy it."""
    output = corpus.run("together-utf-8").output
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
    spark: SparkSession,
    tmp_path: Path,
    earlier_output: Path,
    small_disk: SmallDisk,
    quality_off: QualitySettings,
) -> None:
    output = small_disk.path / "out"
    shutil.copytree(earlier_output, output)
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
    spark: SparkSession,
    tmp_path: Path,
    earlier_output: Path,
    small_disk: SmallDisk,
    quality_off: QualitySettings,
) -> None:
    output = small_disk.path / "out"
    shutil.copytree(earlier_output, output)
    small_disk.fill()
    before = snapshot(output)
    with pytest.raises(batch.StorageError, match="No space left on device"):
        batch.run(spark, job_settings(CORPUS / "export.csv.bz2", output), quality=quality_off)
    assert snapshot(output) == before


def test_a_read_only_output_is_one_line(
    spark: SparkSession, earlier_output: Path, small_disk: SmallDisk, quality_off: QualitySettings
) -> None:
    output = small_disk.path / "out"
    shutil.copytree(earlier_output, output)
    small_disk.read_only()
    with pytest.raises(
        batch.StorageError, match="Read-only file system: write the output to a writable folder"
    ):
        batch.run(spark, job_settings(CORPUS / "export.csv.bz2", output), quality=quality_off)


# ---- the CLI as a user runs it: a process of its own (a JVM) where the process is under test


def summary(stdout: str) -> dict[str, str]:
    """The run summary's rows ("read      9") by label."""
    rows = [line.rsplit(None, 1) for line in stdout.splitlines() if line[:1].isalpha() and " " in line]
    return {label.strip(): value for label, value in rows}


def test_cli_refuses_a_windows_1252_export_with_exit_2_and_one_line(
    spark: SparkSession, tmp_path: Path, earlier_output: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The local config (gate on), as a new user runs it on an Excel export."""
    output = tmp_path / "out"
    shutil.copytree(earlier_output, output)
    before = snapshot(output)
    config = suite_config(tmp_path, gate=True)
    code, _, stderr = cli_main(
        capsys, "--config", str(config), "--input", str(CORPUS / "cp1252_export.csv"), "--output", str(output)
    )
    assert code == 2
    error = assert_one_error_line(stderr)
    assert error.startswith(f"error: file:{CORPUS / 'cp1252_export.csv'}: not utf-8 text")
    assert error.endswith("; it reads as cp1252: set batch.encoding: cp1252")
    # The data, quarantine, ledger and reports as they were (lineage/ logs every run's events).
    assert snapshot(output, skip=("lineage",)) == before


def test_cli_reads_a_gzip_drop(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    config = suite_config(tmp_path, gate=False)
    code, stdout, stderr = cli_main(
        capsys, "--config", str(config), "--input", str(CORPUS / "export.csv.gz"), "--output", str(output)
    )
    assert code == 0, stderr
    assert "error:" not in stderr
    counts = summary(stdout)
    assert (counts["read"], counts["published"]) == ("9", "9")
    assert spark.read.parquet(str(output / "curated")).count() == 9


def test_cli_runs_a_header_only_file_as_a_run_of_no_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The gate on, as in the default config: it was exit 1 with UNABLE_TO_INFER_SCHEMA (#16)."""
    output = tmp_path / "out"
    config = suite_config(tmp_path, gate=True)
    code, stdout, stderr = cli_main(
        capsys, "--config", str(config), "--input", str(CORPUS / "header_only.csv"), "--output", str(output)
    )
    assert code == 0, stderr
    assert "error:" not in stderr
    assert re.search(r"^Run \S+: succeeded$", stdout, re.MULTILINE), stdout
    assert summary(stdout)["read"] == summary(stdout)["published"] == "0"
    assert RunReport.from_json((output / "reports" / "run_report.json").read_text()).header_lines == 1
