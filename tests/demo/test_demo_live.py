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
