"""Warehouse load tests on real PostgreSQL and DuckDB, fed by real batch runs."""
