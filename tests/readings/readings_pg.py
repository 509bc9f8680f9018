"""Where the PostgreSQL reading-store tests find a server: the CI database URL, else the local default."""

from __future__ import annotations

import os

import psycopg

from hazardloop.readings.pgstore import libpq_url

PG_URL = os.environ.get("HAZARDLOOP_TEST_READINGS_URL") or (
    os.environ.get("HAZARDLOOP_TEST_DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def pg_answers(url: str = PG_URL) -> bool:
    """Whether a PostgreSQL server answers at `url` (here and in CI it does; on a laptop it may not)."""
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False
