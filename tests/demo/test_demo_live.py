"""The demo plant streams live: readings land in the store, and live detection hears them there."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from sqlalchemy import select

from hazardloop.alarms.feed import LiveFeed
from hazardloop.alarms.models import DetectorState
from hazardloop.demo.build import build_demo
from hazardloop.demo.live import DemoStream
from hazardloop.readings.store import ReadingStore


def test_demo_streams_into_the_store_and_live_detection(db, engine, tmp_path: Path) -> None:  # noqa: ANN001
    from hazardloop.db import make_session_factory

    build_demo(db, data_dir=tmp_path, seed=2, days=1, hazards_per_day=0)
    store = ReadingStore.for_data_dir(tmp_path)
    feed = LiveFeed(make_session_factory(engine), store).start()
    demo = DemoStream(make_session_factory(engine), store, step=dt.timedelta(seconds=1), feed=feed)
    assert demo.start()
    deadline = time.monotonic() + 60
    while demo.rows_streamed < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    demo.stop()
    assert demo.rows_streamed >= 3, "the stream produced no rows (see the log for why it stopped)"
    assert store.count() > 50  # 55 sensors a row, dropouts aside
    assert feed.wait_idle(30), "live detection did not judge the streamed readings"
    feed.stop()
    assert feed.batches >= 1
    db.expire_all()
    state = db.scalar(select(DetectorState).where(DetectorState.name == "live"))
    assert state is not None
    assert feed.live is not None and feed.live.fitted.all()  # normal learned from the simulator's history
    store.close()


def test_no_stream_without_the_demo_plant(db, engine, tmp_path: Path) -> None:  # noqa: ANN001
    from hazardloop.db import make_session_factory

    store = ReadingStore.for_data_dir(tmp_path)
    assert DemoStream(make_session_factory(engine), store).start() is False
    store.close()


def test_of_two_servers_on_one_postgresql_only_the_lock_holder_streams(
        db, engine, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Two server processes on one database must not both stream the plant (double writes, and a drill
    injected in one lost against the other's rows); the standby takes over when the holder stops."""
    import sys
    import uuid

    import pytest

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "readings"))
    from readings_pg import PG_URL, pg_answers

    from hazardloop.db import make_session_factory
    from hazardloop.demo import live

    if not pg_answers():
        pytest.skip(f"no PostgreSQL answers at {PG_URL}")
    monkeypatch.setattr(live, "LOCK_SCOPE", f"demo-test-{uuid.uuid4().hex[:8]}")  # a lock of this test's own
    build_demo(db, data_dir=tmp_path, seed=2, days=1, hazards_per_day=0)
    sessions = make_session_factory(engine)

    def until(condition, timeout: float = 60) -> bool:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.2)
        return condition()

    with ReadingStore(tmp_path / "a.duckdb") as store_a, ReadingStore(tmp_path / "b.duckdb") as store_b:
        first = DemoStream(sessions, store_a, lock_url=PG_URL)
        second = DemoStream(sessions, store_b, lock_url=PG_URL)
        try:
            assert first.start()
            assert until(lambda: first.rows_streamed >= 1), "the lock holder did not stream"
            assert second.start()
            time.sleep(3 * live.STANDBY_POLL_S + live.WAKE.total_seconds())
            assert first.leading and not second.leading
            assert second.rows_streamed == 0 and store_b.count() == 0
            first.stop()
            assert until(lambda: second.rows_streamed >= 1), "the standby did not take over"
            assert second.leading and store_b.count() > 50
        finally:
            first.stop()
            second.stop()
