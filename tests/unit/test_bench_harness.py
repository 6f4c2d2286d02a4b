"""The benchmark harness's bookkeeping (benchmarks/): GC logs, the process split, the tables and
docs/benchmarks.md. No engine runs and nothing is timed: the measurements are built inline."""

from __future__ import annotations

import dataclasses
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest

# benchmarks/run.py imports these modules by their own names, with the folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_doc
import harness
import jvm_memory
import process_tree

# The job's JVM under -Xlog:gc,gc+init (JDK 17, G1): start-up, young pauses, a concurrent cycle
# whose remark reports a heap full of garbage, a full pause.
JOB_GC_LOG = """\
[0.004s][info][gc] Using G1
[0.007s][info][gc,init] Heap Region Size: 1M
[0.007s][info][gc,init] Heap Max Capacity: 4G
[1.204s][info][gc] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 204M->18M(4096M) 12.500ms
[5.310s][info][gc] GC(1) Pause Young (Concurrent Start) (G1 Humongous Allocation) 412M->120M(1024M) 35.123ms
[5.311s][info][gc     ] GC(2) Concurrent Mark Cycle
[5.600s][info][gc     ] GC(2) Pause Remark 980M->980M(1024M) 3.000ms
[5.700s][info][gc     ] GC(2) Pause Cleanup 980M->979M(1024M) 0.100ms
[5.800s][info][gc     ] GC(2) Concurrent Mark Cycle 489.456ms
[9.000s][info][gc] GC(3) Pause Full (System.gc()) 600M->95M(1024M) 80.000ms
"""
LAUNCHER_GC_LOG = """\
[0.003s][info][gc] Using G1
[0.005s][info][gc,init] Heap Max Capacity: 128M
"""


def spark_run(
    scale: str, read: int, *, driver: float, jvm: float, heap_after: float | None
) -> harness.Measurement:
    gc = jvm_memory.GcSummary(
        log=f"gc-{scale}.log",
        pauses=7,
        full_pauses=1,
        peak_after_mib=heap_after,
        peak_before_mib=900.0,
        peak_committed_mib=1024.0,
        max_capacity_mib=4096.0,
        pause_ms=120.5,
    )
    return measurement("spark", scale, read, wall_s=40.0, peaks={"engine": driver, "jvm": jvm}, gc=gc)


def measurement(
    engine: str,
    scale: str,
    read: int,
    *,
    wall_s: float,
    peaks: dict[str, float] | None = None,
    gc: jvm_memory.GcSummary | None = None,
) -> harness.Measurement:
    return harness.Measurement(
        engine=engine,
        input=f"data/synthetic/online_retail_scale_{scale}.csv",
        scale=scale,
        read=read,
        published=read - 10,
        filtered=8,
        quarantined=2,
        revenue=Decimal("1234.5000"),
        wall_s=wall_s,
        peak_rss_mib=1500.0,
        largest_process_mib=1400.0,
        load_before=(0.5, 0.4, 0.3),
        load_after=(1.5, 0.6, 0.4),
        output=f"data/bench/scale_{scale}/{engine}",
        report={"durations_s": {"read_and_classify": 9.414, "write_staging": 5.85}}
        if engine == "spark"
        else {},
        process_peaks_mib=peaks or {"engine": 300.0},
        gc=gc,
    )


# GC log


def test_the_peak_heap_after_gc_ignores_pauses_that_move_nothing() -> None:
    summary = jvm_memory.parse_gc_log(JOB_GC_LOG.splitlines(), log="gc-1.log")

    assert summary == jvm_memory.GcSummary(
        log="gc-1.log",
        pauses=5,
        full_pauses=1,
        peak_after_mib=120.0,  # not remark's 980M: the garbage is still there
        peak_before_mib=980.0,
        peak_committed_mib=4096.0,
        max_capacity_mib=4096.0,
        pause_ms=130.723,
    )


def test_gc_sizes_in_other_units_and_without_decorators() -> None:
    lines = [
        "GC(0) Pause Young (Allocation Failure) 65536K->2048K(251392K) 4.1ms",
        "[2024-05-01T10:00:00.000+0000][info][gc] GC(1) Pause Full (Ergonomics) 2G->1.5G(3G) 900.0ms",
    ]

    summary = jvm_memory.parse_gc_log(lines)

    assert (summary.pauses, summary.full_pauses) == (2, 1)
    assert summary.peak_after_mib == 1536.0
    assert summary.peak_before_mib == 2048.0
    assert summary.peak_committed_mib == 3072.0


def test_a_log_without_pauses_has_no_peaks() -> None:
    summary = jvm_memory.parse_gc_log(LAUNCHER_GC_LOG.splitlines())

    assert (summary.pauses, summary.peak_after_mib, summary.peak_committed_mib) == (0, None, None)
    assert summary.max_capacity_mib == 128.0


def test_the_jobs_log_is_chosen_over_the_launchers(tmp_path: Path) -> None:
    (tmp_path / "gc-100.log").write_text(LAUNCHER_GC_LOG)
    (tmp_path / "gc-200.log").write_text(JOB_GC_LOG)

    assert jvm_memory.jvm_gc_summary(tmp_path).log == str(tmp_path / "gc-200.log")
    # The sampler's biggest JVM wins when it left a log, whatever the log says.
    assert jvm_memory.jvm_gc_summary(tmp_path, jvm_pid=100).log == str(tmp_path / "gc-100.log")
    assert jvm_memory.jvm_gc_summary(tmp_path, jvm_pid=999).log == str(tmp_path / "gc-200.log")
    assert jvm_memory.jvm_gc_summary(tmp_path / "empty") is None


def test_java_tool_options_quote_the_log_path_and_keep_what_was_set(tmp_path: Path) -> None:
    folder = tmp_path / "a b:c"

    options = jvm_memory.java_tool_options(folder, "-Xss2m")

    assert options == f"-Xss2m '-Xlog:gc,gc+init:file=\"{folder.resolve()}/gc-%p.log\"'"
    with pytest.raises(ValueError, match="quotes"):
        jvm_memory.java_tool_options(tmp_path / "it's")


# Process split


def test_tree_peaks_split_the_driver_the_jvms_and_the_rest() -> None:
    peaks = process_tree.TreePeaks()
    mib = 2**20
    # spark-submit's launcher JVM first, then the job's JVM (exec'd in place of the shell).
    peaks.add(10, [(10, "python3.11", 100 * mib), (11, "bash", 4 * mib), (12, "java", 60 * mib)])
    peaks.add(10, [(10, "python3.11", 120 * mib), (11, "java", 900 * mib)])
    peaks.add(10, [(10, "python3.11", 110 * mib), (11, "java", 1200 * mib), (13, "python3", 50 * mib)])

    assert peaks.total == 1360 * mib
    assert peaks.by_kind == {
        "engine": 120 * mib,
        "other": 4 * mib,
        "jvm": 1200 * mib,
        "python_workers": 50 * mib,
    }
    assert peaks.biggest_jvm == 11


def test_the_sampler_sees_this_process() -> None:
    pids = {pid for pid, _, rss in process_tree.tree_sample(os.getpid()) if rss > 0}

    assert os.getpid() in pids


# Tables


def test_the_memory_table_shows_the_spark_runs_split() -> None:
    runs = [
        spark_run("1", 1_000_000, driver=95.4, jvm=2210.0, heap_after=350.0),
        measurement("duckdb", "1", 1_000_000, wall_s=4.0),
        spark_run("10", 10_000_000, driver=97.0, jvm=3900.0, heap_after=420.0),
    ]

    lines = harness.render_memory(runs).splitlines()

    assert "python driver peak RSS MiB" in lines[0]
    assert "JVM peak heap after GC MiB" in lines[0]
    assert [line.split()[:9] for line in lines[2:4]] == [
        ["spark", "1", "1,000,000", "95", "2,210", "350", "1,024", "/", "4,096"],
        ["spark", "10", "10,000,000", "97", "3,900", "420", "1,024", "/", "4,096"],
    ]
    assert lines[4] == (
        "driver memory, scale 1 -> 10 (10.0x the rows): python driver peak RSS 95 -> 97 MiB (1.02x): flat; "
        "JVM peak heap after GC 350 -> 420 MiB (G1 collects old garbage lazily: see the bounded-heap check)"
    )


def test_the_verdict_says_when_memory_grows_with_the_input() -> None:
    runs = [
        spark_run("1", 1_000_000, driver=95.0, jvm=2000.0, heap_after=300.0),
        spark_run("10", 10_000_000, driver=100.0, jvm=3900.0, heap_after=2400.0),
    ]

    assert "python driver peak RSS 95 -> 100 MiB (1.05x): flat;" in harness.memory_verdict(runs)
    runs.append(spark_run("100", 100_000_000, driver=400.0, jvm=3900.0, heap_after=2400.0))
    assert "95 -> 400 MiB (4.21x): NOT flat (grew more than 1.5x)" in harness.memory_verdict(runs)
    assert "needs spark runs on two input sizes" in harness.memory_verdict(runs[:1])


def test_a_run_without_a_gc_log_shows_dashes() -> None:
    run = measurement("spark", "1", 1_000, wall_s=30.0, peaks={"engine": 90.0, "jvm": 1000.0})

    (row,) = harness.memory_rows([run])

    assert row == ("spark", "1", "1,000", "90", "1,000", "-", "-", "-", "-")
    assert harness.as_json(run)["gc"] is None


def test_the_results_table_keeps_its_columns() -> None:
    runs = [
        measurement("duckdb", "1", 1_000_000, wall_s=4.0),
        measurement("spark", "1", 1_000_000, wall_s=40.0),
    ]

    lines = harness.render_table(runs).splitlines()

    assert lines[0].split()[:4] == ["engine", "scale", "rows", "read"]
    assert lines[3].split()[:8] == [
        "spark",
        "1",
        "1,000,000",
        "999,990",
        "1,234.5000",
        "40.0",
        "1,500",
        "25,000",
    ]
    assert lines[3].split()[8] == "10.0"


# Memory cap and stopped engines

# The interpreter idles, then the blob is held a second, so the harness's sampler sees each
# (the peak is sampled, not the kernel's): a sample taken mid-exec would read a few pages.
ALLOCATE_400_MIB = (
    "import time; time.sleep(0.5); "
    "blob = bytearray(400 * 2**20); print('allocated', len(blob)); time.sleep(1)"
)
# A stand-in for the job: allocates past the cap, then writes the run report the harness reads.
FAKE_JOB = (
    ALLOCATE_400_MIB
    + """
import json, pathlib, sys
reports = pathlib.Path(sys.argv[1]) / "reports"
reports.mkdir(parents=True)
figures = {"read": 3, "published": 3, "filtered": {}, "quarantined": {}, "published_revenue": "1.5"}
(reports / "run_report.json").write_text(json.dumps(figures))
"""
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8g", 8 * 2**30), ("200m", 200 * 2**20), ("512MiB", 512 * 2**20), ("1.5G", 3 * 2**29), ("none", None)],
)
def test_memory_caps_are_read_in_binary_units(text: str, expected: int | None) -> None:
    assert harness.parse_size(text) == expected


def test_a_cap_that_is_not_a_size_is_refused() -> None:
    with pytest.raises(ValueError, match="not a size"):
        harness.parse_size("lots")


def fake_engine(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Every engine's command becomes `python -c code <output>`."""

    def command(engine: str, input_path: Path, output: Path, python: str, **_: object) -> list[str]:
        return [python, "-c", code, str(output)]

    monkeypatch.setattr(harness, "engine_command", command)


def test_an_engine_that_allocates_past_its_cap_is_a_stopped_result(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_engine(monkeypatch, ALLOCATE_400_MIB)

    run = harness.run_engine(
        "pandas", tmp_path / "online_retail_scale_1.csv", tmp_path, memory_cap=200 * 2**20
    )

    assert run.stopped == "MemoryError"
    assert run.memory_cap_mib == 200.0
    assert (run.read, run.published, run.rows_per_s) == (0, 0, 0.0)
    assert 0 < run.peak_rss_mib < 200


def test_the_same_engine_completes_without_a_cap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_engine(monkeypatch, FAKE_JOB)

    run = harness.run_engine(
        "spark", tmp_path / "online_retail_scale_1.csv", tmp_path, memory_cap=200 * 2**20
    )

    # The Spark job is never capped: its JVM is bounded by spark.driver.memory instead.
    assert (run.stopped, run.memory_cap_mib) == (None, None)
    assert (run.read, run.published, run.revenue) == (3, 3, Decimal("1.5"))
    assert run.peak_rss_mib > 400


def test_an_engine_killed_by_a_signal_says_which(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_engine(
        monkeypatch, "import os, signal; print('working', flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    )

    run = harness.run_engine("polars", tmp_path / "online_retail_scale_1.csv", tmp_path)

    assert run.stopped == "killed by SIGKILL: working"


def test_the_short_error_prefers_the_line_that_names_the_memory_error() -> None:
    duckdb_log = (
        "Traceback (most recent call last):\n"
        "_duckdb.OutOfMemoryException: Out of Memory Error: Failed to allocate block of 262144 bytes\n\n"
        "Possible solutions:\n* Reducing the number of threads (SET threads=X)\n"
        "See also https://duckdb.org/docs/current/guides/performance/how_to_tune_workloads\n"
    )
    rust_abort = "memory allocation of 8388528 bytes failed\nstack backtrace:\nskipping backtrace printing\n"

    assert harness.short_error(duckdb_log, 1).startswith("_duckdb.OutOfMemoryException: Out of Memory Error")
    assert (
        harness.short_error(rust_abort, -6) == "killed by SIGABRT: memory allocation of 8388528 bytes failed"
    )
    assert harness.short_error("ValueError: bad input\n", 2) == "ValueError: bad input"
    assert harness.short_error("", 3) == "exited 3"


def stopped(engine: str, scale: str, read: int, *, wall_s: float, error: str) -> harness.Measurement:
    run = measurement(engine, scale, read, wall_s=wall_s)
    return dataclasses.replace(
        run,
        read=0,
        published=0,
        filtered=0,
        quarantined=0,
        revenue=Decimal(0),
        stopped=error,
        memory_cap_mib=8192.0,
    )


def test_the_table_shows_a_stopped_engine_with_its_error() -> None:
    runs = [
        measurement("duckdb", "100", 54_000_000, wall_s=100.0),
        stopped("pandas", "100", 54_000_000, wall_s=312.4, error="MemoryError"),
    ]

    lines = harness.render_table(runs).splitlines()

    assert lines[3].split()[:9] == ["pandas", "100", "-", "stopped", "-", "312.4", "1,500", "-", "-"]
    assert lines[3].endswith("STOPPED: MemoryError")
    assert lines[2].split()[8] == "1.0"  # DuckDB's own ratio, as before


def test_a_stopped_engine_is_left_out_of_the_agreement_check_and_says_so() -> None:
    runs = [
        measurement("duckdb", "100", 54_000_000, wall_s=100.0),
        stopped("pandas", "100", 54_000_000, wall_s=312.4, error="MemoryError"),
    ]

    assert harness.check_agreement(runs) == []
    assert harness.stopped_notes(runs) == [
        "pandas at scale 100 stopped after 312.4 s, peak RSS 1,500 MiB under a 8,192 MiB memory cap: "
        "MemoryError (left out of the agreement check)"
    ]


def test_a_stopped_duckdb_gives_no_ratio() -> None:
    runs = [
        stopped("duckdb", "100", 54_000_000, wall_s=50.0, error="Out of Memory Error"),
        measurement("spark", "100", 54_000_000, wall_s=500.0),
    ]

    assert harness.render_table(runs).splitlines()[3].split()[8] == "-"


def test_the_scale_up_verdict_compares_scale_10_with_scale_100_of_the_same_run() -> None:
    ten = spark_run("10", 5_000_000, driver=97.0, jvm=3900.0, heap_after=420.0)
    hundred = dataclasses.replace(
        spark_run("100", 50_000_000, driver=96.0, jvm=3900.0, heap_after=430.0), wall_s=400.0
    )
    slow = dataclasses.replace(
        spark_run("100", 50_000_000, driver=99.0, jvm=3900.0, heap_after=430.0), wall_s=480.0
    )

    assert harness.scale_up_verdict([ten, hundred]) == (
        "issue #18, scale 10 -> 100 (10.0x the rows): wall 40.0 -> 400.0 s (10.0x, at most 11x: met); "
        "python driver peak RSS 97 -> 96 MiB (no more: met)"
    )
    assert harness.scale_up_verdict([ten, slow]).endswith(
        "(12.0x, at most 11x: NOT met); python driver peak RSS 97 -> 99 MiB (no more: NOT met, +2 MiB)"
    )
    assert "not compared" in harness.scale_up_verdict([hundred])
    assert 'make bench SCALES="10 100"' in harness.scale_up_verdict([ten])
    failed = dataclasses.replace(hundred, stopped="killed by SIGKILL")
    assert "not compared" in harness.scale_up_verdict([ten, failed])
    assert "needs spark runs on two input sizes" in harness.memory_verdict([ten, failed])


# docs/benchmarks.md


def bench_run(measurements: list[harness.Measurement]) -> bench_doc.BenchRun:
    return bench_doc.BenchRun(
        command="python benchmarks/run.py --scales 1 10",
        started_utc="2025-01-02 03:04 UTC",
        wall_s=300.0,
        load_before=(0.1, 0.2, 0.3),
        load_after=(1.9, 1.1, 0.5),
        measurements=measurements,
        stream_records_per_s=12_345.6,
        problems=[],
        machine={"CPU": "Test CPU @ 2.0GHz", "cores": "2 logical, 2 usable by this process"},
        versions={"Python": "CPython 3.11.9", "Java": 'openjdk version "17.0.15"'},
    )


def test_the_generated_part_has_every_section() -> None:
    runs = [
        measurement("duckdb", "1", 1_000_000, wall_s=4.0),
        spark_run("1", 1_000_000, driver=95.0, jvm=2210.0, heap_after=350.0),
        spark_run("10", 10_000_000, driver=97.0, jvm=3900.0, heap_after=420.0),
    ]

    text = bench_doc.render_markdown(bench_run(runs))

    assert "```\npython benchmarks/run.py --scales 1 10\n```" in text
    assert "|  | this machine |\n| --- | --- |\n| CPU | Test CPU @ 2.0GHz |" in text
    assert "| load average 1/5/15 min | before 0.10 / 0.20 / 0.30, after 1.90 / 1.10 / 0.50 |" in text
    assert '| Java | openjdk version "17.0.15" |' in text
    assert "| spark | 1 | 1,000,000 | 999,990 | 40.0 | 1,500 | 25,000 | 10.0 | 0.5/0.4/0.3 -> 1.5 |" in text
    assert "| scale | read_and_classify | write_staging |\n| --- | ---: | ---: |\n| 1 | 9.4 | 5.8 |" in text
    assert "| spark | 10 | 10,000,000 | 97 | 3,900 | 420 | 1,024 / 4,096 | 7 (1) | - |" in text
    assert "JVM peak heap after GC 350 -> 420 MiB" in text
    assert "12,346 records/s on one core" in text
    assert "All engines published the same rows and revenue at each scale." in text
    assert bench_doc.BEGIN not in text and bench_doc.END not in text


HAND_WRITTEN = f"""# Benchmarks

Our notes, which mention `{bench_doc.BEGIN}` inline without being a marker.

{bench_doc.BEGIN}
old figures
{bench_doc.END}

## What moved which figure

- read once as text lines: read_and_classify 14 s -> 9 s
"""


def outside_markers(text: str) -> tuple[str, str]:
    head, rest = text.split(f"\n{bench_doc.BEGIN}\n", 1)
    return head, rest.split(f"\n{bench_doc.END}\n", 1)[1]


def test_two_writes_keep_the_hand_written_part(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(HAND_WRITTEN)

    bench_doc.write_doc(doc, "first run\n")
    bench_doc.write_doc(doc, "second run")

    text = doc.read_text()
    assert outside_markers(text) == outside_markers(HAND_WRITTEN)
    assert f"{bench_doc.BEGIN}\nsecond run\n{bench_doc.END}\n" in text
    assert "first run" not in text and "old figures" not in text
    assert not list(tmp_path.glob("*.partial"))


def test_a_missing_document_is_created_with_the_hand_written_heading(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "benchmarks.md"

    bench_doc.write_doc(doc, "figures")
    bench_doc.write_doc(doc, "new figures")

    head, tail = outside_markers(doc.read_text())
    assert head.startswith("# Benchmarks\n")
    assert tail == "\n## What moved which figure\n"
    assert "new figures" in doc.read_text()


def test_a_document_without_markers_gets_the_block_appended() -> None:
    assert bench_doc.splice("# Notes\n\nkept\n", "figures") == (
        f"# Notes\n\nkept\n\n{bench_doc.BEGIN}\nfigures\n{bench_doc.END}\n"
    )


@pytest.mark.parametrize(
    "document",
    [
        f"{bench_doc.BEGIN}\nonly a start\n",
        f"{bench_doc.END}\n{bench_doc.BEGIN}\n",
        f"{bench_doc.BEGIN}\n{bench_doc.END}\n{bench_doc.BEGIN}\n{bench_doc.END}\n",
    ],
)
def test_broken_markers_leave_the_document_alone(tmp_path: Path, document: str) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(document)

    with pytest.raises(ValueError, match="leaving the document alone"):
        bench_doc.write_doc(doc, "figures")
    assert doc.read_text() == document


def test_the_committed_document_has_its_markers_and_heading() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md").read_text()

    assert bench_doc.splice(text, "figures").count(bench_doc.BEGIN) == 1
    assert "\n## What moved which figure\n" in outside_markers(text)[1]


def test_the_generated_part_shows_a_stopped_engine_and_the_cap() -> None:
    runs = [
        measurement("duckdb", "100", 54_000_000, wall_s=100.0),
        stopped("pandas", "100", 54_000_000, wall_s=312.4, error="MemoryError"),
    ]
    run = dataclasses.replace(bench_run(runs), memory_cap="8g")

    text = bench_doc.render_markdown(run)

    assert "| pandas | 100 | - | stopped | 312.4 | 1,500 | - | - | 0.5/0.4/0.3 -> 1.5 |" in text
    assert (
        "- pandas at scale 100 stopped after 312.4 s, peak RSS 1,500 MiB "
        "under a 8,192 MiB memory cap: MemoryError" in text
    )
    assert "capped at 8g" in text
    assert (
        "All engines that completed published the same rows and revenue at each scale.\n"
        "- pandas at scale 100: stopped, not compared" in text
    )
    assert "issue #18, scale 10 -> 100: not compared" in text
    assert "ran without a memory cap" in bench_doc.render_markdown(bench_run(runs[:1]))


def test_the_notes_of_a_run_get_a_section_of_their_own() -> None:
    run = dataclasses.replace(
        bench_run([measurement("duckdb", "1", 1_000, wall_s=1.0)]),
        notes=["bounded memory: the job at scale 10 with spark.driver.memory=512m: 50.0 s"],
    )

    text = bench_doc.render_markdown(run)

    assert "### Notes\n\n- bounded memory: the job at scale 10 with spark.driver.memory=512m: 50.0 s" in text
    assert "### Notes" not in bench_doc.render_markdown(
        bench_run([measurement("duckdb", "1", 1_000, wall_s=1.0)])
    )


def test_the_floor_note_puts_the_floor_beside_duckdb_and_the_job() -> None:
    import run

    job = measurement("spark", "10", 5_000, wall_s=40.0)
    duckdb = measurement("duckdb", "10", 5_000, wall_s=10.0)

    note = run.floor_note(job, (25.0, 4_990), [job, duckdb])

    assert note.startswith("spark floor at scale 10 ")
    assert note.endswith(": 25.0 s, 2.5x DuckDB, 4,990 rows published (the job: 40.0 s, 4,990 rows)")
    assert run.floor_note(job, "FAILED: exited 1", [job]).endswith("quality gate): FAILED: exited 1")
