from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))

from world import World, build_world  # noqa: E402

from hazardloop.readings.store import ReadingStore  # noqa: E402


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)


@pytest.fixture
def store(tmp_path: Path):  # noqa: ANN201
    reading_store = ReadingStore(tmp_path / "readings.duckdb")
    yield reading_store
    reading_store.close()
