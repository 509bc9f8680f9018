"""Learning from verdicts: false alarms raise that sensor's statistical limit (up to a cap), confirmed true
alarms hold it below their peaks, configured limits never move, every change is audited and outlives a restart."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from alarm_clock import T0
from sqlalchemy import select

from hazardloop.alarms import service
from hazardloop.alarms.learning import CalibrationRule, recalibrate, stored_calibration
from hazardloop.alarms.live import LiveDetection
from hazardloop.alarms.models import Alarm, AlarmType, Verdict
from hazardloop.alarms.service import SensorRef
from hazardloop.auth.authz import PermissionDenied
from hazardloop.auth.models import AuditEvent
from hazardloop.auth.roles import Role
from hazardloop.plant import service as plant
from hazardloop.plant.models import Sensor

STAT = AlarmType.STATISTICAL.value
NOW = T0 + dt.timedelta(days=1)


@pytest.fixture
def live(db, world) -> LiveDetection:  # noqa: ANN001
    """GT-101 and GT-201 fitted on a quiet 5 %LEL (median 5, robust sigma 0.148), state saved."""
    detector = LiveDetection.start(db, actor=world.admin)
    quiet = np.tile([4.9, 5.1], 100)
    detector.fit({"GT-101": quiet, "GT-201": quiet})
    detector.save(db)
    db.commit()
    return detector


def reading(live: LiveDetection, tag: str, z: float) -> float:
    """The reading that lies ``z`` robust sigmas above the sensor's learned normal."""
    col = live.tags.index(tag)
    return float(live.monitor.median_[col] + z / live.monitor.inv_scale_[col])


def judged(db, world, live: LiveDetection, sensor: SensorRef, z: float, verdict: Verdict,  # noqa: ANN001
           minutes: int = 0) -> Alarm:
    """A statistical alarm that peaked at robust z ``z``, cleared and judged by the operator."""
    at = T0 + dt.timedelta(minutes=minutes)
    value = reading(live, sensor.tag, z)
    alarm, _ = service.raise_or_update(db, sensor=sensor, alarm_type=STAT, at=at, value=value, reason="", peak=value)
    service.clear(db, sensor_id=sensor.id, alarm_type=STAT, at=at + dt.timedelta(minutes=1))
    return service.give_verdict(db, actor=world.users[Role.OPERATOR], alarm_id=alarm.id, verdict=verdict, now=NOW)


def test_false_alarms_raise_that_sensors_limit_just_above_their_highest_peak(db, world, live, gt101, gt201):
    judged(db, world, live, gt101, 7.0, Verdict.FALSE_ALARM)
    judged(db, world, live, gt101, 8.0, Verdict.FALSE_ALARM, minutes=10)
    [calibration] = recalibrate(db, now=NOW)
    assert calibration.tag == "GT-101" and calibration.changed
    assert calibration.z_limit == pytest.approx(1.1 * 8.0)
    assert calibration.false_alarms == 2 and not calibration.needs_review
    assert stored_calibration(db) == {"GT-101": pytest.approx(8.8)}


def test_other_sensors_keep_the_default_limit(db, world, live, gt101):
    judged(db, world, live, gt101, 8.0, Verdict.FALSE_ALARM)
    recalibrate(db, now=NOW)
    restarted = LiveDetection.start(db, actor=world.admin)
    assert restarted.z_limits[restarted.tags.index("GT-201")] == 6.0


def test_the_limit_rises_at_most_to_the_cap_and_the_sensor_is_flagged_for_a_person(db, world, live, gt101):
    judged(db, world, live, gt101, 50.0, Verdict.FALSE_ALARM)
    [calibration] = recalibrate(db, now=NOW)
    assert calibration.z_limit == pytest.approx(12.0)  # 2 × the default 6
    assert calibration.needs_review


def test_a_confirmed_true_alarm_holds_the_limit_below_its_peak(db, world, live, gt101):
    judged(db, world, live, gt101, 10.0, Verdict.FALSE_ALARM)
    judged(db, world, live, gt101, 9.0, Verdict.TRUE_ALARM, minutes=10)
    [calibration] = recalibrate(db, now=NOW)
    assert calibration.z_limit == pytest.approx(0.9 * 9.0)
    assert calibration.z_limit < calibration.lowest_true_z


def test_learning_never_lowers_the_limit_below_the_default(db, world, live, gt101):
    judged(db, world, live, gt101, 6.3, Verdict.TRUE_ALARM)
    judged(db, world, live, gt101, 9.0, Verdict.FALSE_ALARM, minutes=10)
    [calibration] = recalibrate(db, now=NOW)
    assert calibration.z_limit == 6.0 and not calibration.changed


def test_a_corrected_verdict_takes_the_limit_back(db, world, live, gt101):
    alarm = judged(db, world, live, gt101, 9.0, Verdict.FALSE_ALARM)
    recalibrate(db, now=NOW)
    service.give_verdict(db, actor=world.users[Role.OPERATOR], alarm_id=alarm.id, verdict=Verdict.TRUE_ALARM,
                         now=NOW)
    [calibration] = recalibrate(db, now=NOW + dt.timedelta(hours=1))
    assert calibration.previous == pytest.approx(9.9) and calibration.z_limit == 6.0
    assert stored_calibration(db) == {}


def test_every_change_is_audited_with_before_and_after(db, world, live, gt101):
    judged(db, world, live, gt101, 8.0, Verdict.FALSE_ALARM)
    recalibrate(db, now=NOW)
    recalibrate(db, now=NOW)  # nothing new: no second entry
    [entry] = db.scalars(select(AuditEvent).where(AuditEvent.action == "detector.recalibrate"))
    assert entry.target_type == "sensor" and entry.target_id == str(gt101.id)
    assert entry.before["z_limit"] == 6.0 and entry.after["z_limit"] == pytest.approx(8.8)
    assert entry.after["false_alarms"] == 1


def test_an_operator_may_not_run_the_recalibration(db, world, live):
    with pytest.raises(PermissionDenied):
        recalibrate(db, now=NOW, actor=world.users[Role.OPERATOR])


def test_the_calibration_survives_a_restart_and_quiets_the_judged_excursion(db, world, live, gt101):
    judged(db, world, live, gt101, 8.0, Verdict.FALSE_ALARM)
    recalibrate(db, now=NOW)
    restarted = LiveDetection.start(db, actor=world.admin)
    assert restarted.z_limits[restarted.tags.index("GT-101")] == pytest.approx(8.8)
    ts = NOW.timestamp() + np.arange(4.0)
    same = [reading(live, "GT-101", z) for z in (0.0, 8.0, 8.0, 0.0)]
    restarted.process(db, ts, {"GT-101": same, "GT-201": same})
    new = list(db.scalars(select(Alarm).where(Alarm.type == STAT, Alarm.first_at >= NOW)))
    assert [a.tag for a in new] == ["GT-201"]  # the same excursion still alarms on the uncalibrated sensor


def test_verdicts_never_move_the_configured_alarm_limits(db, world, live, gt101):
    for minutes, z in enumerate((8.0, 30.0, 90.0)):
        judged(db, world, live, gt101, z, Verdict.FALSE_ALARM, minutes=10 * minutes)
    recalibrate(db, now=NOW)
    sensor = db.get(Sensor, gt101.id)
    assert (sensor.h, sensor.hh, sensor.deadband, sensor.on_delay_s) == (20, 50, 2, 5)
    restarted = LiveDetection.start(db, actor=world.admin)
    col = restarted.tags.index("GT-101")
    assert (restarted.limits.hi[col], restarted.limits.hi_hi[col]) == (20.0, 50.0)
    ts = NOW.timestamp() + np.arange(20.0)
    gas = np.full(20, 5.0)
    gas[2:14] = 25.0  # above H for 12 s, past the 5 s on-delay: the H alarm comes as configured
    restarted.process(db, ts, {"GT-101": gas})
    assert db.scalar(select(Alarm).where(Alarm.tag == "GT-101", Alarm.type == "limit_h")) is not None


def test_a_rule_with_a_wider_cap_is_bounded_by_that_cap(db, world, live, gt101):
    judged(db, world, live, gt101, 50.0, Verdict.FALSE_ALARM)
    [calibration] = recalibrate(db, now=NOW, rule=CalibrationRule(cap_factor=3.0))
    assert calibration.z_limit == pytest.approx(18.0)


def test_without_a_fitted_detector_nothing_is_calibrated(db, world, gt101):
    assert recalibrate(db, now=NOW) == []
    assert plant.list_sensors(db, actor=world.admin)  # the plant is there, only the normal is missing


def test_recalibration_is_offered_to_administrators_over_the_api(client, world) -> None:  # noqa: ANN001
    from hazardloop.auth.roles import Role

    assert client.post("/api/v1/alarms/recalibrate", headers=world.auth(Role.OPERATOR)).status_code == 403
    r = client.post("/api/v1/alarms/recalibrate", headers=world.auth(Role.ADMIN))
    assert r.status_code == 200 and isinstance(r.json(), list)


def test_a_two_state_sensors_peaks_are_measured_from_its_nearer_state(db, world, gt101):  # noqa: ANN001
    """A loading pump's flow: stopped (0) or running (48). A false alarm peaking 7 sigmas above the running
    state counts as 7, as the detector judged it, not as hundreds of sigmas above the stopped state."""
    detector = LiveDetection.start(db, actor=world.admin)
    rng = np.random.default_rng(3)
    running = (np.arange(2400) % 120) >= 80
    detector.fit({"GT-101": np.where(running, 48.0 + rng.normal(0, 1.0, 2400), np.abs(rng.normal(0, 0.1, 2400)))})
    detector.save(db)
    db.commit()
    col = detector.tags.index("GT-101")
    assert np.isfinite(detector.monitor.alt_median_[col])
    peak = float(detector.monitor.alt_median_[col] + 7.0 / detector.monitor.alt_inv_scale_[col])
    alarm, _ = service.raise_or_update(db, sensor=gt101, alarm_type=STAT, at=T0, value=peak, reason="", peak=peak)
    service.clear(db, sensor_id=gt101.id, alarm_type=STAT, at=T0 + dt.timedelta(minutes=1))
    service.give_verdict(db, actor=world.users[Role.OPERATOR], alarm_id=alarm.id, verdict=Verdict.FALSE_ALARM, now=NOW)
    [calibration] = recalibrate(db, now=NOW)
    assert calibration.highest_false_z == pytest.approx(7.0) and calibration.z_limit == pytest.approx(7.7)
