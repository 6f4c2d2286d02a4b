"""`make bench`: the batch job's wall time and stage breakdown on synthetic inputs.

Each scale runs the job as a user would (a fresh `python -m retail_pipeline batch` process,
JVM start included) on `make data SCALE=N`'s file, and prints one table. Figures, never
assertions: the tests do not time anything.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "lib"))

from retail_pipeline import synthetic  # noqa: E402


def run_job(input_path: Path, output: Path) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS of the job's process tree (MiB) and its run report."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "retail_pipeline",
            "batch",
            "--input",
            str(input_path),
            "--output",
            str(output),
        ],
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "lib")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = json.loads((output / "reports" / "run_report.json").read_text())
    return wall, peak_mib, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", nargs="+", type=float, default=[1.0, 10.0])
    parser.add_argument("--work", default=str(REPO_ROOT / "data" / "bench"))
    args = parser.parse_args(argv)
    work = Path(args.work)
    header = f"{'scale':>6} {'rows read':>12} {'wall s':>8} {'rows/s':>10} {'peak RSS MiB':>13}  stages (s)"
    lines = [header, "-" * len(header)]
    for scale in args.scales:
        input_path = REPO_ROOT / "data" / "synthetic" / f"online_retail_scale_{scale:g}.csv"
        synthetic.main(["--scale", f"{scale:g}", "--output", str(input_path)])
        output = work / f"scale_{scale:g}"
        wall, peak, report = run_job(input_path, output)
        stages = ", ".join(f"{name} {seconds:.1f}" for name, seconds in report["durations_s"].items())
        rate = report["read"] / wall
        lines.append(
            f"{scale:>6g} {report['read']:>12,} {wall:>8.1f} {rate:>10,.0f} {peak:>13,.0f}  {stages}"
        )
        print(lines[-1], flush=True)
    print("\n".join(["", *lines]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
