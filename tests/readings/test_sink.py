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


def test_a_batch_refused_by_a_writer_thread_goes_back_in_front_of_what_arrived_since(store) -> None:  # noqa: ANN001
    """MQTT commits in a writer thread while the next messages arrive; a refused batch must keep its place."""
    status = ConnectorStatus(name="mqtt", kind="mqtt")
    batcher = Batcher(_BrokenStore(), status)
    batcher.add(["GT-101"], _ts(1), np.array([1.0]))
    batcher.add_token("mid-1")
    taken = batcher.take()
    batcher.add(["GT-201"], _ts(1, start=now_ms() - 30_000), np.array([2.0]), ["%LEL"])  # arrived during the commit
    batcher.add_token("mid-2")
    batcher.refused(taken, OSError("disk full"))
    assert status.write_failures == 1 and "disk full" in status.last_error
    again = batcher.take()
    assert again.tags == ["GT-101", "GT-201"] and again.values.tolist() == [1.0, 2.0]
    assert again.units == [None, "%LEL"] and again.tokens == ["mid-1", "mid-2"]
    assert batcher.take() is None


def test_tags_are_matched_as_over_http_blanks_missing_and_spaces_stripped(sink: StoreSink, store) -> None:
    sink.write([" GT-101 ", "", "GT-201", "gt-101"], _ts(4), np.array([1.0, 2.0, 3.0, 4.0]))
    assert store.count() == 2  # " GT-101 " and "GT-201"; tags are case-sensitive
    reasons = " | ".join(sink.status.recent_malformed)
    assert "missing" in reasons and "gt-101" in reasons and "unknown sensor" in reasons


def test_a_capped_take_splits_between_messages_and_keeps_each_token_with_its_readings(store) -> None:  # noqa: ANN001
    status = ConnectorStatus(name="mqtt", kind="mqtt")
    batcher = Batcher(store, status)
    batcher.add_token("bad-0")  # a malformed message: a token without readings
    for k in range(4):  # four messages of three readings each
        batcher.add([f"T-{k}"] * 3, _ts(3), np.full(3, float(k)), ["%"] * 3 if k == 1 else None)
        batcher.add_token(f"mid-{k}")
    first = batcher.take(limit=4)
    assert first.tags == ["T-0"] * 3 + ["T-1"] * 3 and first.tokens == ["bad-0", "mid-0", "mid-1"]
    assert first.units == [None] * 3 + ["%"] * 3
    rest = batcher.take(limit=100)
    assert rest.tags == ["T-2"] * 3 + ["T-3"] * 3 and rest.tokens == ["mid-2", "mid-3"]
    assert rest.values.tolist() == [2.0] * 3 + [3.0] * 3 and rest.units == [None] * 6
    assert batcher.take() is None
