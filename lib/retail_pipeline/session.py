"""Building the SparkSession: the only place that does."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

# Settings the transforms rely on, applied to every session whatever the platform's defaults:
# invalid casts and dates become null (and are quarantined) instead of failing the job; the
# default EXCEPTION policy would raise on a date the old lenient parser accepted (2/30/2011).
REQUIRED_CONF = {
    "spark.sql.ansi.enabled": "false",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
}

# What the job is tuned for, unless a config says otherwise: partitioned writes keep one
# Parquet writer open per partition a task meets instead of sorting its rows by partition
# first (`batch.write_lines`); past 64 open files a task falls back to the sort.
DEFAULT_CONF = {
    "spark.sql.optimizer.plannedWrite.enabled": "false",
    "spark.sql.maxConcurrentOutputFileWriters": "64",
    # Local files without Hadoop's .crc side files: a re-delivered input beside a stale
    # checksum would fail the read (ChecksumException), and the outputs need none.
    "spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
}


def class_data_sharing_options(directory: str | Path) -> tuple[str, Path | None]:
    """JVM options for a local driver: load Spark's classes from the class-data-sharing
    archive in `directory`, or, when this JVM and classpath have none yet, write one. Returns
    the options and, when writing, the file the JVM writes at exit (`stop` adopts it).

    A JVM's start and a job's first seconds go largely to loading and verifying thousands of
    classes from Spark's jars; mapped from an archive, the local session starts in ~2-3 s
    instead of ~4-5 s (SCALE=1 job: 25.6 s -> 20.0 s end to end on the 2-core machine).
    The JVM crashes on a truncated archive, so a written one is adopted only after its JVM
    exited cleanly (`stop`), by an atomic rename.
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
    their methods are huge, so C2 spends tenths of a second on each (four of ASM's
    `ClassReader.readCode` alone during a SCALE=1 quality gate), CPU a short local job on
    two cores never earns back (configs/local.yaml has the figures)."""
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


def get_spark(
    app_name: str,
    *,
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
    class_data_sharing: str | None = None,
    jit_c1_only: Sequence[str] = (),
) -> SparkSession:
    """The session for a job. `master` is None unless a local config names one: spark-submit,
    EMR and Glue decide it otherwise. On Glue and EMR this returns the platform's session with
    `conf` applied where Spark allows it at runtime. `class_data_sharing` (a folder) and
    `jit_c1_only` (method patterns, see c1_only_directives) apply to a local master only, and
    only when this process starts the JVM."""
    global _writing_archive
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    conf = dict(conf or {})
    jvm_options: list[str] = []
    directives: Path | None = None
    if master and master.startswith("local") and SparkContext._gateway is None:  # noqa: SLF001 - this process has no JVM yet
        if class_data_sharing:
            options, _writing_archive = class_data_sharing_options(class_data_sharing)
            jvm_options.append(options)
        if jit_c1_only:
            handle, name = tempfile.mkstemp(prefix="retail-pipeline-jit-", suffix=".json")
            with os.fdopen(handle, "w") as file:
                file.write(c1_only_directives(jit_c1_only))
            directives = Path(name)
            jvm_options.append(c1_only_options(directives))
    if jvm_options:
        key = "spark.driver.extraJavaOptions"
        conf[key] = " ".join([conf[key], *jvm_options] if conf.get(key) else jvm_options)
    runtime_conf = {**DEFAULT_CONF, **conf, **REQUIRED_CONF}
    for key, value in runtime_conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    finally:
        if directives is not None:  # read once, while the JVM starts
            directives.unlink(missing_ok=True)
    # A platform's ready-made session (Glue, EMR notebooks) ignores the builder's settings.
    for key in (*DEFAULT_CONF, *REQUIRED_CONF):
        spark.conf.set(key, runtime_conf[key])
    logger.info("Spark %s session '%s' on %s", spark.version, app_name, spark.sparkContext.master)
    return spark
