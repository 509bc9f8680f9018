"""Live detection on a synthetic stream: alarms per episode, not per reading; same alarms whatever the
batching; a restart resumes where it stopped."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from alarm_clock import T0
from sqlalchemy import delete, select

import hazardloop
from hazardloop.alarms import service
from hazardloop.alarms.live import LiveDetection
from hazardloop.alarms.models import Alarm, AlarmEvent, AlarmNotification, DetectorState
from hazardloop.plant import service as plant
from hazardloop.plant.models import SensorUpdate

START = T0.timestamp()
N = 900
OFF_DELAY = 10.0


@pytest.fixture
def sensors(db, world):  # noqa: ANN001, ANN201
    """GT-101 (H 20, HH 50, deadband 2, on-delay 5 s) with a 10 s off-delay; GT-201 likewise, in area B."""
    for sensor_id in (world.sensor_a, world.sensor_b):
        plant.update_sensor(db, actor=world.admin, sensor_id=sensor_id, data=SensorUpdate(off_delay_s=OFF_DELAY))
    return plant.list_sensors(db, actor=world.admin)


def stream(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """1 Hz. GT-101 ramps 5 -> 70 %LEL (past H at ~t=123, HH at ~t=169), holds, falls back by t=360.
    GT-201 is normal until t=300, then stuck at 7.0."""
    t = np.arange(N, dtype=float)
    gas = 5 + np.interp(t, [0, 100, 200, 260, 360, 900], [0, 0, 65, 65, 0, 0]) + rng.normal(0, 0.2, N)
    other = 7 + rng.normal(0, 0.2, N)
    other[300:] = 7.0
    return START + t, {"GT-101": gas, "GT-201": other}


def live(sensors, **kw) -> LiveDetection:  # noqa: ANN001
    return LiveDetection(sensors, stuck_seconds=120, **kw)


def run(db, sensors, ts, values, batches: int, detector: LiveDetection | None = None):  # noqa: ANN001, ANN201
    detector = detector or live(sensors)
    for part in np.array_split(np.arange(len(ts)), batches):
        detector.process(db, ts[part], {tag: v[part] for tag, v in values.items()})
    return detector


def summary(db) -> list[tuple]:  # noqa: ANN001
    rows = db.scalars(select(Alarm).order_by(Alarm.tag, Alarm.type, Alarm.first_at))
    return [(a.tag, a.type, a.first_at, a.last_at, a.cleared_at, a.peak, a.value, a.count, a.active) for a in rows]


def wipe_alarms(db) -> None:  # noqa: ANN001
    for table in (AlarmEvent, AlarmNotification, Alarm):
        db.execute(delete(table))
    db.commit()


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(START + seconds, dt.UTC)


def test_a_gas_excursion_gives_one_h_and_one_hh_alarm_cleared_after_the_off_delay(db, sensors, rng):
    ts, values = stream(rng)
    run(db, sensors, ts, values, batches=1)
    alarms = {a.type: a for a in db.scalars(select(Alarm).where(Alarm.tag == "GT-101"))}
    limit_types = sorted(t for t in alarms if t.startswith("limit"))
    assert limit_types == ["limit_h", "limit_hh"]
    gas = values["GT-101"]
    for name, limit in (("limit_h", 20.0), ("limit_hh", 50.0)):
        alarm = alarms[name]
        above = np.flatnonzero(gas > limit)
        assert alarm.first_at == at(above[0] + 5)  # the on-delay of 5 s
        back = np.flatnonzero(gas >= limit - 2)[-1] + 1  # first reading back inside the deadband
        assert alarm.cleared_at == at(back + OFF_DELAY) and not alarm.active
        assert alarm.peak == pytest.approx(gas.max())
    assert alarms["limit_hh"].severity == "CRITICAL" and alarms["limit_h"].severity == "MAJOR"
    assert alarms["limit_hh"].reason == "GT-101 above HH for 5 s"


def test_a_stuck_sensor_raises_a_sensor_fault_alarm(db, sensors, rng):
    ts, values = stream(rng)
    run(db, sensors, ts, values, batches=1)
    faults = list(db.scalars(select(Alarm).where(Alarm.tag == "GT-201")))
    assert [(a.type, a.severity, a.active) for a in faults] == [("sensor_fault:stuck", "MINOR", True)]
    assert faults[0].first_at == at(300 + 120) and "stuck" in faults[0].reason


def test_every_raised_alarm_records_the_detector_and_version_that_raised_it(db, sensors, rng):
    ts, values = stream(rng)
    run(db, sensors, ts, values, batches=1)
    raised = {e.alarm_id: e.data for e in db.scalars(select(AlarmEvent).where(AlarmEvent.kind == "raised"))}
    by_type = {a.type: raised[a.id] for a in db.scalars(select(Alarm))}
    assert by_type["limit_hh"]["detector"] == "hazardloop.alarms.live:limits"
    assert by_type["sensor_fault:stuck"]["detector"] == "hazardloop.alarms.live:sensor_health"
    assert all(data["version"] == hazardloop.__version__ for data in by_type.values())


@pytest.mark.parametrize("batches", [10, 37])
def test_one_batch_or_many_give_the_same_alarms(db, sensors, rng, batches):
    ts, values = stream(rng)
    run(db, sensors, ts, values, batches=1)
    whole = summary(db)
    wipe_alarms(db)
    db.delete(db.get(DetectorState, "live"))
    db.commit()
    run(db, sensors, ts, values, batches=batches)
    assert summary(db) == whole


def test_a_restart_resumes_mid_episode_without_raising_again(db, sensors, rng):
    ts, values = stream(rng)
    run(db, sensors, ts, values, batches=1, detector=live(sensors, name="reference"))
    reference = summary(db)
    wipe_alarms(db)
    first, second = slice(0, 200), slice(200, N)  # stop while GT-101 is above HH
    live(sensors).process(db, ts[first], {t: v[first] for t, v in values.items()})
    assert {a.type for a in db.scalars(select(Alarm).where(Alarm.active, Alarm.tag == "GT-101"))} >= {
        "limit_h", "limit_hh"}
    resumed = live(sensors)
    assert resumed.load(db)
    report = resumed.process(db, ts[second], {t: v[second] for t, v in values.items()})
    raised_types = {db.get(Alarm, i).type for i in report.raised}
    assert "limit_h" not in raised_types and "limit_hh" not in raised_types
    assert summary(db) == reference


def test_a_state_saved_before_packing_still_resumes(db, sensors, rng):
    """States written as plain JSON lists (before the arrays were packed) load as they always did."""
    ts, values = stream(rng)
    first = live(sensors)
    first.process(db, ts[:200], {t: v[:200] for t, v in values.items()})
    db.get(DetectorState, "live").blob = json.dumps(first.state_dict())
    db.commit()
    resumed = live(sensors)
    assert resumed.load(db)
    assert resumed.last_ts == first.last_ts
    np.testing.assert_array_equal(resumed.on, first.on)
    np.testing.assert_array_equal(resumed.since, first.since)


def test_a_replayed_batch_changes_nothing(db, sensors, rng):
    ts, values = stream(rng)
    detector = run(db, sensors, ts, values, batches=1)
    before = summary(db)
    report = detector.process(db, ts[100:400], {t: v[100:400] for t, v in values.items()})
    assert report.rows == 0 and report.skipped_rows == 300 and summary(db) == before


def test_a_changed_sensor_list_keeps_each_sensors_state_by_tag(db, world, sensors, rng):
    ts, values = stream(rng)
    live(sensors).process(db, ts[:500], {t: v[:500] for t, v in values.items()})  # GT-201 stuck from t=420
    from world import gas_sensor

    plant.create_sensor(db, actor=world.admin, data=gas_sensor("GT-100", world.area_a))  # sorts first
    grown = plant.list_sensors(db, actor=world.admin)
    assert [s.tag for s in grown] == ["GT-100", "GT-101", "GT-201"]
    resumed = live(grown)
    assert resumed.load(db)
    report = resumed.process(db, ts[500:], {t: v[500:] for t, v in values.items()})
    raised = [(db.get(Alarm, i).tag, db.get(Alarm, i).type) for i in report.raised]
    assert raised == [("GT-100", "silent")]  # the new sensor sends nothing; nothing re-raised or mis-assigned
    stuck = db.scalars(select(Alarm).where(Alarm.type == "sensor_fault:stuck")).all()
    assert [(a.tag, a.count) for a in stuck] == [("GT-201", 1)]


def test_statistical_alarms_need_a_learned_normal(db, sensors, rng):
    ts, values = stream(rng)
    detector = live(sensors).fit({"GT-101": 5 + rng.normal(0, 0.2, 600)})
    detector.process(db, ts, values)
    stat = db.scalars(select(Alarm).where(Alarm.type == "statistical")).all()
    assert [(a.tag, a.severity, a.count) for a in stat] == [("GT-101", "WARNING", 1)]  # GT-201 was never fitted


def test_a_silent_feed_raises_and_clears_when_readings_return(db, sensors, rng):
    ts, values = stream(rng)
    detector = live(sensors)
    detector.process(db, ts[:100], {t: v[:100] for t, v in values.items()})
    report = detector.check_silent(db, now=at(99 + 61))
    silent = [db.get(Alarm, i) for i in report.raised]
    assert sorted(a.tag for a in silent) == ["GT-101", "GT-201"] and silent[0].first_at == at(99 + 60)
    report = detector.process(db, ts[200:300], {t: v[200:300] for t, v in values.items()})
    assert sorted(db.get(Alarm, i).type for i in report.cleared) == ["silent", "silent"]


def test_a_rule_turns_hh_alarms_into_hazard_drafts_with_the_chart(db, sensors, rng, monkeypatch):
    monkeypatch.setattr(service, "auto_draft_types", lambda: frozenset({"limit_hh"}))
    ts, values = stream(rng)
    report = live(sensors, draft_window_rows=30).process(db, ts, values)
    assert len(report.drafts) == 1
    alarm = db.scalar(select(Alarm).where(Alarm.type == "limit_hh"))
    assert alarm.hazard_id == report.drafts[0]
    from hazardloop.hazards import service as hazards

    hazard = hazards.get(db, actor=service_admin(db), hazard_id=alarm.hazard_id)
    assert hazard.state == "DRAFT" and hazard.source_ref == f"alarm:{alarm.id}"


def service_admin(db):  # noqa: ANN001, ANN201
    from hazardloop.auth.models import User

    return db.scalar(select(User).where(User.username == "admin"))
