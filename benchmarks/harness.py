"""Run the batch job and its reference implementations side by side (issue #7).

Each engine runs in a fresh process (`run_engine`), so its wall time includes start-up (the
JVM's for Spark) and its memory is its own: a sampler reads the RSS of the process and all its
descendants every 50 ms (psutil when installed, else /proc) and keeps the peak of their sum,
and of each part's (process_tree.py): for Spark, the Python driver alone and the JVM alone.
The Spark job's JVM also logs its collections (jvm_memory.py), for its peak heap after GC.
`render_table` prints the figures side by side, `render_memory` the Spark runs' memory split,
`check_agreement` says whether every engine published the same rows and revenue (exact
decimals) for the same input.

Memory cap (issue #18): the single-process references run with their data segment capped
(`--memory-cap`, RLIMIT_DATA), so that none can take the machine down. An engine that stops
(MemoryError, DuckDB's out-of-memory error, a signal) is a result, not a crash of the bench:
its wall time until it stopped, its peak RSS and a short form of its error (`stopped`).

    PYTHONPATH=lib python benchmarks/harness.py --engines duckdb pandas polars \\
        --input data/synthetic/online_retail_scale_1.csv --work data/bench/references

Engines: "spark" is the job itself (`python -m retail_pipeline batch`, config
configs/local.yaml, its report <work>/spark/reports/run_report.json); "duckdb", "pandas" and
"polars" are benchmarks/references/. Figures, never assertions: the machine's load average is
printed beside them because other work skews them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from jvm_memory import GcSummary, java_tool_options, jvm_gc_summary
from process_tree import ENGINE, JVM, PYTHON_WORKERS, TreePeaks, psutil, tree_sample

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_ENGINES = ("duckdb", "pandas", "polars")
ENGINES = ("spark", *REFERENCE_ENGINES)
SAMPLE_SECONDS = 0.05
FLAT_RATIO = 1.5  # memory_verdict's "flat": the bigger input's figure at most this many times the smaller's
DEFAULT_MEMORY_CAP = "8g"  # about a third of this 23 GiB machine: room for the OS and other work
# Issue #18: from SCALE=10 to SCALE=100 (10x the rows) the job's wall time grows at most 11x.
SCALE_UP = ("10", "100", 11.0)
# The line of an engine's log that says why it stopped, when it has one (a Python traceback's
# last line, DuckDB's "Out of Memory Error", Rust's "memory allocation of N bytes failed").
_MEMORY_ERROR = re.compile(r"MemoryError|Out of Memory|memory allocation of|bad_alloc|Cannot allocate memory")


@dataclass(frozen=True)
class Measurement:
    engine: str
    input: str
    scale: str
    read: int
    published: int
    filtered: int
    quarantined: int
    revenue: Decimal
    wall_s: float
    peak_rss_mib: float  # the sampled peak of the tree's summed RSS (at least the kernel's figure)
    largest_process_mib: float  # ru_maxrss of the biggest process (at least the bench's own RSS)
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    output: str
    report: dict = field(default_factory=dict, repr=False)
    # The peak summed RSS of each part of the tree (process_tree.process_kind): "engine" (the
    # engine's own process: the Spark job's Python driver), "jvm", "python_workers", "other".
    process_peaks_mib: dict[str, float] = field(default_factory=dict)
    gc: GcSummary | None = None  # the job's JVM's collections (the spark engine only)
    # Why the engine stopped before its result (None: it completed). A stopped run's counts
    # are 0 and mean nothing; its wall time and peak RSS are up to the moment it stopped.
    stopped: str | None = None
    memory_cap_mib: float | None = None  # the cap its process ran under (references only)

    @property
    def rows_per_s(self) -> float:
        return self.read / self.wall_s if self.wall_s and not self.stopped else 0.0

    @property
    def python_driver_mib(self) -> float | None:
        return self.process_peaks_mib.get(ENGINE)

    @property
    def jvm_rss_mib(self) -> float | None:
        return self.process_peaks_mib.get(JVM)

    @property
    def heap_after_gc_mib(self) -> float | None:
        return self.gc.peak_after_mib if self.gc else None


class EngineFailed(RuntimeError):
    """An engine's process exited non-zero; the message has the end of its log, `reason` a
    short form of it, and the run's figures up to the moment it stopped."""

    def __init__(self, message: str, *, reason: str, wall_s: float, peaks: TreePeaks, largest: int) -> None:
        super().__init__(message)
        self.reason, self.wall_s, self.peaks, self.largest = reason, wall_s, peaks, largest


def parse_size(text: str) -> int | None:
    """Bytes in "8g", "200m", "512MiB", "1.5G" (binary units); None for "", "0" or "none"."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if text.strip().lower() in ("", "0", "none"):
        return None
    if match is None:
        raise ValueError(f"not a size: {text!r} (e.g. 8g, 200m, 512MiB)")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " "))


def cap_memory(cap_bytes: int) -> Callable[[], None]:
    """A preexec_fn: the child's data segment (its heap, anonymous mappings, thread stacks)
    may not grow past `cap_bytes`, so an allocation past it fails (MemoryError, DuckDB's
    "Out of Memory Error", a Rust abort) instead of pushing the machine into swap or the OOM
    killer. RLIMIT_DATA, not RLIMIT_AS: the address space counts reservations that are never
    used (polars reserves over 1 GB of it on a 9,999-line file and aborted under a 1 GB
    RLIMIT_AS with 95 MB resident). Never for the Spark job: its JVM reserves its heap and
    code cache at start, so a cap stops it at start-up or at random; its memory is bounded
    by spark.driver.memory instead."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (cap_bytes, cap_bytes))

    return apply


def short_error(log_text: str, returncode: int) -> str:
    """Why an engine stopped, in a line: the log's line that names a memory error, else its
    last line; a signal's name first when it was killed by one."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    named = [line for line in lines if _MEMORY_ERROR.search(line)]
    line = (named or lines or [""])[-1]
    line = line if len(line) <= 160 else line[:157] + "..."
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}" + (f": {line}" if line else "")
    return line or f"exited {returncode}"


def scale_of(input_path: Path) -> str:
    match = re.search(r"scale_([0-9.]+)\.csv$", input_path.name)
    return match.group(1) if match else input_path.stem


def engine_command(
    engine: str, input_path: Path, output: Path, python: str, *, config: Path | None = None
) -> list[str]:
    if engine == "spark":
        command = [
            python,
            "-m",
            "retail_pipeline",
            "batch",
            "--input",
            str(input_path),
            "--output",
            str(output),
        ]
        return command + (["--config", str(config)] if config else [])
    if engine in REFERENCE_ENGINES:
        module = f"benchmarks.references.{engine}_reference"
        result = output / "result.json"
        return [
            python,
            "-m",
            module,
            "--input",
            str(input_path),
            "--output",
            str(output),
            "--result-json",
            str(result),
        ]
    raise ValueError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")


def engine_env() -> dict[str, str]:
    paths = [str(REPO_ROOT / "lib"), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    return env


def run_measured(
    command: Sequence[str],
    *,
    log: Path,
    interval: float = SAMPLE_SECONDS,
    env: dict[str, str] | None = None,
    memory_cap: int | None = None,
) -> tuple[float, TreePeaks, int]:
    """Run `command` (stdout and stderr to `log`): wall seconds, sampled peaks, largest RSS.
    With `memory_cap` (bytes), the process runs under `cap_memory`.

    os.wait4 reaps the child, so the kernel's own peak (ru_maxrss: the biggest single process
    among it and its descendants) comes for free as a cross-check of the sampled sum."""
    preexec = cap_memory(memory_cap) if memory_cap else None
    with log.open("wb") as out:
        started = time.perf_counter()
        # preexec_fn is unsafe in a threaded parent; this one only calls setrlimit (one
        # system call, no lock), and the bench starts its engines from its only thread.
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env or engine_env(),
            stdout=out,
            stderr=out,
            preexec_fn=preexec,  # noqa: PLW1509
        )
        peaks = TreePeaks()
        try:
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                peaks.add(process.pid, tree_sample(process.pid))
                time.sleep(interval)
        except BaseException:  # interrupted: leave no engine running
            process.kill()
            process.wait()
            raise
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        text = log.read_text(errors="replace")
        raise EngineFailed(
            f"{' '.join(command[:4])} exited {process.returncode}:\n" + "\n".join(text.splitlines()[-15:]),
            reason=short_error(text, process.returncode),
            wall_s=wall,
            peaks=peaks,
            largest=usage.ru_maxrss * 1024,
        )
    return wall, peaks, usage.ru_maxrss * 1024


def _counts(engine: str, output: Path) -> tuple[dict, int, int, int, int, Decimal]:
    """(report, read, published, filtered, quarantined, revenue) from the engine's own report."""
    if engine == "spark":
        report = json.loads((output / "reports" / "run_report.json").read_text())
        quarantined = sum(report["quarantined"].values())
    else:
        report = json.loads((output / "result.json").read_text())
        quarantined = report["quarantined_total"]
    filtered = sum(report["filtered"].values())
    revenue = Decimal(report["published_revenue"])
    return report, report["read"], report["published"], filtered, quarantined, revenue


def run_engine(
    engine: str,
    input_path: Path,
    work: Path,
    *,
    python: str = sys.executable,
    config: Path | None = None,
    memory_cap: int | None = None,
) -> Measurement:
    """Run one engine on one input in a fresh process; <work>/<engine>/ is replaced. `config`
    is the spark job's (default: configs/local.yaml); `memory_cap` (bytes) caps a reference's
    process (`cap_memory`), never the Spark job's. An engine that exits non-zero is a stopped
    measurement (`Measurement.stopped`), not an exception.

    For spark, every JVM it starts logs its collections to <work>/spark/gc-<pid>.log (through
    JAVA_TOOL_OPTIONS, set for that process tree only)."""
    output = work / engine
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    env = engine_env()
    if engine == "spark":
        env["JAVA_TOOL_OPTIONS"] = java_tool_options(output, env.get("JAVA_TOOL_OPTIONS"))
        memory_cap = None  # see cap_memory: the JVM is bounded by spark.driver.memory
    load_before = os.getloadavg()
    command = engine_command(engine, input_path.resolve(), output.resolve(), python, config=config)
    stopped = None
    try:
        wall, peaks, largest = run_measured(
            command, log=work / f"{engine}.log", env=env, memory_cap=memory_cap
        )
    except EngineFailed as failure:
        wall, peaks, largest, stopped = failure.wall_s, failure.peaks, failure.largest, failure.reason
    if stopped:
        report, read, published, filtered, quarantined, revenue = {}, 0, 0, 0, 0, Decimal(0)
    else:
        report, read, published, filtered, quarantined, revenue = _counts(engine, output)
    return Measurement(
        engine=engine,
        input=str(input_path),
        scale=scale_of(input_path),
        read=read,
        published=published,
        filtered=filtered,
        quarantined=quarantined,
        revenue=revenue,
        wall_s=round(wall, 2),
        # Sampling can miss a short peak; the kernel's figure is exact for one process.
        # Not max() with ru_maxrss: Linux carries the parent's RSS (the bench's) into a child's
        # ru_maxrss across fork and exec, so a small engine would show the bench's size.
        peak_rss_mib=round((peaks.total or largest) / 2**20, 1),
        largest_process_mib=round(largest / 2**20, 1),
        load_before=load_before,
        load_after=os.getloadavg(),
        output=str(output),
        report=report,
        process_peaks_mib={kind: round(rss / 2**20, 1) for kind, rss in sorted(peaks.by_kind.items())},
        gc=jvm_gc_summary(output, jvm_pid=peaks.biggest_jvm) if engine == "spark" else None,
        stopped=stopped,
        memory_cap_mib=round(memory_cap / 2**20, 1) if memory_cap else None,
    )


def completed_duckdb_walls(measurements: Sequence[Measurement]) -> dict[str, float]:
    """DuckDB's wall seconds per input, where it completed: the "x duckdb" ratio's divisor."""
    return {m.input: m.wall_s for m in measurements if m.engine == "duckdb" and not m.stopped}


def duckdb_ratio(m: Measurement, duckdb_wall: dict[str, float]) -> str:
    return f"{m.wall_s / duckdb_wall[m.input]:.1f}" if duckdb_wall.get(m.input) and not m.stopped else "-"


def stopped_line(m: Measurement) -> str:
    """A stopped run in a line: how long it ran, how much it held, under which cap, and why."""
    cap = f" under a {m.memory_cap_mib:,.0f} MiB memory cap" if m.memory_cap_mib else ""
    return (
        f"{m.engine} at scale {m.scale} stopped after {m.wall_s:.1f} s, peak RSS {m.peak_rss_mib:,.0f} MiB"
        f"{cap}: {m.stopped}"
    )


def render_table(measurements: Sequence[Measurement]) -> str:
    """One line per run; "x duckdb" is the wall time over DuckDB's on the same input. A stopped
    run shows its wall time and peak RSS up to the moment it stopped, and why it stopped."""
    duckdb_wall = completed_duckdb_walls(measurements)
    width = max([5, *(len(m.scale) for m in measurements)])
    header = (
        f"{'engine':<7} {'scale':>{width}} {'rows read':>11} {'published':>11} {'revenue':>20} "
        f"{'wall s':>7} {'peak RSS MiB':>12} {'rows/s':>10} {'x duckdb':>8}  "
        "load 1/5/15 min before -> 1 min after"
    )
    lines = [header, "-" * len(header)]
    for m in measurements:
        ratio = duckdb_ratio(m, duckdb_wall)
        load = "/".join(f"{value:.1f}" for value in m.load_before) + f" -> {m.load_after[0]:.1f}"
        if m.stopped:
            counts = f"{'-':>11} {'stopped':>11} {'-':>20}"
            rate = "-"
        else:
            counts = f"{m.read:>11,} {m.published:>11,} {m.revenue:>20,}"
            rate = f"{m.rows_per_s:,.0f}"
        lines.append(
            f"{m.engine:<7} {m.scale:>{width}} {counts} "
            f"{m.wall_s:>7.1f} {m.peak_rss_mib:>12,.0f} {rate:>10} {ratio:>8}  {load}"
            + (f"  STOPPED: {m.stopped}" if m.stopped else "")
        )
    return "\n".join(lines)


MEMORY_COLUMNS = (
    "engine",
    "scale",
    "rows read",
    "python driver peak RSS MiB",
    "JVM peak RSS MiB",
    "JVM peak heap after GC MiB",
    "heap committed / max MiB",
    "GC pauses (full)",
    "python workers MiB",
)


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def memory_rows(measurements: Sequence[Measurement]) -> list[tuple[str, ...]]:
    """MEMORY_COLUMNS for each run with a JVM (the spark engine); "-" where not measured."""
    rows = []
    for m in measurements:
        if m.jvm_rss_mib is None and m.gc is None:
            continue
        gc = m.gc
        committed = f"{_mib(gc.peak_committed_mib)} / {_mib(gc.max_capacity_mib)}" if gc else "-"
        pauses = f"{gc.pauses} ({gc.full_pauses})" if gc else "-"
        rows.append(
            (
                m.engine,
                m.scale,
                f"{m.read:,}",
                _mib(m.python_driver_mib),
                _mib(m.jvm_rss_mib),
                _mib(m.heap_after_gc_mib),
                committed,
                pauses,
                _mib(m.process_peaks_mib.get(PYTHON_WORKERS)),
            )
        )
    return rows


def render_memory(measurements: Sequence[Measurement]) -> str:
    """The Spark runs' memory, split: the Python driver alone, the JVM alone (RSS, which grows
    toward the heap limit whatever the need), and the JVM's peak heap after GC (what it keeps)."""
    rows = memory_rows(measurements)
    if not rows:
        return "driver memory: no run with a JVM"
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(MEMORY_COLUMNS)]
    lines = ["  ".join(f"{c:>{w}}" for c, w in zip(MEMORY_COLUMNS, widths, strict=True))]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join([*lines, memory_verdict(measurements)])


def memory_verdict(measurements: Sequence[Measurement]) -> str:
    """One line: the Spark job's Python driver peak RSS at the biggest input over the smallest
    ("flat" when it grew at most FLAT_RATIO times), with the JVM's peak heap after GC beside
    it. The heap figure is no verdict: G1 leaves old garbage in place until its heap fills,
    so it grows with the run's length whatever the job holds (run.py's bounded-heap check
    runs the biggest input in a small heap instead)."""
    runs = sorted((m for m in measurements if m.engine == "spark" and not m.stopped), key=lambda m: m.read)
    if len({m.read for m in runs}) < 2:
        return "driver memory across scales: needs spark runs on two input sizes"
    small, large = runs[0], runs[-1]
    before, after = small.python_driver_mib, large.python_driver_mib
    if before and after:
        ratio = after / before
        flat = "flat" if ratio <= FLAT_RATIO else f"NOT flat (grew more than {FLAT_RATIO}x)"
        verdict = f"python driver peak RSS {before:,.0f} -> {after:,.0f} MiB ({ratio:.2f}x): {flat}"
    else:
        verdict = "python driver peak RSS not measured"
    heap = (
        f"JVM peak heap after GC {small.heap_after_gc_mib:,.0f} -> {large.heap_after_gc_mib:,.0f} MiB"
        if small.heap_after_gc_mib and large.heap_after_gc_mib
        else "JVM heap not measured"
    )
    return (
        f"driver memory, scale {small.scale} -> {large.scale} ({large.read / small.read:.1f}x the rows): "
        f"{verdict}; {heap} (G1 collects old garbage lazily: see the bounded-heap check)"
    )


def scale_up_verdict(measurements: Sequence[Measurement]) -> str:
    """Issue #18's SCALE=100 criteria, from the completed spark runs at scales 10 and 100 of
    this same run (same code, same machine, minutes apart): the Python driver's peak RSS no
    more than at SCALE=10, the wall time at most 11x. Figures from an earlier run are not
    compared: the code or the machine's load may have changed since."""
    small_scale, large_scale, bound = SCALE_UP
    runs = {m.scale: m for m in measurements if m.engine == "spark" and not m.stopped}
    what = f"issue #18, scale {small_scale} -> {large_scale}"
    if small_scale not in runs or large_scale not in runs:
        return (
            f"{what}: not compared (needs completed spark runs at both scales in the same run: "
            f'make bench SCALES="{small_scale} {large_scale}")'
        )
    small, large = runs[small_scale], runs[large_scale]
    ratio = large.wall_s / small.wall_s
    wall = f"wall {small.wall_s:,.1f} -> {large.wall_s:,.1f} s ({ratio:.1f}x, at most {bound:g}x: "
    wall += "met)" if ratio <= bound else "NOT met)"
    before, after = small.python_driver_mib, large.python_driver_mib
    if before and after:
        driver = f"python driver peak RSS {before:,.0f} -> {after:,.0f} MiB (no more: "
        driver += "met)" if after <= before else f"NOT met, +{after - before:,.0f} MiB)"
    else:
        driver = "python driver peak RSS not measured"
    return f"{what} ({large.read / small.read:.1f}x the rows): {wall}; {driver}"


def stopped_notes(measurements: Sequence[Measurement]) -> list[str]:
    """One line per stopped run: left out of the agreement check, and why."""
    return [f"{stopped_line(m)} (left out of the agreement check)" for m in measurements if m.stopped]


def as_json(measurement: Measurement) -> dict:
    """A measurement as JSON-ready values (the engine's report left out)."""
    return {
        **measurement.__dict__,
        "revenue": str(measurement.revenue),
        "report": None,
        "gc": dataclasses.asdict(measurement.gc) if measurement.gc else None,
    }


def check_agreement(measurements: Sequence[Measurement]) -> list[str]:
    """Problems (empty: all agree): per input, every engine's published rows and revenue must
    be the same, exactly; differing `read` counts are reported too. Stopped runs have no
    figures to compare and are skipped (`stopped_notes` says so)."""
    problems = []
    for input_path in dict.fromkeys(m.input for m in measurements):
        runs = [m for m in measurements if m.input == input_path and not m.stopped]
        for name in ("published", "revenue", "read"):
            values = {m.engine: getattr(m, name) for m in runs}
            if len(set(values.values())) > 1:
                shown = ", ".join(f"{engine} {value:,}" for engine, value in values.items())
                problems.append(f"{input_path}: engines disagree on {name}: {shown}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(REFERENCE_ENGINES))
    parser.add_argument("--input", nargs="+", type=Path, required=True, help="one or more CSV files")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "data" / "bench" / "references")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument(
        "--memory-cap",
        default=DEFAULT_MEMORY_CAP,
        help=f"cap each reference's data segment (RLIMIT_DATA; not Spark's) at this size, e.g. 8g, "
        f"200m; 'none' for no cap (default {DEFAULT_MEMORY_CAP})",
    )
    args = parser.parse_args(argv)
    memory_cap = parse_size(args.memory_cap)
    print(f"RSS sampling: {'psutil ' + psutil.__version__ if psutil else '/proc'}, every {SAMPLE_SECONDS} s")
    measurements = []
    for input_path in args.input:
        work = args.work / f"scale_{scale_of(input_path)}"
        work.mkdir(parents=True, exist_ok=True)
        for engine in args.engines:
            measurements.append(run_engine(engine, input_path, work, memory_cap=memory_cap))
            print(render_table(measurements).splitlines()[-1], flush=True)
    print("\n" + render_table(measurements))
    print("\n" + render_memory(measurements))
    if args.json:
        args.json.write_text(json.dumps([as_json(m) for m in measurements], indent=2))
    problems = check_agreement(measurements)
    print("\n".join(stopped_notes(measurements)))
    print(
        "\n".join(problems) if problems else "All engines that completed agree on published rows and revenue."
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
