"""The warehouse load: the curated data as a star schema for Power BI, on DuckDB (embedded),
PostgreSQL or Redshift, loaded idempotently and atomically through staging tables.

    load_run(url, output_dir)                 one batch run, as its run report lists it: the
                                              lines of its source files replaced
    load_output(url, output_dir)              every line the output holds (a first load, a rebuild)
    load_parquet_files(url, files, batch_id)  any curated-schema Parquet (the streaming path)
    main(argv)                                `python -m retail_pipeline load --warehouse URL`

Spark-free: pyarrow reads the files, so the load runs on a small driver or a Lambda.
"""

from retail_pipeline.warehouse.cli import main
from retail_pipeline.warehouse.errors import WarehouseError, WarehouseInputError
from retail_pipeline.warehouse.loader import LoadResult, load_output, load_parquet_files, load_run

__all__ = [
    "LoadResult",
    "WarehouseError",
    "WarehouseInputError",
    "load_output",
    "load_parquet_files",
    "load_run",
    "main",
]
