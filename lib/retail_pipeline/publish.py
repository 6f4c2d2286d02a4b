"""Making a run's output visible all at once, or not at all.

A run writes everything (curated months, quarantine partitions, the ledger, reports) under
`<output>/_staging/<run_id>/`, where readers never look. Publishing then:
1. writes the list of units to move, and of units to remove, into a journal in the staging
   folder: the commit point;
2. moves each unit into place, moving the unit it replaces (and each unit removed) to
   `<output>/_trash/<run_id>/`;
3. deletes the trash and the staging folder.

A run killed before step 1 leaves the previous output untouched, and its staging folder is
discarded by the next run. A run killed during step 2 is finished by the next run, which
finds the journal and completes the moves. Each unit is a folder moved by one rename (atomic
on local disks and HDFS; a copy on S3), so a reader sees every partition either old or new.
Only the units the run names are replaced or removed; the others are kept. The data and the
ledger (`ledger`) move in the same publish, so they always agree.

One run at a time writes to an output folder: `batch.run` holds the output's lock (`lock`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from retail_pipeline.catalog import (
    VERSIONS_DIR,
    CatalogTable,
    expired_versions,
    remove_versions,
    run_ids_in,
    switch_partitions,
)
from retail_pipeline.ledger import LEDGER_FILE, Ledger, Month, month_key, parse_month, source_id
from retail_pipeline.report import RunReport
from retail_pipeline.rewrite import month_folder
from retail_pipeline.storage import HadoopFileSystem
from retail_pipeline.transforms import SOURCE_ID

logger = logging.getLogger(__name__)

STAGING = "_staging"
TRASH = "_trash"
JOURNAL = "_PUBLISH_JOURNAL.json"


def staging_dir(output: str, run_id: str) -> str:
    return f"{output}/{STAGING}/{run_id}"


# Report folders that collect one file per run; any other report folder is replaced whole.
REPORT_HISTORY = ("runs", "validation")


def staged_units(fs: HadoopFileSystem, staging: str) -> list[str]:
    """The units a run replaces, relative to the output folder: one per curated month, one
    per quarantined source file, the ledger, each report file and the Data Docs site."""
    month_roots = ["curated", *(f"{VERSIONS_DIR}/{run}" for run in fs.list_dirs(f"{staging}/{VERSIONS_DIR}"))]
    units = [
        f"{root}/{year}/{month}"
        for root in month_roots
        for year in fs.list_dirs(f"{staging}/{root}")
        for month in fs.list_dirs(f"{staging}/{root}/{year}")
    ]
    units += [f"quarantine/{source}" for source in fs.list_dirs(f"{staging}/quarantine")]
    units += [name for name in fs.list_files(staging) if name == LEDGER_FILE]
    units += [f"reports/{name}" for name in fs.list_files(f"{staging}/reports")]
    for folder in fs.list_dirs(f"{staging}/reports"):
        if folder in REPORT_HISTORY:
            units += [f"reports/{folder}/{name}" for name in fs.list_files(f"{staging}/reports/{folder}")]
        else:
            units.append(f"reports/{folder}")
    return units


def publish(
    fs: HadoopFileSystem,
    output: str,
    run_id: str,
    *,
    removed: Sequence[str] = (),
    catalog: CatalogSwitch | None = None,
) -> list[str]:
    """Publish a staged run: move its units into place, remove the `removed` units (paths
    relative to the output, e.g. a curated month no line is left in) and switch the catalog's
    partitions; returns the units moved."""
    staging = staging_dir(output, run_id)
    units = staged_units(fs, staging)
    removed = [unit for unit in removed if unit not in units]
    journal: dict[str, Any] = {"run_id": run_id, "units": units, "removed": removed}
    if catalog is not None:
        journal["catalog"] = catalog.to_json()
    fs.write_text(f"{staging}/{JOURNAL}", json.dumps(journal, indent=1))
    logger.info("Publishing run %s: %d units committed to its journal", run_id, len(units) + len(removed))
    _roll_forward(fs, output, run_id, units, removed=removed, catalog=catalog)
    return units


@dataclass(frozen=True)
class CatalogSwitch:
    """The catalog partitions a publish points at the run's month versions (None: deleted)."""

    table: CatalogTable
    locations: Mapping[Month, str | None]

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.table.database,
            "table": self.table.table,
            "locations": {month_key(m): location for m, location in self.locations.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CatalogSwitch:
        locations = {parse_month(key): location for key, location in data["locations"].items()}
        return cls(CatalogTable(data["database"], data["table"]), locations)

    def apply(self) -> None:
        import boto3  # only outputs published through the catalog need it

        switch_partitions(boto3.client("glue"), self.table, self.locations)


def _roll_forward(
    fs: HadoopFileSystem,
    output: str,
    run_id: str,
    units: Sequence[str],
    *,
    removed: Sequence[str],
    catalog: CatalogSwitch | None,
) -> None:
    staging = staging_dir(output, run_id)
    trash = f"{output}/{TRASH}/{run_id}"
    for unit in removed:
        if fs.exists(f"{output}/{unit}"):
            fs.rename(f"{output}/{unit}", f"{trash}/{unit}")
    for unit in units:
        staged, target = f"{staging}/{unit}", f"{output}/{unit}"
        if not fs.exists(staged):
            continue  # moved before an interruption
        if fs.exists(target):
            fs.rename(target, f"{trash}/{unit}")
        fs.rename(staged, target)
    if catalog is not None:
        catalog.apply()  # the versions are in place: readers through the catalog switch now
    fs.delete(trash)
    fs.delete(staging)
    fs.delete_if_empty(f"{output}/{TRASH}")
    fs.delete_if_empty(f"{output}/{STAGING}")
    logger.info("Published %d units (%d removed) of run %s to %s", len(units), len(removed), run_id, output)


def recover(fs: HadoopFileSystem, output: str) -> None:
    """Finish publishing what an interrupted run committed; discard what it had not."""
    for run_id in fs.list_dirs(f"{output}/{STAGING}"):
        staging = staging_dir(output, run_id)
        if fs.exists(f"{staging}/{JOURNAL}"):
            journal = json.loads(fs.read_text(f"{staging}/{JOURNAL}"))
            logger.warning("Run %s was interrupted while publishing: finishing it", run_id)
            catalog = CatalogSwitch.from_json(journal["catalog"]) if "catalog" in journal else None
            removed = journal.get("removed", [])
            _roll_forward(fs, output, run_id, journal["units"], removed=removed, catalog=catalog)
        else:
            logger.warning("Run %s stopped before publishing: discarding its staged output", run_id)
            fs.delete(staging)
    fs.delete(f"{output}/{TRASH}")
    fs.delete_if_empty(f"{output}/{STAGING}")


def publish_run(
    fs: HadoopFileSystem,
    report: RunReport,
    *,
    staging: str,
    ledger: Ledger,
    removed: Sequence[Month],
    catalog: CatalogSwitch | None = None,
) -> None:
    """Publish a run that passed: its curated months (and the months it emptied), its
    sources' quarantine (replaced whole, also by nothing), the ledger and the reports. With a
    catalog, the months are new versions and the catalog's partitions switch to them."""
    output = report.output
    fs.write_text(f"{staging}/{LEDGER_FILE}", ledger.to_json())
    fs.write_text(f"{staging}/reports/run_report.json", report.to_json())
    fs.write_text(f"{staging}/reports/runs/{report.run_id}.json", report.to_json())
    staged_quarantine = set(fs.list_dirs(f"{staging}/quarantine"))
    # A version is never removed by a publish: the catalog stops pointing at it (expire_versions).
    gone = [] if catalog is not None else [f"curated/{month_folder(month)}" for month in removed]
    gone += [
        f"quarantine/{unit}"
        for unit in (f"{SOURCE_ID}={source_id(source)}" for source in report.sources)
        if unit not in staged_quarantine and fs.exists(f"{output}/quarantine/{unit}")
    ]
    publish(fs, output, report.run_id, removed=gone, catalog=catalog)


def expire_versions(output: str, ledger: Ledger, *, grace_hours: int) -> None:
    """Remove the month versions no month points to any more, once `grace_hours` old (readers
    that listed a version's files before the switch may still be reading them). A failure
    here is logged, not raised: the run's output is published and correct either way."""
    import boto3

    older_than = datetime.now(UTC) - timedelta(hours=grace_hours)
    try:
        s3 = boto3.client("s3")
        keep = run_ids_in(output, ledger.locations.values())
        remove_versions(s3, output, expired_versions(s3, output, keep=keep, older_than=older_than))
    except Exception as error:
        logger.warning("Could not remove old curated versions under %s: %s", output, error)


def publish_reports(fs: HadoopFileSystem, report: RunReport, *, staging: str) -> None:
    """Publish only a run's report, as the latest and in the history (a run that changed no
    data: its report says so)."""
    fs.write_text(f"{staging}/reports/run_report.json", report.to_json())
    fs.write_text(f"{staging}/reports/runs/{report.run_id}.json", report.to_json())
    publish(fs, report.output, report.run_id)


def publish_failed_gate(fs: HadoopFileSystem, report: RunReport, *, staging: str) -> None:
    """Publish the reports of a run the quality gate stopped (validation result, Data Docs,
    this run's report) but no data: reports/run_report.json keeps describing what is published."""
    fs.delete(f"{staging}/lines")
    fs.delete(f"{staging}/quarantine")
    fs.delete(f"{staging}/curated")
    fs.delete(f"{staging}/{VERSIONS_DIR}")
    fs.write_text(f"{staging}/reports/runs/{report.run_id}.json", report.to_json())
    publish(fs, report.output, report.run_id)


def discard(fs: HadoopFileSystem, output: str, run_id: str) -> None:
    """Drop a run that failed before publishing: the previous output stays as it was."""
    fs.delete(staging_dir(output, run_id))
    fs.delete_if_empty(f"{output}/{STAGING}")
