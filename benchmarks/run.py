"""`make bench`: the batch job side by side with DuckDB, pandas and polars on synthetic inputs.

For each scale: generate (or reuse) `make data SCALE=N`'s file, run every engine in a fresh
process (wall time with start-up, peak RSS of the process tree), check they publish the same
rows and revenue, and print one table plus the Spark job's stage breakdown, its driver memory
(the Python driver, the JVM, the JVM's heap after GC) and the streaming consumer's rule
throughput. The same figures, with the machine and the versions, replace the generated part of
docs/benchmarks.md (`--doc`; `--no-docs` leaves it alone). Figures, never assertions: the tests
time nothing.
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
    EngineFailed,
    Measurement,
    check_agreement,
    engine_env,
    render_memory,
    render_table,
    run_engine,
    run_measured,
)

from retail_pipeline_dev import synthetic  # noqa: E402
from retail_pipeline_dev.stream_local.demo import measure_rule_throughput  # noqa: E402

ENGINES = ("spark", "duckdb", "pandas", "polars")
SAMPLE = REPO_ROOT / "data" / "raw" / "online_retail_first_9999.csv"


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
    largest = max((m for m in measurements if m.engine == "spark"), key=lambda m: m.read)
    data = yaml.safe_load((REPO_ROOT / "configs" / "local.yaml").read_text())
    data["spark"]["conf"]["spark.driver.memory"] = heap
    config = work / f"local_{heap}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(data))
    try:
        small = run_engine("spark", Path(largest.input), work / f"heap_{heap}", config=config)
    except Exception as error:
        return f"bounded memory: scale {largest.scale} with spark.driver.memory={heap} FAILED: {error}"
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


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
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
        input_path = REPO_ROOT / "data" / "synthetic" / f"online_retail_scale_{scale:g}.csv"
        synthetic.main(["--scale", f"{scale:g}", "--output", str(input_path)])
        work = Path(args.work) / f"scale_{scale:g}"
        for engine in args.engines:
            measurements.append(run_engine(engine, input_path, work))
            print(render_table(measurements[-1:]), flush=True)
            if engine == "spark":
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
    disagreements = check_agreement(measurements)
    notes += disagreements or ["all engines published the same rows and revenue at each scale"]
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
        )
        try:
            write_doc(args.doc, render_markdown(run))
        except ValueError as exc:
            print(f"{args.doc}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.doc}")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
