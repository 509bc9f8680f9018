"""The live feed: whatever stores a reading, live detection judges it — in time order, with late readings
in their place, slow sensors next to fast ones without false faults, and across a restart."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from alarm_clock import T0
from sqlalchemy import select
from world import World

import waiting
from hazardloop.alarms.feed import LiveFeed
from hazardloop.alarms.models import Alarm, AlarmType, DetectorState
from hazardloop.auth.roles import Role
from hazardloop.db import make_session_factory
from hazardloop.plant import service as plant
from hazardloop.plant.models import SensorUpdate
from hazardloop.readings.store import ReadingStore, now_ms

HH = AlarmType.LIMIT_HH.value
T = int(T0.timestamp() * 1000)  # epoch ms of the tests' fixed start
S = 1000


def at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


wait_for = partial(waiting.wait_for, timeout=30.0, interval=0.1)


def alarms(db, tag: str | None = None, alarm_type: str | None = None) -> list[Alarm]:  # noqa: ANN001
    db.expire_all()
    query = select(Alarm).order_by(Alarm.first_at)
    if tag:
        query = query.where(Alarm.tag == tag)
    if alarm_type:
        query = query.where(Alarm.type == alarm_type)
    return list(db.scalars(query))


class Clock:
    """Epoch ms the feed believes it is; tests move it on by hand."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReadingStore]:
    reading_store = ReadingStore(tmp_path / "readings.duckdb")
    yield reading_store
    reading_store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(T)


@pytest.fixture
def feed(engine, store: ReadingStore, clock: Clock, world: World) -> Iterator[LiveFeed]:  # noqa: ANN001
    """A feed driven tick by tick on the fake clock (no worker thread), listening to the store."""
    live_feed = LiveFeed(make_session_factory(engine), store, clock=clock).listen()
    yield live_feed
    live_feed.stop()


def put(store: ReadingStore, sensor_id: int, seconds: list[float] | np.ndarray,
        values: list[float] | np.ndarray) -> None:
    """Readings of one sensor at T + seconds, through the store as every ingest path writes them."""
    ts = T + np.round(np.asarray(seconds, dtype=float) * S).astype(np.int64)
    store.insert(np.full(len(ts), sensor_id), ts, np.asarray(values, dtype=float))


def test_readings_posted_over_http_above_hh_raise_an_alarm(client, db, world: World) -> None:  # noqa: ANN001
    start = now_ms() - 60 * S  # a minute ago, second by second: GT-101 (HH 50, on-delay 5 s) at 60 %LEL
    readings = [{"tag": "GT-101", "ts": start + i * S, "value": 5.0 if i < 10 else 60.0} for i in range(30)]
    r = client.post("/api/v1/readings", json={"readings": readings}, headers=world.auth(Role.OPERATOR))
    assert r.status_code == 200, r.text
    [alarm] = wait_for(lambda: alarms(db, "GT-101", HH))
    assert alarm.first_at == at(start + 15 * S)  # the first HH reading plus the 5 s on-delay
    assert alarm.peak == 60.0


def test_a_reading_a_little_late_is_judged_in_its_place(db, world, store, feed, clock) -> None:  # noqa: ANN001
    # GT-101 is 60 %LEL at 10-11 s and from 15 s on; the normal readings at 12-14 s arrive after 15-16 s.
    put(store, world.sensor_a, [*range(0, 12), 15, 16], [5.0] * 10 + [60.0] * 4)
    clock.ms = T + 12 * S + 100  # 0-11 s are judged; 15-16 s wait for their time
    feed.tick()
    put(store, world.sensor_a, [12, 13, 14], [5.0] * 3)  # out of order, within the lateness window
    put(store, world.sensor_a, list(range(17, 31)), [60.0] * 14)
    clock.ms = T + 31 * S
    feed.tick()
    [alarm] = alarms(db, "GT-101", HH)
    assert alarm.first_at == at(T + 20 * S)  # back to normal at 12 s: the on-delay restarts at 15 s
    assert feed.late == 0


def test_a_reading_older_than_its_sensors_last_judged_one_is_judged_apart_from_live_detection(  # noqa: ANN001
        db, world, store, feed, clock) -> None:
    put(store, world.sensor_a, list(range(0, 30)), [5.0] * 30)
    clock.ms = T + 31 * S
    feed.tick()
    put(store, world.sensor_a, [*range(40, 50), 20.5], [5.0] * 10 + [99.0])  # 20.5 s: GT-101 was judged to 29 s
    clock.ms = T + 51 * S
    feed.tick()
    clock.ms = T + 54 * S  # no more late readings came: the backlog (of one reading) is judged
    feed.tick()
    assert store.count() == 41
    assert (feed.late, feed.backlog_judged) == (1, 1)
    assert alarms(db, "GT-101") == []  # one reading cannot hold HH through the 5 s on-delay


def live_state(feed: LiveFeed) -> list[np.ndarray]:
    live = feed.live
    assert live is not None
    return [a.copy() for a in (live.raw, live.since, live.on, live.peak_score, live.limits.latched,
                               live.limits.since, live.monitor.last_good_time)] + [np.array([live.last_ts])]


def test_a_gateway_backlog_after_an_outage_raises_its_alarms_at_their_time_marked_late(db, world, store, feed,  # noqa: ANN001
                                                                                        clock) -> None:
    from hazardloop.alarms.models import AlarmEvent, AlarmNotification

    put(store, world.sensor_a, list(range(0, 30)), [5.0] * 30)
    put(store, world.sensor_b, list(range(0, 30)), [5.0] * 30)
    clock.ms = T + 31 * S
    feed.tick()
    put(store, world.sensor_b, list(range(30, 600)), [5.0] * 570)  # GT-101's gateway is down; GT-201 goes on
    clock.ms = T + 601 * S
    feed.tick()
    before = live_state(feed)
    # the gateway is back and uploads its buffer in two batches: a 3 s excursion (shorter than the 5 s
    # on-delay) at 100 s, and a real episode from 200 s to 260 s that spans the two batches
    seconds = np.arange(30, 400)
    values = np.where(((seconds >= 100) & (seconds < 103)) | ((seconds >= 200) & (seconds < 260)), 60.0, 5.0)
    put(store, world.sensor_a, seconds[seconds < 230], values[seconds < 230])
    clock.ms = T + 602 * S
    feed.tick()
    put(store, world.sensor_a, seconds[seconds >= 230], values[seconds >= 230])
    clock.ms = T + 603 * S
    feed.tick()
    assert alarms(db, "GT-101", HH) == []  # still gathering: the upload may not be over
    clock.ms = T + 606 * S
    feed.tick()
    [hh] = alarms(db, "GT-101", HH)
    assert hh.first_at == at(T + 205 * S)  # the original time: first HH reading plus the on-delay
    assert hh.cleared_at == at(T + 260 * S) and not hh.active  # back below HH - deadband at 260 s
    assert hh.peak == 60.0 and hh.reason.startswith("late backlog, received ")
    raised = db.scalar(select(AlarmEvent).where(AlarmEvent.alarm_id == hh.id, AlarmEvent.kind == "raised"))
    assert raised.data["late_backlog"] == {"received_at": at(T + 606 * S).isoformat()}
    assert db.scalar(select(AlarmNotification).where(AlarmNotification.alarm_id == hh.id)) is not None  # pushed
    limit_alarms = [a for a in alarms(db, "GT-101") if a.type.startswith("limit_")]
    assert sorted(a.type for a in limit_alarms) == sorted([HH, AlarmType.LIMIT_H.value])  # 60 %LEL is above H too
    assert (feed.late, feed.backlog_judged) == (370, 370)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, live_state(feed), strict=True))


def test_a_backlog_episode_of_a_condition_active_now_folds_into_its_alarm(db, world, store, feed, clock) -> None:  # noqa: ANN001
    put(store, world.sensor_a, list(range(0, 400)), [5.0] * 300 + [60.0] * 100)  # HH now, since 300 s
    clock.ms = T + 401 * S
    feed.tick()
    [live_alarm] = alarms(db, "GT-101", HH)
    put(store, world.sensor_a, [120.5 + i for i in range(10)], [70.0] * 10)  # a late excursion at 120 s
    clock.ms = T + 402 * S
    feed.tick()
    clock.ms = T + 405 * S
    feed.tick()
    assert feed.backlog_judged == 10
    [alarm] = alarms(db, "GT-101", HH)
    assert alarm.id == live_alarm.id and alarm.active  # no second active alarm, and the live one not cleared
    assert alarm.count == 2 and alarm.peak == 70.0


def test_a_reading_that_missed_its_bucket_is_judged_just_after_it(db, world, store, feed, clock) -> None:  # noqa: ANN001
    plant.update_sensor(db, actor=world.admin, sensor_id=world.sensor_a, data=SensorUpdate(on_delay_s=0))
    put(store, world.sensor_b, list(range(0, 31)), [5.0] * 31)
    put(store, world.sensor_a, list(range(0, 29)), [5.0] * 29)
    clock.ms = T + 31 * S
    feed.tick()  # judged to 30.8 s
    put(store, world.sensor_a, [29], [60.0])  # GT-101's gateway was slow: its 29 s reading comes now
    clock.ms = T + 32 * S
    feed.tick()
    [alarm] = alarms(db, "GT-101", HH)
    assert alarm.first_at == at(T + 30_800)  # judged at the edge of what was judged, not lost
    assert (feed.shifted, feed.late) == (1, 0)


def test_a_sixty_second_sensor_next_to_a_one_second_one_is_neither_missing_nor_stuck(db, world, store, feed,  # noqa: ANN001
                                                                                      clock) -> None:
    plant.update_sensor(db, actor=world.admin, sensor_id=world.sensor_b, data=SensorUpdate(sample_period_s=60))
    rng = np.random.default_rng(3)
    seconds = np.arange(0, 1200)
    slow = seconds[::60]
    for lo in range(0, 1200, 30):  # judged every 30 s of readings, as they would arrive
        fast, few = seconds[(seconds >= lo) & (seconds < lo + 30)], slow[(slow >= lo) & (slow < lo + 30)]
        put(store, world.sensor_a, fast, 5 + rng.normal(0, 0.2, len(fast)))
        put(store, world.sensor_b, few, 7 + rng.normal(0, 0.2, len(few)))
        clock.ms = T + (lo + 29) * S + 500  # just after the last of them
        feed.tick()
    assert feed.batches >= 40 and feed.late == 0
    assert [(a.tag, a.type, a.first_at, a.reason) for a in alarms(db)] == []  # else: GT-201 missing


def test_a_restart_resumes_mid_alarm_and_replays_what_came_while_down(engine, db, world, store, feed,  # noqa: ANN001
                                                                      clock) -> None:
    put(store, world.sensor_a, list(range(0, 20)), [5.0] * 10 + [60.0] * 10)
    clock.ms = T + 21 * S
    feed.tick()
    [alarm] = alarms(db, "GT-101", HH)
    assert alarm.active
    feed.stop()  # the server stops; readings keep arriving meanwhile (another worker, a connector's retry)
    put(store, world.sensor_a, list(range(20, 40)), [60.0] * 5 + [5.0] * 15)
    clock.ms = T + 41 * S
    restarted = LiveFeed(make_session_factory(engine), store, clock=clock).listen()
    restarted.tick()
    restarted.stop()
    [again] = alarms(db, "GT-101", HH)  # the same alarm: not raised a second time
    assert again.id == alarm.id
    assert again.cleared_at == at(T + 25 * S)  # back below HH - deadband at 25 s; no off-delay configured


def test_a_fresh_start_learns_each_sensors_normal_from_the_stored_history(engine, db, world, store, clock) -> None:  # noqa: ANN001
    rng = np.random.default_rng(5)
    put(store, world.sensor_a, list(range(0, 600)), 5 + rng.normal(0, 0.1, 600))  # ten quiet minutes, stored
    fresh = LiveFeed(make_session_factory(engine), store, clock=clock).listen()  # nothing judged, no state
    put(store, world.sensor_a, list(range(600, 620)), [8.0] * 20)  # far outside that normal, below H 20
    clock.ms = T + 621 * S
    fresh.tick()
    fresh.stop()
    assert [a.type for a in alarms(db, "GT-101")] == [AlarmType.STATISTICAL.value]


def test_a_fresh_start_sees_both_states_of_a_duty_cycling_sensor_over_the_whole_history(
        engine, db, world, store, clock) -> None:  # noqa: ANN001
    """Six hours at 1 Hz, the pump running 20 minutes in every 40: its last 1,000 readings (17 minutes)
    hold one state only, the whole span holds both, so a start after the restart raises nothing."""
    rng = np.random.default_rng(6)
    seconds = np.arange(-6 * 3600, 0)
    running = (seconds // 1200) % 2 == 0
    put(store, world.sensor_a, list(seconds), np.where(running, 15.0, 1.0) + rng.normal(0, 0.05, seconds.size))
    fresh = LiveFeed(make_session_factory(engine), store, clock=clock).listen()
    put(store, world.sensor_a, list(range(0, 30)), [1.0] * 10 + [15.0] * 10 + [8.0] * 10)  # stop, start, neither
    clock.ms = T + 31 * S
    fresh.tick()
    fresh.stop()
    raised = alarms(db, "GT-101")
    assert [a.type for a in raised] == [AlarmType.STATISTICAL.value]  # only for 8.0, between the states
    assert raised[0].first_at == at(T + 20 * S)


def test_a_backlog_gathered_before_a_crash_is_judged_by_the_next_run(engine, db, world, store, clock) -> None:  # noqa: ANN001
    """The server dies while a gateway's upload is still settling: the readings are stored, and the
    next run (here a new feed on the same database and store) judges them, once."""
    from hazardloop.alarms.feed import backlog_name

    first = LiveFeed(make_session_factory(engine), store, clock=clock).listen()
    put(store, world.sensor_a, list(range(0, 30)), [5.0] * 30)
    put(store, world.sensor_b, list(range(0, 300)), [5.0] * 300)
    clock.ms = T + 301 * S
    first.tick()
    seconds = np.arange(30, 120)  # GT-101's buffer: HH from 50 s to 80 s
    put(store, world.sensor_a, seconds, np.where((seconds >= 50) & (seconds < 80), 60.0, 5.0))
    clock.ms = T + 302 * S
    first.tick()  # gathered, not yet settled ...
    assert alarms(db, "GT-101", HH) == [] and first.late == 90
    db.expire_all()
    assert db.get(DetectorState, backlog_name("live")) is not None
    first.live.save(db)  # ... and the process dies: no stop(), no judgement; its state was saved as it runs
    db.commit()
    second = LiveFeed(make_session_factory(engine), store, clock=clock).listen()
    clock.ms = T + 303 * S
    second.tick()
    clock.ms = T + 306 * S
    second.tick()
    [hh] = alarms(db, "GT-101", HH)
    assert hh.first_at == at(T + 55 * S) and hh.reason.startswith("late backlog, received ")
    db.expire_all()
    assert db.get(DetectorState, backlog_name("live")) is None  # deleted with the alarms it raised
    second.stop()
    third = LiveFeed(make_session_factory(engine), store, clock=clock).listen()
    clock.ms = T + 310 * S
    third.tick()
    third.stop()
    assert len(alarms(db, "GT-101", HH)) == 1  # not judged a second time


def test_normal_is_relearned_when_a_person_asks_after_a_process_change(engine, db, world, store, clock) -> None:  # noqa: ANN001
    """A new recipe moves GT-101 from 5 to 8 %LEL for good: the statistical alarm is right at first, then
    the instrument engineer asks for normal to be relearned from the last hour, and 8 is normal from then on."""
    from hazardloop.alarms import learning
    from hazardloop.auth.authz import PermissionDenied
    from hazardloop.auth.models import AuditEvent
    from hazardloop.errors import InvalidInput

    rng = np.random.default_rng(8)
    put(store, world.sensor_a, list(range(0, 600)), 5 + rng.normal(0, 0.1, 600))  # the old normal, stored
    feed = LiveFeed(make_session_factory(engine), store, clock=clock).listen()
    put(store, world.sensor_a, list(range(600, 4200)), 8 + rng.normal(0, 0.1, 3600))  # an hour of the new recipe
    clock.ms = T + 4201 * S
    feed.tick()
    [stat] = alarms(db, "GT-101", AlarmType.STATISTICAL.value)
    assert stat.active
    with pytest.raises(PermissionDenied):
        learning.request_relearn(db, actor=world.users[Role.OPERATOR], hours=1, now=at(clock.ms))
    with pytest.raises(InvalidInput):
        learning.request_relearn(db, actor=world.admin, hours=0, now=at(clock.ms))
    learning.request_relearn(db, actor=world.admin, hours=1, now=at(clock.ms))
    feed.reload_calibration()
    put(store, world.sensor_a, list(range(4200, 4300)), 8 + rng.normal(0, 0.1, 100))
    clock.ms = T + 4301 * S
    feed.tick()  # the request is applied before these readings are judged
    db.expire_all()
    [stat] = alarms(db, "GT-101", AlarmType.STATISTICAL.value)
    assert not stat.active  # 8 %LEL is normal now: the alarm cleared after its off-delay
    assert learning.pending_relearn(db) is None
    actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.action.like("detector.relearn%"))))
    assert actions == {"detector.relearn_requested", "detector.relearned"}
    put(store, world.sensor_a, list(range(4300, 4330)), [5.0] * 30)  # the old level is what is unusual now
    clock.ms = T + 4331 * S
    feed.tick()
    feed.stop()
    assert len(alarms(db, "GT-101", AlarmType.STATISTICAL.value)) == 2


def test_relearning_is_offered_to_administrators_over_the_api(client, world) -> None:  # noqa: ANN001
    refused = client.post("/api/v1/alarms/relearn", json={"hours": 24}, headers=world.auth(Role.OPERATOR))
    assert refused.status_code == 403
    accepted = client.post("/api/v1/alarms/relearn", json={"hours": 24}, headers=world.auth(Role.ADMIN))
    assert accepted.status_code == 202 and accepted.json() == {"requested": True, "hours": 24.0}
    bad = client.post("/api/v1/alarms/relearn", json={"hours": 10_000}, headers=world.auth(Role.ADMIN))
    assert bad.status_code == 422 and "hours" in bad.text
