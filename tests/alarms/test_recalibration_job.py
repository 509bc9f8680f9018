"""Learning from verdicts runs every night on the app's scheduler, and the running live detection uses the
new statistical limits from its next batch, without a restart."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alarm_clock import T0
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from hazardloop.alarms import service
from hazardloop.alarms.feed import LiveFeed
from hazardloop.alarms.flows import JOB_ID, add_recalibration_job
from hazardloop.alarms.learning import stored_calibration
from hazardloop.alarms.models import Alarm, AlarmType, Verdict
from hazardloop.auth.roles import Role
from hazardloop.db import make_session_factory, utcnow
from hazardloop.readings.store import ReadingStore

STAT = AlarmType.STATISTICAL.value
T = int(T0.timestamp() * 1000)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReadingStore]:
    reading_store = ReadingStore(tmp_path / "readings.duckdb")
    yield reading_store
    reading_store.close()


def test_the_nightly_job_learns_from_verdicts_and_live_detection_uses_it(engine, db, world, store, gt101) -> None:  # noqa: ANN001
    sessions = make_session_factory(engine)
    clock = [T + 60_500]
    feed = LiveFeed(sessions, store, clock=lambda: clock[0]).listen()
    quiet = np.tile([4.9, 5.1], 100)  # median 5, robust sigma 0.148
    feed.learn_normal({"GT-101": quiet, "GT-201": quiet})
    store.insert(np.full(60, gt101.id), T + np.arange(60) * 1000, np.tile([4.9, 5.1], 30))
    feed.tick()
    live = feed.live
    col = live.tags.index("GT-101")
    z8 = float(live.monitor.median_[col] + 8.0 / live.monitor.inv_scale_[col])  # 8 robust sigmas out
    alarm, _ = service.raise_or_update(db, sensor=gt101, alarm_type=STAT, at=T0, value=z8, reason="", peak=z8)
    service.clear(db, sensor_id=gt101.id, alarm_type=STAT, at=T0 + dt.timedelta(minutes=1))
    service.give_verdict(db, actor=world.users[Role.OPERATOR], alarm_id=alarm.id, verdict=Verdict.FALSE_ALARM)

    scheduler = BackgroundScheduler(timezone="UTC")
    job = add_recalibration_job(scheduler, sessions, then=feed.reload_calibration)
    assert (job.id, str(job.trigger)) == (JOB_ID, "cron[hour='2', minute='30']")
    scheduler.start()
    try:
        job.modify(next_run_time=utcnow())  # as if the night had come
        deadline = time.monotonic() + 20
        while not stored_calibration(db) and time.monotonic() < deadline:
            time.sleep(0.1)
            db.expire_all()
    finally:
        scheduler.shutdown()
    assert stored_calibration(db) == {"GT-101": pytest.approx(8.8)}

    z7 = float(live.monitor.median_[col] + 7.0 / live.monitor.inv_scale_[col])  # out by the default 6, not by 8.8
    store.insert(np.full(10, gt101.id), T + np.arange(60, 70) * 1000, np.full(10, z7))
    clock[0] = T + 70_500
    feed.tick()
    feed.stop()
    assert feed.live.z_limits[col] == pytest.approx(8.8)
    db.expire_all()
    assert [a.id for a in db.scalars(select(Alarm).where(Alarm.type == STAT))] == [alarm.id]  # no new one
