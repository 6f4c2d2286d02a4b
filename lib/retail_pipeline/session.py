"""Building the SparkSession: the only place that does. `spark_session(config.spark)` is the
session for a config's settings; `get_spark` the same from single values."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from pyspark.sql import SparkSession

from retail_pipeline import jvm_tuning
from retail_pipeline.config import SparkSettings

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


@contextmanager
def spark_session(settings: SparkSettings) -> Iterator[SparkSession]:
    """The session for a config's `spark` settings, for the block. At its end the JVM tuning
    finishes what it started (`jvm_tuning.finish_class_data_sharing`); the session goes on."""
    spark = get_spark(
        settings.app_name,
        master=settings.master,
        conf=settings.conf,
        class_data_sharing=settings.class_data_sharing,
        jit_c1_only=settings.jit_c1_only,
    )
    try:
        yield spark
    finally:
        jvm_tuning.finish_class_data_sharing(spark)


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
    settings = {**DEFAULT_CONF, **(conf or {}), **REQUIRED_CONF}
    tuned = jvm_tuning.tuned_driver_conf(
        settings, master=master, class_data_sharing=class_data_sharing, jit_c1_only=jit_c1_only
    )
    with tuned as runtime_conf:
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
