"""Packaging for the Online Retail pipeline: the importable package lives in lib/."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# Pins that work together on the Glue 5 / EMR 7 line (Spark 3.5) and Python 3.11:
# pyspark's sql extra needs numpy<2, and pyarrow 26 refuses numpy 1.26 at import.
SPARK = [
    "pyspark[sql]==3.5.9",
    "numpy==1.26.4",
    "pandas==2.2.3",
    "pyarrow==18.1.0",
]
# The batch job's data-quality gate (its spark extra admits pyspark < 4.2).
QUALITY = ["great-expectations==1.24.1"]
# The warehouse load (no Spark): DuckDB embedded, PostgreSQL via psycopg 3, Parquet via pyarrow.
WAREHOUSE = ["duckdb==2.0.1", "psycopg[binary]==3.3.9", "pyarrow==18.1.0"]
REDSHIFT = ["redshift-connector==2.2.0"]
# The streaming Lambdas (no Spark): handlers, Cognito token checks, Parquet to S3.
STREAM = [
    "boto3==1.44.8",
    "aws-lambda-powertools==3.37.0",
    "PyJWT[crypto]==2.15.1",
    "cryptography==50.0.2",
    "pyarrow==18.1.0",
]
# moto's server mode: the local AWS endpoint of `make stream-demo` and the stream tests.
STREAM_LOCAL = ["moto[server]==5.2.5"]
# `make bench`: the reference implementations and the memory sampler.
BENCH = ["polars==2.1.0", "psutil==7.2.2"]
# The notebooks (Jupyter over DuckDB): charts and a kernel in the project's environment.
NOTEBOOKS = ["duckdb==2.0.1", "matplotlib==3.11.2", "ipykernel==7.4.0"]
CORE = ["PyYAML>=6.0,<7"]
# OpenLineage run events of the batch job and the loads (retail_pipeline.lineage).
LINEAGE = ["openlineage-python==1.54.0"]
DEV = [
    "pytest==9.2.0",
    "pytest-xdist==3.8.0",  # make test: two workers, one file per worker at a time
    "chispa==0.12.0",
    "ruff==0.17.6",
    "mypy==2.4.1",
    "types-PyYAML",
    "cfn-lint==1.58.0",  # infra/template.yaml, checked in the tests
    "nbclient==0.11.0",  # runs the Jupyter notebook in the tests
    "nbformat==5.11.1",
    "hypothesis==6.170.27",  # property tests of both parsers
]

setup(
    name="retail-pipeline",
    version="0.1.0",
    description="Batch and streaming pipeline for the UCI Online Retail e-commerce data set",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    package_dir={"": "lib"},
    # The runtime only: lib/retail_pipeline_dev (the generator, the local AWS) never ships.
    packages=find_packages("lib", include=["retail_pipeline", "retail_pipeline.*"]),
    install_requires=CORE + LINEAGE,
    extras_require={
        # On EMR and Glue, Spark is provided by the platform: install "batch" there.
        "spark": SPARK,
        "batch": QUALITY,
        "warehouse": WAREHOUSE,
        "redshift": WAREHOUSE + REDSHIFT,
        "stream": STREAM,
        "stream-local": STREAM + STREAM_LOCAL,
        "notebooks": NOTEBOOKS,
        "dev": SPARK + QUALITY + WAREHOUSE + STREAM + STREAM_LOCAL + BENCH + NOTEBOOKS + DEV,
    },
    entry_points={"console_scripts": ["retail-pipeline=retail_pipeline.cli:program"]},
)
