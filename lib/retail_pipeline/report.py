"""The run report: where every input line went, and how long each stage took."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from retail_pipeline import rules
from retail_pipeline.contract import (
    OUTCOME_FILTERED,
    OUTCOME_HEADER,
    OUTCOME_PUBLISHED,
    OUTCOME_QUARANTINED,
)


class AccountingError(RuntimeError):
    """Lines were lost or counted twice: read != published + filtered + quarantined."""


@dataclass(frozen=True)
class OutcomeCounts:
    """A run's line counts by outcome and reason."""

    header_lines: int
    read: int
    published: int
    published_revenue: Decimal
    filtered: Mapping[str, int]
    quarantined: Mapping[str, int]
    unclassified: int  # lines with no outcome: always 0 unless the classification has a bug
    # Records read whole across line breaks in a quoted field (each counts as one line read),
    # and the physical lines they spanned.
    multiline_records: int = 0
    multiline_lines: int = 0

    @classmethod
    def from_groups(
        cls, groups: Iterable[tuple[str | None, str | None, int, Decimal | None]]
    ) -> OutcomeCounts:
        """From (outcome, reason, lines, revenue) groups."""
        filtered = dict.fromkeys(rules.FILTER_RULE_NAMES, 0)
        quarantined: dict[str, int] = {}
        header = read = published = unclassified = 0
        revenue = Decimal(0)
        for outcome, reason, lines, group_revenue in groups:
            if outcome == OUTCOME_HEADER:
                header += lines
                continue
            read += lines
            if outcome == OUTCOME_PUBLISHED:
                published += lines
                revenue += group_revenue or Decimal(0)
            elif outcome == OUTCOME_FILTERED and reason in filtered:
                filtered[reason] += lines
            elif outcome == OUTCOME_QUARANTINED and reason in rules.QUARANTINE_REASON_NAMES:
                quarantined[reason] = quarantined.get(reason, 0) + lines
            else:
                unclassified += lines
        ordered = {name: quarantined[name] for name in rules.QUARANTINE_REASON_NAMES if name in quarantined}
        return cls(header, read, published, revenue, filtered, ordered, unclassified)

    @property
    def filtered_total(self) -> int:
        return sum(self.filtered.values())

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


@dataclass(frozen=True)
class RunReport:
    run_id: str
    status: str
    inputs: list[str]
    output: str
    read: int
    published: int
    filtered: Mapping[str, int]
    quarantined: Mapping[str, int]
    published_revenue: str  # exact decimal, as text
    header_lines: int
    durations_s: Mapping[str, float]
    outputs: Mapping[str, str] = field(default_factory=dict)
    # The source files whose lines this run replaced (URIs, as the curated source_file).
    sources: list[str] = field(default_factory=list)
    # Input files an incremental run skipped: processed before, unchanged.
    skipped_inputs: list[str] = field(default_factory=list)
    # Where this run's curated months are, relative to the output: "curated", or its version
    # folder "curated_versions/<run_id>" when months are published through the catalog.
    curated_root: str = "curated"
    # The curated partitions this run rewrote, relative to curated_root
    # ("invoice_year=2010/invoice_month=12"), and those it removed (no line left in them).
    curated_partitions: list[str] = field(default_factory=list)
    removed_partitions: list[str] = field(default_factory=list)
    # The data-quality gate: success, critical failures, warnings, where the results are.
    quality: Mapping[str, Any] = field(default_factory=dict)
    spark_version: str = ""
    # Of `read`: records whose quoted field spans lines, read whole, and the lines they spanned
    # (so the input's physical lines = read + header_lines + multiline_lines - multiline_records).
    multiline_records: int = 0
    multiline_lines: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunReport:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


def check_accounting(
    counts: OutcomeCounts, *, lines_read: int, quarantined_read: int, quarantine_written: int
) -> None:
    """Every line read must be published, filtered or quarantined, exactly once: the staged
    lines (`counts`) must be the lines the pass read (`lines_read`, header lines aside), and
    the quarantine records written the quarantined lines it counted."""
    problems = []
    accounted = counts.published + counts.filtered_total + counts.quarantined_total
    if counts.read != accounted or counts.unclassified:
        problems.append(
            f"staged {counts.read:,} lines but published {counts.published:,} + filtered "
            f"{counts.filtered_total:,} + quarantined {counts.quarantined_total:,} = {accounted:,}"
            f" ({counts.unclassified:,} lines have no outcome)"
        )
    if counts.read != lines_read:
        problems.append(f"read {lines_read:,} lines but staged {counts.read:,}")
    for what, count in (("staged", counts.quarantined_total), ("wrote", quarantine_written)):
        if count != quarantined_read:
            problems.append(f"counted {quarantined_read:,} quarantined lines but {what} {count:,}")
    if problems:
        raise AccountingError("row accounting failed: " + "; ".join(problems))


def render_summary(report: RunReport) -> str:
    """A plain-text table of the report for the end of a run."""
    rows: list[tuple[str, str]] = [
        ("input files processed", f"{len(report.inputs):,}"),
        ("input files skipped (unchanged)", f"{len(report.skipped_inputs):,}"),
        ("read", f"{report.read:,}"),
    ]
    if report.multiline_records:
        rows.append(("  records spanning lines, read whole", f"{report.multiline_records:,}"))
    rows.append(("published", f"{report.published:,}"))
    rows += [(f"  filtered: {name}", f"{count:,}") for name, count in report.filtered.items()]
    rows += [(f"  quarantined: {name}", f"{count:,}") for name, count in report.quarantined.items()]
    if not report.quarantined:
        rows.append(("  quarantined", "0"))
    rows.append(("published revenue", report.published_revenue))
    rows.append(("curated months rewritten", f"{len(report.curated_partitions):,}"))
    if report.removed_partitions:
        rows.append(("curated months removed", f"{len(report.removed_partitions):,}"))
    rows += [(f"  {stage} (s)", f"{seconds:.1f}") for stage, seconds in report.durations_s.items()]
    width = max(len(label) for label, _ in rows)
    value_width = max(len(value) for _, value in rows)
    lines = [f"Run {report.run_id}: {report.status}", "-" * (width + value_width + 3)]
    lines += [f"{label.ljust(width)}   {value.rjust(value_width)}" for label, value in rows]
    lines.append("-" * (width + value_width + 3))
    lines += [f"{name}: {path}" for name, path in report.outputs.items()]
    return "\n".join(lines)
