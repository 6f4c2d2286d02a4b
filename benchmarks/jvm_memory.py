"""What the Spark job's JVM holds: its unified GC log, read back after the run (issue #7).

In local mode the driver JVM is also the executor, and its resident set grows toward its heap
limit whether the data needs it or not (G1 keeps freed regions committed), so the JVM's RSS
says little about what the job keeps. The heap left after each evacuating collection does: it
is an upper bound on the live objects at that moment (after a young pause it still counts old
garbage not yet collected; after a full pause it is exact). Its peak over the run is the figure
that "nothing collected to the driver" keeps flat as the input grows.

`java_tool_options` makes every JVM of the engine's process tree write `gc-<pid>.log`;
`jvm_gc_summary` picks the job's JVM among them (not the spark-submit launcher's, which
collects nothing) and `parse_gc_log` reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

GC_LOG_NAME = "gc-%p.log"  # %p: the JVM's pid, so the launcher's JVM and the job's do not share a file
_SIZE = r"(\d+(?:\.\d+)?)([BKMGT])"
# e.g. "[3.456s][info][gc] GC(12) Pause Young (Normal) (G1 Evacuation Pause) 412M->120M(1024M) 35.123ms"
_PAUSE = re.compile(rf"\bGC\((\d+)\)\s+(Pause\b.*?)\s+{_SIZE}->{_SIZE}\({_SIZE}\)\s+(\d+(?:\.\d+)?)ms")
# gc+init, once at start: "[0.007s][info][gc,init] Heap Max Capacity: 4G"
_MAX_CAPACITY = re.compile(rf"Heap Max Capacity:\s+{_SIZE}")
# G1's remark and cleanup pauses report sizes but move nothing: what follows "->" still holds
# the garbage allocated since the last collection, so they are counted but not used for the peak.
_NON_EVACUATING = ("Pause Remark", "Pause Cleanup")
_UNIT_MIB = {"B": 2**-20, "K": 2**-10, "M": 1.0, "G": 2**10, "T": 2**20}


@dataclass(frozen=True)
class GcSummary:
    log: str
    pauses: int  # pauses that report heap sizes
    full_pauses: int
    peak_after_mib: float | None  # the most heap left after an evacuating pause (young, mixed, full)
    peak_before_mib: float | None  # the most heap in use when a pause started (garbage included)
    peak_committed_mib: float | None  # the most heap the JVM had reserved (the figure in parentheses)
    max_capacity_mib: float | None  # the heap limit as the JVM resolved it (-Xmx, spark.driver.memory)
    pause_ms: float  # all pauses together


def _mib(number: str, unit: str) -> float:
    return float(number) * _UNIT_MIB[unit]


def parse_gc_log(lines: Iterable[str], *, log: str = "") -> GcSummary:
    """The peaks of a JDK 9+ unified GC log (`-Xlog:gc` or `-Xlog:gc,gc+init`, any decorators)."""
    pauses = full = 0
    after: list[float] = []
    before: list[float] = []
    committed: list[float] = []
    max_capacity = None
    pause_ms = 0.0
    for line in lines:
        if match := _PAUSE.search(line):
            kind = match.group(2)
            pauses += 1
            full += kind.startswith("Pause Full")
            before.append(_mib(match.group(3), match.group(4)))
            committed.append(_mib(match.group(7), match.group(8)))
            pause_ms += float(match.group(9))
            if not kind.startswith(_NON_EVACUATING):
                after.append(_mib(match.group(5), match.group(6)))
        elif match := _MAX_CAPACITY.search(line):
            max_capacity = _mib(match.group(1), match.group(2))
    return GcSummary(
        log=log,
        pauses=pauses,
        full_pauses=full,
        peak_after_mib=max(after, default=None),
        peak_before_mib=max(before, default=None),
        peak_committed_mib=max(committed, default=None),
        max_capacity_mib=max_capacity,
        pause_ms=round(pause_ms, 3),
    )


def read_gc_log(path: Path) -> GcSummary:
    with path.open(encoding="utf-8", errors="replace") as lines:
        return parse_gc_log(lines, log=str(path))


def jvm_gc_summary(directory: Path, *, jvm_pid: int | None = None) -> GcSummary | None:
    """The job's JVM's log in `directory`: the one of `jvm_pid` (the JVM the sampler saw biggest)
    when it exists, else the one with the most pauses, then the biggest heap; None without logs."""
    if jvm_pid is not None:
        own = directory / GC_LOG_NAME.replace("%p", str(jvm_pid))
        if own.is_file():
            return read_gc_log(own)
    summaries = [read_gc_log(path) for path in sorted(directory.glob(GC_LOG_NAME.replace("%p", "*")))]
    return max(
        summaries,
        key=lambda s: (s.pauses, s.max_capacity_mib or 0.0, s.peak_committed_mib or 0.0),
        default=None,
    )


def java_tool_options(directory: Path, existing: str | None = None) -> str:
    """JAVA_TOOL_OPTIONS that make each JVM log its collections to `directory`/gc-<pid>.log.

    The JVM splits the variable on whitespace unless quoted ('...'), and -Xlog splits on colons
    unless the file name is in double quotes: both are quoted, so any folder name works."""
    target = str(directory.resolve() / GC_LOG_NAME)
    if "'" in target or '"' in target:
        raise ValueError(f"{directory}: a GC log folder name cannot hold quotes")
    option = f"'-Xlog:gc,gc+init:file=\"{target}\"'"
    return f"{existing} {option}" if existing else option
