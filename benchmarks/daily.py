"""`make bench-daily`: what a daily run costs against the history it lands in.

Splits `make data SCALE=N`'s file into one CSV per invoice day, loads every day but the last
into an output with one incremental run (the history), then times, each in a fresh process
like a scheduled run: the last day arriving (its month holds the rest of that month already),
a mid-history day re-delivered unchanged (skipped: nothing new), the same day re-delivered
corrected (its month rewritten), and one full run over every day for comparison. Prints a
table of wall time, lines read and months rewritten. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def split_by_day(source: Path, folder: Path) -> list[Path]:
    """One CSV per invoice day (named yyyy-mm-dd.csv), with the source's header."""
    folder.mkdir(parents=True, exist_ok=True)
    handles: dict[str, Any] = {}
    writers: dict[str, Any] = {}
    with source.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        for row in reader:
            month, day, year = row[4].split(" ")[0].split("/")
            key = f"{year}-{int(month):02d}-{int(day):02d}"
            if key not in writers:
                handles[key] = (folder / f"{key}.csv").open("w", newline="", encoding="utf-8")
                writers[key] = csv.writer(handles[key], lineterminator="\r\n")
                writers[key].writerow(header)
            writers[key].writerow(row)
    for opened in handles.values():
        opened.close()
    return sorted(folder.glob("*.csv"))


def run_job(incoming: Path, output: Path, *, incremental: bool) -> tuple[float, dict]:
    """One batch run in a fresh process; (wall seconds, its run report)."""
    command = [
        sys.executable,
        "-m",
        "retail_pipeline",
        "batch",
        "--input",
        str(incoming),
        "--output",
        str(output),
    ]
    if incremental:
        command.append("--incremental")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "lib"), "SPARK_LOCAL_IP": "127.0.0.1"}
    started = time.perf_counter()
    subprocess.run(
        command, check=True, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - started
    report = json.loads((output / "reports" / "run_report.json").read_text())
    return seconds, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--work", default="data/bench/daily")
    args = parser.parse_args(argv)
    source = REPO_ROOT / "data" / "synthetic" / f"online_retail_scale_{args.scale}.csv"
    if not source.exists():
        generate = [sys.executable, "-m", "retail_pipeline", "generate", "--scale", str(args.scale)]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "lib")}
        subprocess.run(generate, check=True, env=env, cwd=REPO_ROOT)
    work = (REPO_ROOT / args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    days = split_by_day(source, work / "days")
    incoming, output = work / "incoming", work / "output"
    incoming.mkdir()
    for day in days[:-1]:
        shutil.copy(day, incoming / day.name)
    rows = []

    def measure(label: str, *, target: Path = output, incremental: bool = True) -> None:
        seconds, report = run_job(incoming, target, incremental=incremental)
        rows.append(
            (label, seconds, report["read"], len(report["inputs"]), len(report["curated_partitions"]))
        )

    measure(f"history: {len(days) - 1} day files, one run")
    shutil.copy(days[-1], incoming / days[-1].name)
    measure(f"daily: {days[-1].stem} arrives")
    measure("nothing new")
    middle = days[len(days) // 2]
    with middle.open(newline="", encoding="utf-8") as handle:
        lines = handle.readlines()
    (incoming / middle.name).write_text("".join(lines[: max(2, len(lines) // 2)]), encoding="utf-8")
    measure(f"re-delivered corrected: {middle.stem}")
    measure("full run over every day (fresh output)", target=work / "full", incremental=False)
    print(f"\nscale {args.scale}: {len(days)} day files\n")
    print("| run | wall s | lines read | files read | months rewritten |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, seconds, read, files, months in rows:
        print(f"| {label} | {seconds:.1f} | {read:,} | {files} | {months} |")
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\nload average 1/5/15 min after: {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
