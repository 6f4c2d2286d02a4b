"""Run the batch job and its reference implementations side by side (issue #7).

Each engine runs in a fresh process (`run_engine`), so its wall time includes start-up (the
JVM's for Spark) and its memory is its own: a sampler reads the RSS of the process and all its
descendants every 50 ms (psutil when installed, else /proc) and keeps the peak of their sum,
and of each part's (process_tree.py): for Spark, the Python driver alone and the JVM alone.
The Spark job's JVM also logs its collections (jvm_memory.py), for its peak heap after GC.
`render_table` prints the figures side by side, `render_memory` the Spark runs' memory split,
`check_agreement` says whether every engine published the same rows and revenue (exact
decimals) for the same input.

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
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
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
    largest_process_mib: float  # the kernel's ru_maxrss of the biggest single process
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    output: str
    report: dict = field(default_factory=dict, repr=False)
    # The peak summed RSS of each part of the tree (process_tree.process_kind): "engine" (the
    # engine's own process: the Spark job's Python driver), "jvm", "python_workers", "other".
    process_peaks_mib: dict[str, float] = field(default_factory=dict)
    gc: GcSummary | None = None  # the job's JVM's collections (the spark engine only)

    @property
    def rows_per_s(self) -> float:
        return self.read / self.wall_s if self.wall_s else 0.0

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
    """An engine's process exited non-zero; the message has the end of its log."""


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
) -> tuple[float, TreePeaks, int]:
    """Run `command` (stdout and stderr to `log`): wall seconds, sampled peaks, largest RSS.

    os.wait4 reaps the child, so the kernel's own peak (ru_maxrss: the biggest single process
    among it and its descendants) comes for free as a cross-check of the sampled sum."""
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env or engine_env(), stdout=out, stderr=out)
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
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise EngineFailed(f"{' '.join(command[:4])} exited {process.returncode}:\n" + "\n".join(tail))
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
    engine: str, input_path: Path, work: Path, *, python: str = sys.executable, config: Path | None = None
) -> Measurement:
    """Run one engine on one input in a fresh process; <work>/<engine>/ is replaced. `config`
    is the spark job's (default: configs/local.yaml).

    For spark, every JVM it starts logs its collections to <work>/spark/gc-<pid>.log (through
    JAVA_TOOL_OPTIONS, set for that process tree only)."""
    output = work / engine
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    env = engine_env()
    if engine == "spark":
        env["JAVA_TOOL_OPTIONS"] = java_tool_options(output, env.get("JAVA_TOOL_OPTIONS"))
    load_before = os.getloadavg()
    command = engine_command(engine, input_path.resolve(), output.resolve(), python, config=config)
    wall, peaks, largest = run_measured(command, log=work / f"{engine}.log", env=env)
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
        peak_rss_mib=round(max(peaks.total, largest) / 2**20, 1),
        largest_process_mib=round(largest / 2**20, 1),
        load_before=load_before,
        load_after=os.getloadavg(),
        output=str(output),
        report=report,
        process_peaks_mib={kind: round(rss / 2**20, 1) for kind, rss in sorted(peaks.by_kind.items())},
        gc=jvm_gc_summary(output, jvm_pid=peaks.biggest_jvm) if engine == "spark" else None,
    )


def render_table(measurements: Sequence[Measurement]) -> str:
    """One line per run; "x duckdb" is the wall time over DuckDB's on the same input."""
    duckdb_wall = {m.input: m.wall_s for m in measurements if m.engine == "duckdb"}
    width = max([5, *(len(m.scale) for m in measurements)])
    header = (
        f"{'engine':<7} {'scale':>{width}} {'rows read':>11} {'published':>11} {'revenue':>20} "
        f"{'wall s':>7} {'peak RSS MiB':>12} {'rows/s':>10} {'x duckdb':>8}  "
        "load 1/5/15 min before -> 1 min after"
    )
    lines = [header, "-" * len(header)]
    for m in measurements:
        ratio = f"{m.wall_s / duckdb_wall[m.input]:.1f}" if duckdb_wall.get(m.input) else "-"
        load = "/".join(f"{value:.1f}" for value in m.load_before) + f" -> {m.load_after[0]:.1f}"
        lines.append(
            f"{m.engine:<7} {m.scale:>{width}} {m.read:>11,} {m.published:>11,} {m.revenue:>20,} "
            f"{m.wall_s:>7.1f} {m.peak_rss_mib:>12,.0f} {m.rows_per_s:>10,.0f} {ratio:>8}  {load}"
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
    runs = sorted((m for m in measurements if m.engine == "spark"), key=lambda m: m.read)
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
    be the same, exactly; differing `read` counts are reported too."""
    problems = []
    for input_path in dict.fromkeys(m.input for m in measurements):
        runs = [m for m in measurements if m.input == input_path]
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
    args = parser.parse_args(argv)
    print(f"RSS sampling: {'psutil ' + psutil.__version__ if psutil else '/proc'}, every {SAMPLE_SECONDS} s")
    measurements = []
    for input_path in args.input:
        work = args.work / f"scale_{scale_of(input_path)}"
        work.mkdir(parents=True, exist_ok=True)
        for engine in args.engines:
            measurements.append(run_engine(engine, input_path, work))
            print(render_table(measurements).splitlines()[-1], flush=True)
    print("\n" + render_table(measurements))
    print("\n" + render_memory(measurements))
    if args.json:
        args.json.write_text(json.dumps([as_json(m) for m in measurements], indent=2))
    problems = check_agreement(measurements)
    print("\n".join(problems) if problems else "All engines agree on published rows and revenue.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
