"""StoreSink: what a plant engineer sees when a connector writes into the reading store."""

from __future__ import annotations

import numpy as np
import pytest
from world import World, gas_sensor

from hazardloop import db as hl_db
from hazardloop.connectors.base import Batcher, ConnectorStatus
from hazardloop.plant import service as plant
from hazardloop.readings.sink import StoreSink
from hazardloop.readings.store import now_ms


@pytest.fixture
def sink(engine, world: World, store) -> StoreSink:  # noqa: ANN001
    return StoreSink(hl_db.make_session_factory(engine), store, refresh_s=0.0)


def _ts(n: int, start: int | None = None) -> np.ndarray:
    base = (now_ms() - 60_000) if start is None else start
    return base + np.arange(n, dtype=np.int64) * 1000


def test_good_readings_are_stored_durably_under_their_sensor(sink: StoreSink, store, world: World) -> None:
    ts = _ts(3)
    sink.write(["GT-101", "GT-201", "GT-101"], ts, np.array([1.0, 2.0, 3.0]))
    assert store.count() == 3
    got = store.window([world.sensor_a], 0, int(ts[-1]) + 1)
    assert got.value.tolist() == [1.0, 3.0]
    assert sink.inserted == 3 and sink.rejected == 0


def test_bad_readings_are_counted_with_reasons_and_do_not_block_good_ones(sink: StoreSink, store) -> None:
    ts = _ts(6)
    tags = ["GT-101", "NOPE-1", "GT-101", "GT-201", "GT-201", "GT-101"]
    values = np.array([5.0, 5.0, 500.0, np.nan, 7.0, 8.0])
    units = ["%LEL", None, None, None, "ppm", None]
    sink.write(tags, ts, values, units)
    assert store.count() == 2  # rows 0 and 5
    assert sink.rejected == 4
    assert sink.status.malformed == 4
    reasons = " | ".join(sink.status.recent_malformed)
    assert "NOPE-1" in reasons and "unknown sensor" in reasons
    assert "outside the sensor's range" in reasons
    assert "NaN is not a reading" in reasons
    assert "'ppm' is not the sensor's unit '%LEL'" in reasons


def test_time_sanity_is_the_same_as_over_http(sink: StoreSink, store) -> None:
    future = now_ms() + 3_600_000
    sink.write(["GT-101", "GT-101"], np.array([1_000_000, future], dtype=np.int64), np.array([1.0, 2.0]))
    assert store.count() == 0
    reasons = " | ".join(sink.status.recent_malformed)
    assert "before 2000-01-01" in reasons and "ahead of the server clock" in reasons


def test_a_resent_batch_is_stored_once_and_a_changed_value_is_a_rejection(sink: StoreSink, store) -> None:
    ts = _ts(2)
    sink.write(["GT-101", "GT-101"], ts, np.array([1.0, 2.0]))
    sink.write(["GT-101", "GT-101"], ts, np.array([1.0, 9.0]))
    assert store.count() == 2
    assert sink.duplicates == 1 and sink.rejected == 1
    assert "first value is kept" in sink.status.recent_malformed[-1]


def test_a_sensor_added_later_is_found_without_a_restart(sink: StoreSink, store, db, world: World) -> None:
    sink.write(["GT-101"], _ts(1), np.array([1.0]))  # loads the register
    plant.create_sensor(db, actor=world.admin, data=gas_sensor("GT-999", world.area_a))
    sink.write(["GT-999"], _ts(1), np.array([4.0]))
    assert store.count() == 2 and sink.rejected == 0


def test_the_register_is_not_reloaded_more_often_than_refresh_s(engine, world: World, store, db) -> None:  # noqa: ANN001
    sink = StoreSink(hl_db.make_session_factory(engine), store, refresh_s=3600)
    sink.write(["GT-101"], _ts(1), np.array([1.0]))
    plant.create_sensor(db, actor=world.admin, data=gas_sensor("GT-998", world.area_a))
    sink.write(["GT-998"], _ts(1), np.array([4.0]))
    assert store.count() == 1 and sink.rejected == 1  # still the cached map: unknown until refresh_s passes


class _BrokenStore:
    def insert(self, *args: object) -> None:
        raise OSError("disk full")


def test_a_store_failure_is_not_acknowledged_and_the_batch_is_retried(engine, world: World, store) -> None:  # noqa: ANN001
    sink = StoreSink(hl_db.make_session_factory(engine), _BrokenStore())
    status = ConnectorStatus(name="mqtt", kind="mqtt")
    batcher = Batcher(sink, status)
    batcher.add(["GT-101", "GT-101"], _ts(2), np.array([1.0, 2.0]))
    batcher.add_token("mid-1")
    assert batcher.flush() is None  # nothing released: MQTT withholds the ack
    assert status.write_failures == 1 and "disk full" in status.last_error
    sink.store = store  # the store is back
    assert batcher.flush() == ["mid-1"]
    assert store.count() == 2
