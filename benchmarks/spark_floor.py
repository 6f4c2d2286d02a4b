"""The floor under the Spark job on this machine (issue #7): the plainest careful PySpark job
of the same shape, timed like the job (`make bench` runs it in a fresh process, JVM start
included).

CSV -> the business rules -> Parquet partitioned by year and month, in the job's session
(configs/local.yaml's spark settings) and nothing more: Spark's own CSV reader with an
explicit all-string schema (no line is checked for its shape, so nothing is quarantined), no
trimming, no per-outcome counts, no staging, no quality gate, no report. What the job does on
top of it (every line accounted for, a reason for each malformed one, the Great Expectations
gate before publishing) costs the difference.

    PYTHONPATH=lib python benchmarks/spark_floor.py --input FILE --output DIR [--result-json F]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from functools import reduce
from pathlib import Path

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "lib"))

from retail_pipeline import rules, transforms  # noqa: E402
from retail_pipeline.config import load_config  # noqa: E402
from retail_pipeline.session import spark_session  # noqa: E402

RAW_SCHEMA = ", ".join(f"{name} STRING" for name in rules.RAW_COLUMNS)


def published(raw: DataFrame) -> DataFrame:
    """The curated columns of the lines the rules publish, typed by the job's own
    `transforms.type_fields` (malformed values are null and dropped, not quarantined)."""
    typed = raw.select(
        F.struct(*rules.RAW_COLUMNS).alias(transforms.CLEAN),
        transforms.canonical_source(F.col("_metadata.file_path")).alias(transforms.SOURCE_FILE),
        F.lit("spark-floor").alias(transforms.RUN_ID),
    ).transform(transforms.type_fields)
    required = ["invoice_no", "stock_code", "quantity", "unit_price", "invoice_ts", "country"]
    keep = reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in required])
    for rule in rules.FILTER_RULES:
        keep = keep & ~transforms.rule_condition(rule)
    return typed.where(keep).select(*rules.CURATED_COLUMNS)


def run(spark: SparkSession, input_path: str, output: str) -> int:
    """Write the published lines; returns how many (counted by the write itself)."""
    raw = spark.read.csv(input_path, schema=RAW_SCHEMA, header=True, quote='"', escape='"')
    observation = Observation()
    lines = published(raw).observe(observation, F.count(F.lit(1)).alias("rows"))
    lines.write.mode("overwrite").partitionBy(*rules.PARTITION_COLUMNS).parquet(output)
    return int(observation.get["rows"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "local.yaml"))
    parser.add_argument("--result-json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(load_config(args.config).spark, app_name="retail-pipeline-spark-floor")
    with spark_session(settings) as spark:
        rows = run(spark, str(Path(args.input).resolve()), str(Path(args.output).resolve()))
    result = json.dumps({"published": rows})
    print(result)
    if args.result_json:
        args.result_json.write_text(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
