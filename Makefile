# Online Retail pipeline. `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCALE ?= 1
SCALES ?= 1 10
WAREHOUSE ?= duckdb:///data/output/warehouse.duckdb

export SPARK_LOCAL_IP ?= 127.0.0.1
# Spark's Python workers must use the venv's interpreter, not whatever is first on PATH.
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: help java install run load stream-demo daily-demo test test-fast data bench bench-daily lint format package clean

help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

java:
	@command -v java >/dev/null 2>&1 || { echo "Java 17 is required on PATH for Spark (Debian: apt-get install -y openjdk-17-jre-headless)."; exit 1; }

$(VENV)/.installed: setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found " + sys.version.split()[0] + "); run make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
# Test-only: the S3A jars (hadoop-aws 3.3.1, AWS SDK bundle) for the s3a:// job test. Its
# metadata pins pyspark 3.3.0, hence --no-deps. EMR (EMRFS) and Glue need none of it.
	$(PY) -m pip install --quiet --no-deps sagemaker-pyspark==1.4.5
	@touch $@

install: $(VENV)/.installed ## Create .venv and install the package with its tools

run: java install ## Run the batch job on the committed sample, then load the DuckDB warehouse
	$(PY) -m retail_pipeline batch
	$(PY) -m retail_pipeline load --warehouse $(WAREHOUSE)

load: install ## Load the last batch run into WAREHOUSE (default: data/output/warehouse.duckdb)
	$(PY) -m retail_pipeline load --warehouse $(WAREHOUSE)

stream-demo: install ## Streaming path end to end on the sample (moto: API, Kinesis, consumer, queries)
	$(PY) scripts/stream_demo.py

daily-demo: java install ## Daily operation on the sample: one file a day, --incremental, load after each
	$(PY) scripts/daily_demo.py

# Test workers (pytest-xdist): each has its own Spark session and servers. A test file runs in one
# worker, so its module fixtures are built once; the shared sample run is built once per run.
# Files go out in collection order, the longest first (tests/conftest.py: LONGEST_FIRST).
TEST_WORKERS ?= 2

test: java install ## Run the tests (unit and integration)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: install ## The tests that need no JVM and no server (the edit-test loop)
	$(PY) -m pytest -m "not services" -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

data: install ## Generate a synthetic input of SCALE x 541,909 rows: make data SCALE=10
	$(PY) -m retail_pipeline_dev.synthetic --scale $(SCALE)

bench: java install ## Time the job beside DuckDB, pandas, polars on SCALES (SCALES=100: 54 M rows; MEMORY_CAP=8g)
	$(PY) benchmarks/run.py --scales $(SCALES) $(if $(MEMORY_CAP),--memory-cap $(MEMORY_CAP))

bench-daily: java install ## A daily run against the history it lands in (SCALE, default 1)
	$(PY) benchmarks/daily.py --scale $(SCALE)

lint: install ## ruff (lint and format check) and mypy
	$(VENV)/bin/ruff check lib jobs tests benchmarks scripts
	$(VENV)/bin/ruff format --check lib jobs tests benchmarks scripts
	$(VENV)/bin/mypy lib
	$(VENV)/bin/cfn-lint --include-checks I -- infra/template.yaml

format: install ## Format the code with ruff
	$(VENV)/bin/ruff format lib jobs tests benchmarks scripts
	$(VENV)/bin/ruff check --fix lib jobs tests benchmarks scripts

package: install ## dist/: wheel, --py-files zip, Lambda zip, EMR step and Glue job (ARTIFACTS_URI=s3://bucket/prefix)
	$(PY) -m retail_pipeline.packaging --dist dist $(if $(ARTIFACTS_URI),--artifacts-uri $(ARTIFACTS_URI))

clean: ## Remove outputs, caches and build files (keeps .venv and data/synthetic)
	rm -rf data/output dist build lib/*.egg-info .pytest_cache .mypy_cache .ruff_cache spark-warehouse metastore_db derby.log
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
