"""Which reading store a process opens: DuckDB under data_dir by default, PostgreSQL when ``readings_url`` says.

Kept apart from both stores so that store.py (DuckDB) never imports the PostgreSQL driver and the
choice lives in one place: the web app, ``hazardloop connectors run`` and the benchmarks all open
their store here.
"""

from __future__ import annotations

from hazardloop.config import Settings
from hazardloop.readings.pgstore import PgReadingStore
from hazardloop.readings.store import ReadingStore

AnyStore = ReadingStore | PgReadingStore


def open_store(settings: Settings) -> AnyStore:
    """The store ``settings.readings_url`` names: empty = ``data_dir/readings.duckdb``, postgresql… = a table."""
    url = settings.readings_url.strip()
    if not url:
        return ReadingStore.for_data_dir(settings.ensure_data_dir())
    if url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
        return PgReadingStore(url)
    raise ValueError(
        f"readings_url {url!r}: leave it empty for DuckDB under data_dir, or give a postgresql+psycopg:// URL"
    )
