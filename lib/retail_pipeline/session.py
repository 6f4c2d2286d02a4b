"""Building the SparkSession: the only place that does."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark import SparkContext
from pyspark.sql import SparkSession

from retail_pipeline import jvm_tuning
from retail_pipeline.jvm_tuning import finish_class_data_sharing

__all__ = ["finish_class_data_sharing", "get_spark"]

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
}


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
    `conf` applied where Spark allows it at runtime. `class_data_sharing` and `jit_c1_only`
    (`jvm_tuning`) apply to a local master only, and only when this process starts the JVM."""
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    conf = dict(conf or {})
    no_jvm_yet = SparkContext._gateway is None  # noqa: SLF001 - whether this process starts the JVM
    starts_local_jvm = bool(master and master.startswith("local")) and no_jvm_yet
    tuning = jvm_tuning.local_jvm_options(
        class_data_sharing=class_data_sharing if starts_local_jvm else None,
        jit_c1_only=jit_c1_only if starts_local_jvm else (),
    )
    with tuning as jvm_options:
        if jvm_options:
            key = "spark.driver.extraJavaOptions"
            conf[key] = " ".join([conf[key], *jvm_options] if conf.get(key) else jvm_options)
        runtime_conf = {**DEFAULT_CONF, **conf, **REQUIRED_CONF}
        for key, value in runtime_conf.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
    # A platform's ready-made session (Glue, EMR notebooks) ignores the builder's settings.
    for key in (*DEFAULT_CONF, *REQUIRED_CONF):
        spark.conf.set(key, runtime_conf[key])
    ignore_local_checksums(spark)
    logger.info("Spark %s session '%s' on %s", spark.version, app_name, spark.sparkContext.master)
    return spark


def ignore_local_checksums(spark: SparkSession) -> None:
    """Local files without Hadoop's .crc side files: a file re-delivered beside a stale
    checksum would fail the read (ChecksumException), and the outputs need none. Set on the
    JVM's cached local file system, which the driver and local-mode tasks share."""
    jvm: Any = spark._jvm  # noqa: SLF001 - py4j gateway, the documented way in
    local = jvm.org.apache.hadoop.fs.FileSystem.getLocal(spark._jsc.hadoopConfiguration())  # noqa: SLF001
    local.setVerifyChecksum(False)
    local.setWriteChecksum(False)
