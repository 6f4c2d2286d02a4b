"""Building the SparkSession: the only place that does."""

from __future__ import annotations

import logging
from collections.abc import Mapping

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
}


def get_spark(
    app_name: str, *, master: str | None = None, conf: Mapping[str, str] | None = None
) -> SparkSession:
    """The session for a job. `master` is None unless a local config names one: spark-submit,
    EMR and Glue decide it otherwise. On Glue and EMR this returns the platform's session with
    `conf` applied where Spark allows it at runtime."""
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    runtime_conf = {**DEFAULT_CONF, **(conf or {}), **REQUIRED_CONF}
    for key, value in runtime_conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # A platform's ready-made session (Glue, EMR notebooks) ignores the builder's settings.
    for key in (*DEFAULT_CONF, *REQUIRED_CONF):
        spark.conf.set(key, runtime_conf[key])
    logger.info("Spark %s session '%s' on %s", spark.version, app_name, spark.sparkContext.master)
    return spark
