"""JVM tuning for local runs: a class-data-sharing archive of Spark's classes and C1-only
compilation of Spark's code generators. Off the main path: `session.get_spark` hands its conf
to `tuned_driver_conf` and knows nothing of either; platform runs (EMR, Glue) never use them.
Why each helps, with figures: docs/benchmarks.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pyspark is imported by the functions that use it: config reads this module
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"
# A HotSpot compiler-directive method pattern: the JVM refuses to start on one it cannot parse.
METHOD_PATTERN = re.compile(r"[A-Za-z0-9_$*]+(/[A-Za-z0-9_$*]+)*\.[A-Za-z0-9_$*<>]+")


def is_method_pattern(pattern: str) -> bool:
    """Whether `pattern` is one the JVM accepts in compiler directives: package/Class.method,
    * as a wildcard."""
    return METHOD_PATTERN.fullmatch(pattern) is not None


@contextmanager
def tuned_driver_conf(
    conf: Mapping[str, str], *, master: str | None, class_data_sharing: str | None, jit_c1_only: Sequence[str]
) -> Iterator[dict[str, str]]:
    """`conf` with the tuning's options added to the driver's extra JVM options when this
    process is about to start a local JVM; as it is otherwise (a platform's master, or a JVM
    already running). For the block that builds the session: see `local_jvm_options`."""
    from pyspark import SparkContext

    no_jvm_yet = SparkContext._gateway is None  # noqa: SLF001 - whether this process starts the JVM
    starts_local_jvm = bool(master and master.startswith("local")) and no_jvm_yet
    tuning = local_jvm_options(
        class_data_sharing=class_data_sharing if starts_local_jvm else None,
        jit_c1_only=jit_c1_only if starts_local_jvm else (),
    )
    with tuning as options:
        tuned = dict(conf)
        if options:
            given = tuned.get(DRIVER_JAVA_OPTIONS)
            tuned[DRIVER_JAVA_OPTIONS] = " ".join([given, *options] if given else options)
        yield tuned


@contextmanager
def local_jvm_options(*, class_data_sharing: str | None, jit_c1_only: Sequence[str]) -> Iterator[list[str]]:
    """The driver's extra JVM options for a local session this process starts; files the JVM
    reads at start (the compiler directives) live for the block only."""
    global _writing_archive
    options: list[str] = []
    directives: Path | None = None
    if class_data_sharing:
        cds, _writing_archive = class_data_sharing_options(class_data_sharing)
        options.append(cds)
    if jit_c1_only:
        handle, name = tempfile.mkstemp(prefix="retail-pipeline-jit-", suffix=".json")
        with os.fdopen(handle, "w") as file:
            file.write(c1_only_directives(jit_c1_only))
        directives = Path(name)
        options.append(c1_only_options(directives))
    try:
        yield options
    finally:
        if directives is not None:
            directives.unlink(missing_ok=True)


def class_data_sharing_options(directory: str | Path) -> tuple[str, Path | None]:
    """JVM options for a local driver: load Spark's classes from the class-data-sharing
    archive in `directory`, or, when this JVM and classpath have none yet, write one. Returns
    the options and, when writing, the file the JVM writes at exit (`stop` adopts it).

    A JVM's start goes largely to loading and verifying thousands of classes from Spark's
    jars, which an archive maps instead. The JVM crashes on a truncated archive, so a written
    one is adopted only after its JVM exited cleanly (`stop`), by an atomic rename.
    """
    import pyspark

    directory = Path(directory).resolve()
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.realpath(
        os.path.join(java_home, "bin", "java") if java_home else shutil.which("java") or "java"
    )
    jars = Path(pyspark.__file__).parent / "jars"
    identity = [pyspark.__version__, sorted(p.name for p in jars.glob("*.jar")), java, _mtime(java)]
    archive = directory / f"spark-{hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]}.jsa"
    if archive.exists():
        return f"-XX:SharedArchiveFile={archive}", None
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.partial"):  # left by runs that failed before `finish`
        writer = stale.name.split(".")[1]
        if writer.isdigit() and not _alive(int(writer)):
            stale.unlink(missing_ok=True)
    writing = archive.with_name(f"{archive.stem}.{os.getpid()}.partial")
    # -Xlog:cds*=off: dumping lists every class it skips (signed jars, old class versions).
    return f"-XX:ArchiveClassesAtExit={writing} -Xlog:cds*=off", writing


def c1_only_directives(patterns: Sequence[str]) -> str:
    """HotSpot compiler directives (JSON) under which methods matching `patterns` are compiled
    by C1 only: the JIT marks them not compilable by C2 and compiles them at C1's full
    optimization instead.

    For code a job runs per query, closure or lambda rather than per row, such as Spark's
    closure cleaner reading class files with ASM and Janino compiling the generated Java:
    their methods are huge, and C2's time on them is CPU a short local job never earns back."""
    return json.dumps([{"match": list(patterns), "c2": {"Exclude": True}}], indent=1)


def c1_only_options(directives: Path) -> str:
    """JVM options that load the compiler directives in the file `directives`."""
    return f"-XX:+UnlockDiagnosticVMOptions -XX:CompilerDirectivesFile={directives}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


# The archive this process's JVM writes when it exits, if any (see class_data_sharing_options).
_writing_archive: Path | None = None


def finish_class_data_sharing(spark: SparkSession) -> None:
    """At the end of a run whose JVM writes the class-data-sharing archive: stop the session,
    let the JVM exit, wait for it, and keep the archive only when it exited cleanly. Does
    nothing (the session goes on) in any other run."""
    from pyspark import SparkContext

    global _writing_archive
    writing, _writing_archive = _writing_archive, None
    if writing is None:
        return
    spark.stop()
    jvm = getattr(SparkContext._gateway, "proc", None)  # noqa: SLF001 - the JVM's Popen
    exit_code = None
    if jvm is not None:
        jvm.stdin.close()  # PySpark's gateway exits on end of input
        try:
            exit_code = jvm.wait(timeout=120)
        except subprocess.TimeoutExpired:
            logger.warning("The JVM did not exit within 120 s: class-data-sharing archive dropped")
    if exit_code == 0 and writing.exists():
        writing.replace(writing.with_name(writing.name.split(".")[0] + ".jsa"))
        logger.info("Wrote the class-data-sharing archive for the next runs")
    else:
        writing.unlink(missing_ok=True)
