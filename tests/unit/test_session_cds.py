"""The local driver's class-data-sharing archive: which JVM options a run gets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from retail_pipeline.jvm_tuning import class_data_sharing_options


def finished_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_first_run_writes_a_partial_archive_and_later_runs_use_the_adopted_one(tmp_path: Path) -> None:
    options, writing = class_data_sharing_options(tmp_path / "cds")
    assert writing is not None and writing.parent == tmp_path / "cds"
    assert options == f"-XX:ArchiveClassesAtExit={writing} -Xlog:cds*=off"
    assert writing.name.endswith(f".{os.getpid()}.partial")

    # A run that failed before adopting its archive leaves a partial file: dropped once its
    # writer is gone, never used (the JVM crashes on a truncated archive).
    stale = writing.with_name(f"{writing.name.split('.')[0]}.{finished_pid()}.partial")
    stale.write_bytes(b"cut short")
    options, again = class_data_sharing_options(tmp_path / "cds")
    assert again == writing and not stale.exists()

    adopted = writing.with_name(writing.name.split(".")[0] + ".jsa")  # what `finish` renames to
    adopted.write_bytes(b"archive")
    assert class_data_sharing_options(tmp_path / "cds") == (f"-XX:SharedArchiveFile={adopted}", None)
