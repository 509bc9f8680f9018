from __future__ import annotations

import pytest
from world import World, build_world


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)
