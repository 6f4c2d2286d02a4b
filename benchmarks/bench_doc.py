"""docs/benchmarks.md: the last `make bench` run's figures, between two marker lines (issue #7).

`write_doc` replaces only the lines between BEGIN and END; everything else in the file is
written by hand and kept as it is. A missing file is created with a short intro and an empty
"What moved which figure" section for that hand-written account.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from harness import (
    MEMORY_COLUMNS,
    REPO_ROOT,
    Measurement,
    completed_duckdb_walls,
    duckdb_ratio,
    memory_rows,
    memory_verdict,
    scale_up_verdict,
    stopped_line,
)

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
PACKAGES = ("pyspark", "duckdb", "pandas", "polars", "pyarrow", "great-expectations", "psutil")

NEW_DOCUMENT = """# Benchmarks

`make bench` (`benchmarks/run.py`) runs the batch job and three single-process references
(DuckDB, pandas, polars: `benchmarks/references/`) on synthetic inputs of each scale, each in
a fresh process, and replaces the part of this file between the `bench:begin` and `bench:end`
marker lines with the figures of its last run (`--no-docs` leaves the file alone). Everything
outside the markers is written by hand and kept as it is.

Figures, never assertions: wall time includes start-up (the JVM's for Spark), peak RSS is the
sampled peak of the process tree's summed RSS, and the load average beside them says how busy
the machine was.

{block}

## What moved which figure
"""


@dataclass(frozen=True)
class BenchRun:
    """One `make bench` run, as the document shows it."""

    command: str
    started_utc: str
    wall_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    measurements: Sequence[Measurement]
    stream_records_per_s: float | None
    problems: Sequence[str]
    machine: dict[str, str]
    versions: dict[str, str]
    notes: Sequence[str] = ()  # e.g. the warm-up run, the bounded-heap run
    memory_cap: str | None = None  # the references' cap as given (--memory-cap), None: no cap


def _first_match(path: str, pattern: str) -> str | None:
    try:
        match = re.search(pattern, Path(path).read_text(errors="replace"), re.MULTILINE)
    except OSError:
        return None
    return match.group(1).strip() if match else None


def machine_facts() -> dict[str, str]:
    """CPU model, cores, total memory, OS and kernel of this machine (Linux; "unknown" elsewhere)."""
    memory_kib = _first_match("/proc/meminfo", r"^MemTotal:\s+(\d+) kB")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "CPU": _first_match("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or platform.processor() or "unknown",
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "memory": f"{int(memory_kib) / 2**20:.1f} GiB" if memory_kib else "unknown",
        "OS": _first_match("/etc/os-release", r'^PRETTY_NAME="?([^"\n]+)"?$') or platform.system(),
        "kernel": f"{platform.system()} {platform.release()} ({platform.machine()})",
    }


def _java_version() -> str:
    java = (
        Path(os.environ["JAVA_HOME"]) / "bin" / "java"
        if os.environ.get("JAVA_HOME")
        else shutil.which("java")
    )
    if not java:
        return "not found"
    try:
        done = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = [line for line in done.stderr.splitlines() if not line.startswith("Picked up")]
    return "; ".join(lines[:2]) or "unknown"


def _git_commit() -> str:
    def git(*args: str) -> str:
        command = ["git", "-C", str(REPO_ROOT), *args]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head


def versions(measurements: Sequence[Measurement] = ()) -> dict[str, str]:
    """Python, Java, the engines' packages as installed, the Spark version the job reported."""
    found = {
        "code": _git_commit(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    found["Java"] = _java_version()
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    spark = {m.report.get("spark_version") for m in measurements if m.engine == "spark"} - {None}
    if spark:
        found["Spark (as the job reported)"] = ", ".join(sorted(spark))
    return found


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], *, figures: bool = True) -> str:
    """A GitHub table; with `figures`, every column but the first is right-aligned."""
    aligns = ["---:" if figures and i else "---" for i in range(len(header))]
    lines = [header, aligns, *rows]
    return "\n".join("| " + " | ".join(_cell(value) for value in line) + " |" for line in lines)


def results_table(measurements: Sequence[Measurement]) -> str:
    """One row per run; a stopped run has "stopped" for its counts (its error is listed below
    the table by `stopped_list`), and its wall time and peak RSS up to the moment it stopped."""
    duckdb_wall = completed_duckdb_walls(measurements)
    header = ("engine", "scale", "rows read", "published", "wall s", "peak RSS MiB", "rows/s", "x DuckDB")
    rows = []
    for m in measurements:
        ratio = duckdb_ratio(m, duckdb_wall)
        load = "/".join(f"{v:.1f}" for v in m.load_before) + f" -> {m.load_after[0]:.1f}"
        rate = "-" if m.stopped else f"{m.rows_per_s:,.0f}"
        figures = (f"{m.wall_s:.1f}", f"{m.peak_rss_mib:,.0f}", rate, ratio, load)
        counts = ("-", "stopped") if m.stopped else (f"{m.read:,}", f"{m.published:,}")
        rows.append((m.engine, m.scale, *counts, *figures))
    return markdown_table((*header, "load 1/5/15 before -> 1 after"), rows)


def stopped_list(measurements: Sequence[Measurement]) -> str | None:
    lines = [f"- {stopped_line(m)}" for m in measurements if m.stopped]
    return "Stopped before their result:\n\n" + "\n".join(lines) if lines else None


def cap_sentence(memory_cap: str | None) -> str:
    if not memory_cap:
        return "The references ran without a memory cap."
    return (
        f"DuckDB, pandas and polars ran with their data segment capped at {memory_cap} "
        "(`--memory-cap`, RLIMIT_DATA; DuckDB's memory_limit at half of it, spilling to disk): an "
        "engine that stops there is shown with its wall time and peak RSS until it stopped and its "
        "error. The Spark job is never capped so: its JVM reserves memory at start, and its heap "
        "is bounded by spark.driver.memory."
    )


def _seconds(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def stages_table(measurements: Sequence[Measurement]) -> str | None:
    runs = [m for m in measurements if m.engine == "spark" and m.report.get("durations_s")]
    if not runs:
        return None
    stages = list(dict.fromkeys(stage for m in runs for stage in m.report["durations_s"]))
    rows = [(m.scale, *(_seconds(m.report["durations_s"].get(stage)) for stage in stages)) for m in runs]
    return markdown_table(("scale", *stages), rows)


def render_markdown(run: BenchRun) -> str:
    """The generated part of the document (without the markers)."""
    before, after = ("{:.2f} / {:.2f} / {:.2f}".format(*load) for load in (run.load_before, run.load_after))
    machine = {**run.machine, "load average 1/5/15 min": f"before {before}, after {after}"}
    parts = [
        f"## Last run: {run.started_utc}, {run.wall_s:,.0f} s in all",
        f"```\n{run.command}\n```",
        "### Machine",
        markdown_table(("", "this machine"), list(machine.items()), figures=False),
        "### Versions",
        markdown_table(("component", "version"), list(run.versions.items()), figures=False),
        "### Results",
        results_table(run.measurements),
        "Wall time includes start-up; peak RSS is the process tree's sampled peak; x DuckDB is the "
        "wall time over DuckDB's on the same input. " + cap_sentence(run.memory_cap),
    ]
    stopped = stopped_list(run.measurements)
    parts += [stopped] if stopped else []
    stages = stages_table(run.measurements)
    parts += ["### Spark job stages (s, `durations_s` of its run report)", stages or "No spark run."]
    memory = memory_rows(run.measurements)
    parts += [
        "### Driver memory (spark)",
        "In local mode the driver JVM is also the executor, and its RSS grows toward its heap limit "
        "whatever the need; the heap left after each collection (its unified GC log) is what it "
        "keeps. The Python driver's RSS is that process's alone.",
        markdown_table(MEMORY_COLUMNS, memory) if memory else "No spark run.",
        memory_verdict(run.measurements),
        scale_up_verdict(run.measurements),
        "### Streaming consumer",
        (
            f"Rules (decode, rules, typing): {run.stream_records_per_s:,.0f} records/s on one core."
            if run.stream_records_per_s
            else "Not measured."
        ),
        "### Agreement",
        agreement(run),
    ]
    if run.notes:
        parts += ["### Notes", "\n".join(f"- {note}" for note in run.notes)]
    return "\n\n".join(parts)


def agreement(run: BenchRun) -> str:
    skipped = [
        f"- {m.engine} at scale {m.scale}: stopped, not compared" for m in run.measurements if m.stopped
    ]
    if run.problems:
        return "\n".join([*(f"- {problem}" for problem in run.problems), *skipped])
    if skipped:
        return "\n".join(
            ["All engines that completed published the same rows and revenue at each scale.", *skipped]
        )
    return "All engines published the same rows and revenue at each scale."


def splice(document: str | None, generated: str) -> str:
    """`document` with the lines between BEGIN and END replaced by `generated`; a new document
    when there is none; the block appended when the document has no markers."""
    block = f"{BEGIN}\n{generated.strip()}\n{END}"
    if document is None:
        return NEW_DOCUMENT.format(block=block)
    lines = document.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if not begins and not ends:
        return document.rstrip("\n") + "\n\n" + block + "\n"
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise ValueError(f"expected one {BEGIN} line before one {END} line: leaving the document alone")
    end_line = lines[ends[0]]
    newline = end_line[len(end_line.rstrip("\r\n")) :]
    return "".join(lines[: begins[0]]) + block + newline + "".join(lines[ends[0] + 1 :])


def write_doc(path: Path, generated: str) -> None:
    """Replace the generated part of `path` (created when missing), atomically."""
    document = path.read_text(encoding="utf-8") if path.exists() else None
    text = splice(document, generated)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
