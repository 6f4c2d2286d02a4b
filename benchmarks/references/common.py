"""What the reference implementations share: the result, type helpers, accounting, the CLI.

How the lines reach each engine is in `line_scan` (DuckDB, pandas) and `polars_reference`.
Whatever an engine's CSV reader drops on its own (blank lines, lines with too many or too few
fields) is quarantined as `rejected_by_reader`, so read = published + filtered + quarantined
holds by counting; the published rows and revenue are what to compare with Spark.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Final

from benchmarks.references.line_scan import AccountingError, InputError, InputScan
from retail_pipeline import rules

__all__ = ["AccountingError", "InputError", "InputScan", "ReferenceResult", "build_result", "main"]

PARTITION_COLUMNS = rules.PARTITION_COLUMNS
# The job's curated columns less its lineage (source file, run id), which no reference writes.
CURATED_COLUMNS = tuple(c for c in rules.CURATED_COLUMNS if c not in rules.LINEAGE_COLUMNS)
REJECTED_BY_READER = "rejected_by_reader"
PARQUET_COMPRESSION: Final = "snappy"  # Spark's default, so file sizes and write costs compare


@dataclass(frozen=True)
class ReferenceResult:
    engine: str
    engine_version: str
    input: str
    output: str  # the curated dataset root: <output>/curated/invoice_year=/invoice_month=/
    read: int
    published: int
    filtered: Mapping[str, int]
    quarantined: Mapping[str, int]
    published_revenue: Decimal
    durations_s: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def to_json(self) -> str:
        data = asdict(self) | {"published_revenue": str(self.published_revenue)}
        return json.dumps(data | {"quarantined_total": self.quarantined_total}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ReferenceResult:
        data = json.loads(text)
        data.pop("quarantined_total", None)
        data["published_revenue"] = Decimal(data["published_revenue"])
        data["notes"] = tuple(data.get("notes", ()))
        return cls(**data)


def decimal_type(ddl: str) -> tuple[int, int]:
    """(precision, scale) of a rules decimal type written as Spark DDL, e.g. "decimal(12,4)"."""
    match = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", ddl.strip().lower())
    if match is None:
        raise ValueError(f"not a decimal type: {ddl!r}")
    return int(match.group(1)), int(match.group(2))


def strptime_format(spark_pattern: str) -> str:
    """A rules.DateFormat's Spark pattern as a strptime format (DuckDB, pandas, polars).

    The rules' full-match regex decides the shape first, so %m accepting "1" or "01" is fine."""
    table = {"yyyy": "%Y", "M": "%m", "MM": "%m", "d": "%d", "dd": "%d", "H": "%H", "HH": "%H"}
    table |= {"mm": "%M", "ss": "%S"}

    def convert(token: re.Match[str]) -> str:
        if token.group(0) not in table:
            raise ValueError(f"no strptime equivalent for {token.group(0)!r} in {spark_pattern!r}")
        return table[token.group(0)]

    return re.sub(r"([A-Za-z])\1*", convert, spark_pattern)


def second_group(date_format: rules.DateFormat) -> int | None:
    """The regex group (1-based) holding the seconds, if the format has one. pandas and polars
    roll a leap second ("08:34:60") over to the next minute; Spark and Python reject it."""
    return date_format.groups.index("second") + 1 if "second" in date_format.groups else None


@dataclass(frozen=True)
class OutcomeGroups:
    """An engine's (outcome, reason, lines, revenue) groups, folded."""

    rows_seen: int
    published: int
    published_revenue: Decimal
    filtered: dict[str, int]
    quarantined: dict[str, int]

    @classmethod
    def fold(cls, groups: Iterable[tuple[str, str | None, int, Decimal | None]]) -> OutcomeGroups:
        rows_seen = published = 0
        revenue = Decimal(0)
        by_outcome: dict[str, dict[str, int]] = {"filtered": {}, "quarantined": {}}
        for outcome, reason, lines, group_revenue in groups:
            rows_seen += lines
            if outcome == "published":
                published, revenue = lines, group_revenue or Decimal(0)
            else:
                by_outcome[outcome][str(reason)] = lines
        revenue = Decimal(revenue).quantize(Decimal("0.0001"))
        return cls(rows_seen, published, revenue, by_outcome["filtered"], by_outcome["quarantined"])


def build_result(
    *,
    engine: str,
    engine_version: str,
    scan: InputScan,
    output: Path,
    counts: OutcomeGroups,
    durations_s: Mapping[str, float],
    notes: tuple[str, ...] = (),
) -> ReferenceResult:
    """Add the scan's set-aside lines and the lines the reader dropped to the engine's counts."""
    rejected = scan.lines_for_reader - counts.rows_seen
    if rejected < 0:
        raise AccountingError(f"{engine} read {counts.rows_seen:,} rows from {scan.lines_for_reader:,} lines")
    all_quarantined = Counter(scan.set_aside_reasons) + Counter(counts.quarantined)
    ordered = {name: all_quarantined[name] for name in rules.QUARANTINE_REASON_NAMES if all_quarantined[name]}
    if rejected:
        ordered[REJECTED_BY_READER] = rejected
    all_filtered = {name: int(counts.filtered.get(name, 0)) for name in rules.FILTER_RULE_NAMES}
    accounted = counts.published + sum(all_filtered.values()) + sum(ordered.values())
    if accounted != scan.read:
        raise AccountingError(f"{engine}: read {scan.read:,} lines but accounted for {accounted:,}")
    if scan.lone_carriage_returns:
        notes += (f"{scan.lone_carriage_returns:,} lone CR line breaks: Spark splits lines there",)
    return ReferenceResult(
        engine=engine,
        engine_version=engine_version,
        input=str(scan.path),
        output=str(output),
        read=scan.read,
        published=counts.published,
        filtered=all_filtered,
        quarantined=ordered,
        published_revenue=counts.published_revenue,
        durations_s=({"scan_input": scan.seconds} if scan.seconds is not None else {}) | dict(durations_s),
        notes=notes,
    )


def prepare_output(output: Path) -> Path:
    """<output>/curated, emptied (a reference run replaces its whole output)."""
    curated = output / "curated"
    shutil.rmtree(curated, ignore_errors=True)
    output.mkdir(parents=True, exist_ok=True)
    return curated


def main(run: Callable[[Path, Path], ReferenceResult], argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one reference implementation.")
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--result-json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    try:
        result = run(args.input, args.output)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.result_json:
        args.result_json.write_text(result.to_json())
    print(result.to_json())
    return 0


def exit_now(code: int) -> None:
    """Leave without interpreter finalisation, once everything is written and flushed.

    With pandas 2.2.3 and pyarrow 18.1.0, about one run in 20 aborted at exit ("terminate
    called without an active exception", SIGABRT, a worker thread garbage-collecting during
    finalisation) after its work was done: an exit code of 134 for a correct run would fail
    the benchmark. A process started only to run one reference has nothing left to clean up.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
