from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))

from readings_pg import PG_URL, pg_answers  # noqa: E402
from world import World, build_world  # noqa: E402

from hazardloop.readings.store import ReadingStore  # noqa: E402


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.db)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], object]]:
    """Opens this test's store (again): one DuckDB file, or one PostgreSQL table of its own per test."""
    opened: list = []
    if request.param == "duckdb":
        path = tmp_path / "readings.duckdb"

        def factory() -> ReadingStore:
            opened.append(ReadingStore(path))
            return opened[-1]
    else:
        if not pg_answers():
            pytest.skip(f"no PostgreSQL answers at {PG_URL}")
        from hazardloop.readings.pgstore import PgReadingStore

        table = f"readings_test_{uuid.uuid4().hex[:12]}"

        def factory() -> PgReadingStore:
            opened.append(PgReadingStore(PG_URL, table=table))
            return opened[-1]

    yield factory
    if request.param == "postgresql" and opened:
        from hazardloop.readings.pgstore import PgReadingStore

        with PgReadingStore(PG_URL, table=opened[0].table_name) as cleaner:
            cleaner.drop()
    for reading_store in opened:
        reading_store.close()


@pytest.fixture
def store(open_store: Callable[[], object]):  # noqa: ANN201
    return open_store()
