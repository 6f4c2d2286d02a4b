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


def get_spark(
    app_name: str, *, master: str | None = None, conf: Mapping[str, str] | None = None
) -> SparkSession:
    """The session for a job. `master` is None unless a local config names one: spark-submit,
    EMR and Glue decide it otherwise. On Glue and EMR this returns the platform's session with
    `conf` applied where Spark allows it at runtime."""
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in {**(conf or {}), **REQUIRED_CONF}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    for key, value in REQUIRED_CONF.items():
        spark.conf.set(key, value)
    logger.info("Spark %s session '%s' on %s", spark.version, app_name, spark.sparkContext.master)
    return spark
