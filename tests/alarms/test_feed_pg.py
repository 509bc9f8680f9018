"""Live detection with readings in PostgreSQL: a reading another process stores raises the server's alarm,
and of several processes on one database exactly one runs detection, another taking over when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

import waiting

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "readings"))

from readings_pg import PG_URL, pg_answers  # noqa: E402

from hazardloop.alarms.feed import LiveFeed  # noqa: E402
from hazardloop.alarms.models import Alarm, AlarmType  # noqa: E402
from hazardloop.alarms.service import SensorRef  # noqa: E402
from hazardloop.config import Settings  # noqa: E402
from hazardloop.db import make_session_factory  # noqa: E402
from hazardloop.readings.pgstore import PgReadingStore  # noqa: E402
from hazardloop.readings.store import ReadingStore, now_ms  # noqa: E402

pytestmark = pytest.mark.db

HH = AlarmType.LIMIT_HH.value

WRITER = """
import sys
import numpy as np
from hazardloop.readings.pgstore import PgReadingStore

url, table, sensor, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with PgReadingStore(url, table=table) as store:  # one batch, as a worker flushes it: 5 %LEL, then 60 (HH 50)
    i = np.arange(30)
    store.insert(np.full(30, sensor), start + i * 1000, np.where(i < 10, 5.0, 60.0))
"""

HOLDER = """
import sys, time
from hazardloop.alarms.feed import Leadership

leadership = Leadership(sys.argv[1], sys.argv[2])
assert leadership.hold()
print("held", flush=True)
time.sleep(120)
"""


wait_for = partial(waiting.wait_for, timeout=30.0, interval=0.1)


def hh_alarms(db, tag: str) -> list[Alarm]:  # noqa: ANN001
    db.expire_all()
    return list(db.scalars(select(Alarm).where(Alarm.tag == tag, Alarm.type == HH)))


@pytest.fixture
def table() -> Iterator[str]:
    if not pg_answers():
        pytest.skip(f"no PostgreSQL answers at {PG_URL}")
    name = f"readings_feed_{uuid.uuid4().hex[:12]}"
    yield name
    with PgReadingStore(PG_URL, table=name) as cleaner:
        cleaner.drop()


def test_a_reading_stored_by_another_process_raises_the_servers_alarm(
        db, settings: Settings, table: str, gt101: SensorRef) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from hazardloop.web.app import create_app

    app = create_app(settings)
    app.state.readings_store = PgReadingStore(PG_URL, table=table)  # what readings_url would open, own table
    start = now_ms() - 60_000
    with TestClient(app):
        wait_for(lambda: app.state.readings_store.following)
        subprocess.run([sys.executable, "-c", WRITER, PG_URL, table, str(gt101.id), str(start)], check=True,
                       timeout=60)
        [alarm] = wait_for(lambda: hh_alarms(db, "GT-101"))
        feed = app.state.live_feed
        assert feed.leading
    assert alarm.first_at.timestamp() * 1000 == start + 15_000  # first HH reading at 10 s + 5 s on-delay
    assert feed.unknown == 0 and feed.late == 0


@pytest.fixture
def name() -> str:
    if not pg_answers():
        pytest.skip(f"no PostgreSQL answers at {PG_URL}")
    return f"live-{uuid.uuid4().hex[:8]}"  # a lock of this test's own


def hh_burst(store: ReadingStore, sensor: int, start: int) -> None:
    store.insert(np.full(30, sensor), start + np.arange(30) * 1000, np.where(np.arange(30) < 10, 5.0, 60.0))


def test_a_second_feed_stands_by_while_the_first_runs_and_takes_over_when_it_stops(
        engine, db, world, tmp_path: Path, name: str, gt101: SensorRef) -> None:  # noqa: ANN001
    sessions = make_session_factory(engine)
    start = now_ms() - 120_000
    with ReadingStore(tmp_path / "a.duckdb") as store_a, ReadingStore(tmp_path / "b.duckdb") as store_b:
        first = LiveFeed(sessions, store_a, name=name, lock_url=PG_URL).listen()
        second = LiveFeed(sessions, store_b, name=name, lock_url=PG_URL).listen()
        try:
            first.tick()
            hh_burst(store_b, gt101.id, start)  # heard by the standby only: it must not judge it
            second.tick()
            second.tick(start + 60_000)
            assert first.leading and not second.leading
            assert second.live is None and hh_alarms(db, "GT-101") == []
            first.stop()
            second.tick()
            assert second.leading
            hh_burst(store_b, gt101.id, start + 40_000)
            second.tick(now_ms())
            [alarm] = hh_alarms(db, "GT-101")
        finally:
            first.stop()
            second.stop()
    assert alarm.first_at.timestamp() * 1000 == start + 55_000  # the second burst's, judged by the new holder


def test_a_standby_takes_over_when_the_holder_process_is_killed(engine, tmp_path: Path, name: str) -> None:  # noqa: ANN001
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, PG_URL, name], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with ReadingStore(tmp_path / "r.duckdb") as store:
            standby = LiveFeed(make_session_factory(engine), store, name=name, lock_url=PG_URL).listen()
            try:
                standby.tick()
                assert not standby.leading
                os.kill(holder.pid, signal.SIGKILL)  # no unlock: PostgreSQL drops the lock with the session
                holder.wait(10)
                wait_for(lambda: standby.tick() is None and standby.leading, timeout=20)
            finally:
                standby.stop()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
