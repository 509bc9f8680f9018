from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))

from alarm_clock import T0  # noqa: E402, F401 - re-exported for fixtures below
from world import World, build_world  # noqa: E402

from hazardloop.alarms.service import SensorRef  # noqa: E402
from hazardloop.plant.models import Sensor  # noqa: E402


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)


@pytest.fixture
def gt101(db, world: World) -> SensorRef:  # noqa: ANN001
    s = db.get(Sensor, world.sensor_a)
    return SensorRef(id=s.id, tag=s.tag, area_id=s.area_id, unit=s.unit)


@pytest.fixture
def gt201(db, world: World) -> SensorRef:  # noqa: ANN001
    s = db.get(Sensor, world.sensor_b)
    return SensorRef(id=s.id, tag=s.tag, area_id=s.area_id, unit=s.unit)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)
