"""Making a run's output visible all at once, or not at all.

A run writes everything (curated partitions, quarantine partitions, reports) under
`<output>/_staging/<run_id>/`, where readers never look. Publishing then:
1. writes the list of units to move into a journal in the staging folder: the commit point;
2. moves each unit into place, moving the unit it replaces to `<output>/_trash/<run_id>/`;
3. deletes the trash and the staging folder.

A run killed before step 1 leaves the previous output untouched, and its staging folder is
discarded by the next run. A run killed during step 2 is finished by the next run, which
finds the journal and completes the moves. Each unit is a folder moved by one rename (atomic
on local disks and HDFS; a copy on S3), so a reader sees every partition either old or new.
Only partitions present in the run are replaced; the others are kept.

One run at a time may write to an output folder (Glue: max concurrency 1).
"""

from __future__ import annotations

import json
import logging

from retail_pipeline.storage import HadoopFileSystem

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
    per quarantined source file, each report file and the Data Docs site."""
    units = [
        f"curated/{year}/{month}"
        for year in fs.list_dirs(f"{staging}/curated")
        for month in fs.list_dirs(f"{staging}/curated/{year}")
    ]
    units += [f"quarantine/{source}" for source in fs.list_dirs(f"{staging}/quarantine")]
    units += [f"reports/{name}" for name in fs.list_files(f"{staging}/reports")]
    for folder in fs.list_dirs(f"{staging}/reports"):
        if folder in REPORT_HISTORY:
            units += [f"reports/{folder}/{name}" for name in fs.list_files(f"{staging}/reports/{folder}")]
        else:
            units.append(f"reports/{folder}")
    return units


def publish(fs: HadoopFileSystem, output: str, run_id: str) -> list[str]:
    """Publish a staged run; returns the units moved into place."""
    staging = staging_dir(output, run_id)
    units = staged_units(fs, staging)
    fs.write_text(f"{staging}/{JOURNAL}", json.dumps({"run_id": run_id, "units": units}, indent=1))
    _roll_forward(fs, output, run_id, units)
    return units


def _roll_forward(fs: HadoopFileSystem, output: str, run_id: str, units: list[str]) -> None:
    staging = staging_dir(output, run_id)
    trash = f"{output}/{TRASH}/{run_id}"
    for unit in units:
        staged, target = f"{staging}/{unit}", f"{output}/{unit}"
        if not fs.exists(staged):
            continue  # moved before an interruption
        if fs.exists(target):
            fs.rename(target, f"{trash}/{unit}")
        fs.rename(staged, target)
    fs.delete(trash)
    fs.delete(staging)
    fs.delete_if_empty(f"{output}/{TRASH}")
    fs.delete_if_empty(f"{output}/{STAGING}")
    logger.info("Published %d units of run %s to %s", len(units), run_id, output)


def recover(fs: HadoopFileSystem, output: str) -> None:
    """Finish publishing what an interrupted run committed; discard what it had not."""
    for run_id in fs.list_dirs(f"{output}/{STAGING}"):
        staging = staging_dir(output, run_id)
        if fs.exists(f"{staging}/{JOURNAL}"):
            journal = json.loads(fs.read_text(f"{staging}/{JOURNAL}"))
            logger.warning("Run %s was interrupted while publishing: finishing it", run_id)
            _roll_forward(fs, output, run_id, list(journal["units"]))
        else:
            logger.warning("Run %s stopped before publishing: discarding its staged output", run_id)
            fs.delete(staging)
    fs.delete(f"{output}/{TRASH}")
    fs.delete_if_empty(f"{output}/{STAGING}")
