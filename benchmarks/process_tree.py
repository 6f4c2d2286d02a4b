"""The resident memory of an engine's process tree, sampled while it runs (issue #7).

A sample lists every process of the tree (psutil when installed, else /proc) with its name and
RSS; `TreePeaks` keeps the peak of their sum and, split by `process_kind`, the peak of each
part's: the engine's own process (the Spark job's Python driver), its JVMs, other Python
processes (PySpark's workers) and the rest (spark-submit's shell scripts).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

try:
    import psutil
except ImportError:  # /proc is read instead (Linux only)
    psutil = None

ENGINE, JVM, PYTHON_WORKERS, OTHER = "engine", "jvm", "python_workers", "other"

Sample = Sequence[tuple[int, str, int]]  # (pid, process name, RSS bytes)


def _tree_psutil(root: int) -> list[tuple[int, str, int]]:
    try:
        process = psutil.Process(root)
        tree = [process, *process.children(recursive=True)]
    except psutil.Error:
        return []
    sample = []
    for member in tree:
        with contextlib.suppress(psutil.Error):  # it ended between the listing and the reading
            sample.append((member.pid, member.name(), member.memory_info().rss))
    return sample


def _tree_proc(root: int) -> list[tuple[int, str, int]]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    page = os.sysconf("SC_PAGE_SIZE")
    sample = []
    for pid in tree:
        with contextlib.suppress(OSError, IndexError, ValueError):
            rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
            sample.append((pid, Path(f"/proc/{pid}/comm").read_text().strip(), rss))
    return sample


def tree_sample(root: int) -> list[tuple[int, str, int]]:
    """(pid, name, RSS bytes) of `root` and each of its descendants now."""
    return _tree_psutil(root) if psutil is not None else _tree_proc(root)


def tree_rss(root: int) -> int:
    """Bytes resident in `root` and all its descendants (shared pages counted per process)."""
    return sum(rss for _, _, rss in tree_sample(root))


def process_kind(pid: int, root: int, name: str) -> str:
    """Which part of an engine a process is. The root is the engine's own process (Python for
    every engine); under spark-submit, the JVM is `java` (the launcher's short-lived JVM, then
    the job's, which also runs the executor in local mode)."""
    if pid == root:
        return ENGINE
    if name.startswith("java"):
        return JVM
    if name.startswith("python"):
        return PYTHON_WORKERS
    return OTHER


@dataclass
class TreePeaks:
    """The peaks over one run's samples: of the tree's summed RSS, of each kind's summed RSS,
    and of each JVM's RSS (bytes)."""

    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    jvms: dict[int, int] = field(default_factory=dict)

    def add(self, root: int, sample: Sample) -> None:
        self.total = max(self.total, sum(rss for _, _, rss in sample))
        kinds: dict[str, int] = {}
        for pid, name, rss in sample:
            kind = process_kind(pid, root, name)
            kinds[kind] = kinds.get(kind, 0) + rss
            if kind == JVM:
                self.jvms[pid] = max(self.jvms.get(pid, 0), rss)
        for kind, rss in kinds.items():
            self.by_kind[kind] = max(self.by_kind.get(kind, 0), rss)

    @property
    def biggest_jvm(self) -> int | None:
        """The pid of the JVM with the biggest peak: the job's, not spark-submit's launcher."""
        return max(self.jvms, key=self.jvms.__getitem__, default=None)
