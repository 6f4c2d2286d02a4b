"""`make bench`: the batch job side by side with DuckDB, pandas and polars on synthetic inputs.

For each scale: generate (or reuse) `make data SCALE=N`'s file, run every engine in a fresh
process (wall time with start-up, peak RSS of the process tree), check they publish the same
rows and revenue, and print one table plus the Spark job's stage breakdown, its driver memory
(the Python driver, the JVM, the JVM's heap after GC) and the streaming consumer's rule
throughput. The same figures, with the machine and the versions, replace the generated part of
docs/benchmarks.md (`--doc`; `--no-docs` leaves it alone). Figures, never assertions: the tests
time nothing.

The references run under `--memory-cap` (harness.cap_memory); an engine that stops is a row
of the table, not the end of the bench. `make bench SCALES=100` (54 M rows, ~4.6 GB of input)
is not part of the default run; issue #18's comparison with SCALE=10 needs both in one run:
`make bench SCALES="10 100"`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "lib"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_doc import BenchRun, machine_facts, render_markdown, versions, write_doc  # noqa: E402
from harness import (  # noqa: E402
    DEFAULT_MEMORY_CAP,
    EngineFailed,
    Measurement,
    check_agreement,
    engine_env,
    parse_size,
    render_memory,
    render_table,
    run_engine,
    run_measured,
    scale_up_verdict,
    stopped_notes,
)

from retail_pipeline_dev import synthetic  # noqa: E402
from retail_pipeline_dev.stream_local.demo import measure_rule_throughput  # noqa: E402

ENGINES = ("spark", "duckdb", "pandas", "polars")
SAMPLE = REPO_ROOT / "data" / "raw" / "online_retail_first_9999.csv"
INPUT_BYTES_PER_SCALE = 45_600_000  # the SCALE=1 file: 45,594,344 bytes
# What the engines write and spill beside the input, as a multiple of its size: the job's
# Parquet and staging (0.6x at SCALE=10), four smaller outputs, DuckDB's and Spark's spills.
WORK_BYTES_PER_INPUT_BYTE = 3


def input_for(scale: float) -> Path:
    return REPO_ROOT / "data" / "synthetic" / f"online_retail_scale_{scale:g}.csv"


def disk_shortfall(scales: list[float], work: Path) -> str | None:
    """Why these scales cannot run on the free disk, or None: each input still to generate
    plus WORK_BYTES_PER_INPUT_BYTE times each input for the engines' outputs (every scale's
    stay under <work>/scale_N)."""
    needed = generated = 0
    for scale in scales:
        input_bytes = round(scale * INPUT_BYTES_PER_SCALE)
        if not synthetic.is_current(input_for(scale), scale=scale, seed=42):
            generated += input_bytes
        needed += WORK_BYTES_PER_INPUT_BYTE * input_bytes
    existing = next(p for p in (work, *work.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free >= needed + generated:
        return None
    return (
        f"scales {' '.join(f'{s:g}' for s in scales)} need about {(needed + generated) / 1e9:.1f} GB "
        f"of free disk ({generated / 1e9:.1f} GB of input to generate under data/synthetic, "
        f"{needed / 1e9:.1f} GB for the engines' outputs and spills under {work}); "
        f"{free / 1e9:.1f} GB free. Free some space (old runs under {work}, make clean) "
        "or run a smaller scale."
    )


def spark_stages(measurement: Measurement, work: Path) -> str:
    """The job's stage breakdown, completed with what its run report cannot hold: the CLI's
    session start (from the run's log) and the DuckDB warehouse load, a separate command
    (`make load`) timed here on the job's output. Added to the measurement's report."""
    durations = dict(measurement.report.get("durations_s", {}))
    logged = re.search(r"^\s*session_start \(s\)\s+([0-9.]+)", (work / "spark.log").read_text(), re.M)
    # The default warehouse: the embedded DuckDB file <output>/warehouse.duckdb.
    env = {k: v for k, v in engine_env().items() if k != "RETAIL_WAREHOUSE_URL"}
    started = time.perf_counter()
    load = [sys.executable, "-m", "retail_pipeline", "load", "--output", str(work / "spark")]
    subprocess.run(load, cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    durations = {
        **({"session_start": float(logged.group(1))} if logged else {}),
        **durations,
        "warehouse_load": round(time.perf_counter() - started, 3),
    }
    measurement.report["durations_s"] = durations
    stages = ", ".join(f"{name} {seconds:.1f}" for name, seconds in durations.items())
    return f"spark stages at {measurement.scale} (s): {stages}"


def bounded_heap_check(measurements: list[Measurement], heap: str, work: Path) -> str:
    """Run the job on the largest input again with a small JVM heap: it only completes (with
    the same rows and revenue) if what it holds does not grow with the input. Heap-after-GC
    figures alone cannot tell, as G1 leaves old garbage until its heap fills."""
    runs = [m for m in measurements if m.engine == "spark" and not m.stopped]
    if not runs:
        return "bounded memory: not checked (no completed spark run)"
    largest = max(runs, key=lambda m: m.read)
    data = yaml.safe_load((REPO_ROOT / "configs" / "local.yaml").read_text())
    data["spark"]["conf"]["spark.driver.memory"] = heap
    config = work / f"local_{heap}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(data))
    try:
        small = run_engine("spark", Path(largest.input), work / f"heap_{heap}", config=config)
    except Exception as error:
        return f"bounded memory: scale {largest.scale} with spark.driver.memory={heap} FAILED: {error}"
    if small.stopped:
        return (
            f"bounded memory: scale {largest.scale} with spark.driver.memory={heap} FAILED: {small.stopped}"
        )
    same = (small.published, small.revenue) == (largest.published, largest.revenue)
    return (
        f"bounded memory: the job at scale {largest.scale} ({largest.read:,} rows) with "
        f"spark.driver.memory={heap}: {small.wall_s:.1f} s, peak heap after GC "
        f"{small.heap_after_gc_mib or 0:,.0f} MiB, {'same' if same else 'DIFFERENT'} rows and revenue "
        f"(default heap: {largest.wall_s:.1f} s)"
    )


def spark_floor(job: Measurement, work: Path) -> tuple[float, int] | str:
    """Time benchmarks/spark_floor.py (the plainest Spark job of the same shape: no line
    accounting, quarantine or quality gate) on the job's input, in a fresh process, right
    after the job (the machine's speed drifts): its wall seconds and published rows, or why
    it failed."""
    output, result = work / "spark_floor", work / "spark_floor.json"
    shutil.rmtree(output, ignore_errors=True)
    result.unlink(missing_ok=True)
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "spark_floor.py")]
    command += ["--input", job.input, "--output", str(output), "--result-json", str(result)]
    try:
        wall, _, _ = run_measured(command, log=work / "spark_floor.log", env=engine_env())
    except EngineFailed as error:
        return f"FAILED: {error}"
    finally:
        shutil.rmtree(output, ignore_errors=True)
    return wall, int(json.loads(result.read_text())["published"])


def floor_note(job: Measurement, floor: tuple[float, int] | str, measurements: list[Measurement]) -> str:
    what = (
        f"spark floor at scale {job.scale} (benchmarks/spark_floor.py, run right after the job: "
        "Spark's CSV reader -> the rules -> partitioned Parquet; no line accounting, quarantine "
        "or quality gate)"
    )
    if isinstance(floor, str):
        return f"{what}: {floor}"
    wall, published = floor
    duckdb = next((m for m in measurements if m.engine == "duckdb" and m.scale == job.scale), None)
    ratio = f", {wall / duckdb.wall_s:.1f}x DuckDB" if duckdb else ""
    return (
        f"{what}: {wall:.1f} s{ratio}, {published:,} rows published "
        f"(the job: {job.wall_s:.1f} s, {job.published:,} rows)"
    )


def machine() -> str:
    load = os.getloadavg()[0]
    return f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, load {load:.1f}"


def command_line(argv: list[str] | None) -> str:
    """The command as run (with PYTHONPATH when set: it decides which code runs)."""
    words = [sys.executable, *(sys.argv if argv is None else [str(Path(__file__)), *argv])]
    pythonpath = os.environ.get("PYTHONPATH")
    return (f"PYTHONPATH={shlex.quote(pythonpath)} " if pythonpath else "") + shlex.join(words)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, int | None]:
    """The arguments, and the references' memory cap in bytes (None: no cap)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", nargs="+", type=float, default=[1.0, 10.0])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--work", default=str(REPO_ROOT / "data" / "bench"))
    parser.add_argument(
        "--doc",
        type=Path,
        default=REPO_ROOT / "docs" / "benchmarks.md",
        help="the document whose generated part this run replaces (default: docs/benchmarks.md)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not write --doc")
    parser.add_argument(
        "--small-heap",
        default="512m",
        help="run the job once more on the largest input with this spark.driver.memory, to show "
        "its memory does not grow with the input ('' skips it; default 512m)",
    )
    parser.add_argument(
        "--memory-cap",
        default=DEFAULT_MEMORY_CAP,
        help="cap the data segment (RLIMIT_DATA) of each reference's process (DuckDB, pandas, "
        "polars; never the Spark job's) at this size, e.g. 8g, 200m, 'none'; an engine that "
        f"stops there is shown as stopped (default {DEFAULT_MEMORY_CAP})",
    )
    args = parser.parse_args(argv)
    try:
        return args, parse_size(args.memory_cap)
    except ValueError as exc:
        parser.error(f"--memory-cap: {exc}")


def main(argv: list[str] | None = None) -> int:
    args, memory_cap = parse_args(argv)
    shortfall = disk_shortfall(args.scales, Path(args.work))
    if shortfall:
        print(f"error: {shortfall}", file=sys.stderr)
        return 2
    started_utc = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    started, load_before = time.perf_counter(), os.getloadavg()
    measurements: list[Measurement] = []
    floors: list[tuple[Measurement, tuple[float, int] | str]] = []
    notes = [machine()]
    if "spark" in args.engines:
        # Untimed: the first local run writes the JVM's class-data-sharing archive
        # (configs/local.yaml), which every later run loads; the table times later runs.
        warm_up = run_engine("spark", SAMPLE, Path(args.work) / "warm_up")
        notes.append(f"spark warm-up run on the sample (untimed in the table): {warm_up.wall_s:.1f} s")
    for scale in args.scales:
        input_path = input_for(scale)
        synthetic.main(["--scale", f"{scale:g}", "--output", str(input_path)])
        work = Path(args.work) / f"scale_{scale:g}"
        for engine in args.engines:
            measurements.append(run_engine(engine, input_path, work, memory_cap=memory_cap))
            print(render_table(measurements[-1:]), flush=True)
            if engine == "spark" and not measurements[-1].stopped:
                notes.append(spark_stages(measurements[-1], work))
                floors.append((measurements[-1], spark_floor(measurements[-1], work)))
    if "spark" in args.engines and args.small_heap:
        notes.append(bounded_heap_check(measurements, args.small_heap, Path(args.work)))
    notes += [floor_note(job, floor, measurements) for job, floor in floors]
    records, seconds = measure_rule_throughput(SAMPLE)
    notes.append(f"streaming consumer rules: {records / seconds:,.0f} records/s on one core")
    print()
    print(render_table(measurements))
    print()
    print(render_memory(measurements))
    print(scale_up_verdict(measurements))
    disagreements = check_agreement(measurements)
    notes += stopped_notes(measurements)
    notes += disagreements or ["all engines that completed published the same rows and revenue at each scale"]
    print("\n".join(notes))
    if not args.no_docs:
        run = BenchRun(
            command=command_line(argv),
            started_utc=started_utc,
            wall_s=time.perf_counter() - started,
            load_before=load_before,
            load_after=os.getloadavg(),
            measurements=measurements,
            stream_records_per_s=records / seconds,
            problems=disagreements,
            machine=machine_facts(),
            versions=versions(measurements),
            notes=[n for n in notes if n.startswith(("bounded memory", "spark warm-up", "spark floor"))],
            memory_cap=args.memory_cap if memory_cap else None,
        )
        try:
            write_doc(args.doc, render_markdown(run))
        except ValueError as exc:
            print(f"{args.doc}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.doc}")
    # A reference that stops under the cap is a result; the job itself stopping is a failure.
    job_stopped = any(m.stopped for m in measurements if m.engine == "spark")
    return 1 if disagreements or job_stopped else 0


if __name__ == "__main__":
    sys.exit(main())
