"""Reference implementations of the batch job's rules on other engines (issue #7).

Each module (`duckdb_reference`, `pandas_reference`, `polars_reference`) reads the raw CSV,
applies `retail_pipeline.rules` and writes the curated Parquet partitioned by
invoice_year/invoice_month, returning a `common.ReferenceResult`. They exist to put the Spark
job's figures next to single-process engines (`benchmarks/harness.py`); the Spark job stays the
product.
"""
