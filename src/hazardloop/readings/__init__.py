"""Sensor history: a durable DuckDB store, the ingest checks shared by JSON/CSV/Parquet, and the HTTP API."""
