"""Alarm lifecycle, severity, shelving, escalation and the notify bridge, through the service."""

from __future__ import annotations

import datetime as dt

import pytest
from alarm_clock import T0
from sqlalchemy import func, select

from hazardloop.alarms import service
from hazardloop.alarms.models import Alarm, AlarmNotification, Severity
from hazardloop.auth.roles import Role
from hazardloop.errors import Conflict, InvalidInput

MIN = dt.timedelta(minutes=1)


def _raise(db, sensor, alarm_type="limit_hh", at=T0, value=55.0):  # noqa: ANN001, ANN202
    return service.raise_or_update(db, sensor=sensor, alarm_type=alarm_type, at=at, value=value,
                                   reason=f"{sensor.tag} above HH", peak=value)


def test_a_lasting_condition_updates_its_alarm_instead_of_adding_one(db, world, gt101):
    first, created = _raise(db, gt101)
    again, created_again = _raise(db, gt101, at=T0 + MIN, value=61.0)
    assert created and not created_again and again.id == first.id
    assert again.count == 2 and again.peak == 61.0 and again.last_at == T0 + MIN
    assert db.scalar(select(func.count()).select_from(Alarm)) == 1


def test_acknowledged_then_cleared_alarm_ends_cleared_and_acknowledged(db, world, gt101):
    alarm, _ = _raise(db, gt101)
    assert alarm.state == "ACTIVE_UNACK"
    service.acknowledge(db, actor=world.users[Role.OPERATOR], alarm_id=alarm.id, note="去现场", now=T0 + MIN)
    assert alarm.state == "ACTIVE_ACK"
    service.clear(db, sensor_id=gt101.id, alarm_type="limit_hh", at=T0 + 5 * MIN)
    assert alarm.state == "CLEARED_ACK" and alarm.cleared_at == T0 + 5 * MIN
    kinds = [e.kind for e in service.timeline(db, actor=world.admin, alarm_id=alarm.id)]
    assert kinds == ["raised", "acknowledged", "cleared"]


def test_an_alarm_cleared_before_anyone_saw_it_stays_unacknowledged_until_acknowledged(db, world, gt101):
    alarm, _ = _raise(db, gt101)
    service.clear(db, sensor_id=gt101.id, alarm_type="limit_hh", at=T0 + MIN)
    assert alarm.state == "CLEARED_UNACK"
    unacked, _ = service.list_for_user(db, actor=world.users[Role.OPERATOR],
                                       filters=service.AlarmFilter(acknowledged=False))
    assert [a.id for a in unacked] == [alarm.id]
    service.acknowledge(db, actor=world.users[Role.OPERATOR], alarm_id=alarm.id)
    assert alarm.state == "CLEARED_ACK"
    with pytest.raises(Conflict):
        service.acknowledge(db, actor=world.users[Role.OPERATOR], alarm_id=alarm.id)


def test_the_same_condition_after_a_clear_is_a_new_alarm(db, world, gt101):
    first, _ = _raise(db, gt101)
    service.clear(db, sensor_id=gt101.id, alarm_type="limit_hh", at=T0 + MIN)
    second, created = _raise(db, gt101, at=T0 + 2 * MIN)
    assert created and second.id != first.id and not first.active and second.active


@pytest.mark.parametrize(("alarm_type", "severity"), [
    ("limit_hh", Severity.CRITICAL), ("limit_ll", Severity.CRITICAL), ("limit_h", Severity.MAJOR),
    ("limit_l", Severity.MAJOR), ("sensor_fault:stuck", Severity.MINOR), ("sensor_fault:range", Severity.MINOR),
    ("statistical", Severity.WARNING), ("silent", Severity.MINOR),
])
def test_severity_follows_the_data_file(alarm_type, severity):
    assert service.severity_for(alarm_type) is severity


def test_an_unknown_alarm_type_is_refused_with_the_file_to_fix():
    with pytest.raises(InvalidInput, match="severity.toml"):
        service.severity_for("made_up")


def test_raising_queues_a_notification_for_the_roles_of_its_severity(db, world, gt101):
    alarm, _ = _raise(db, gt101)
    pending = service.pending_alarm_notifications(db)
    assert [(n.alarm_id, n.kind, n.roles) for n in pending] == [(alarm.id, "raised", ["operator", "safety_officer"])]
    assert service.mark_enqueued(db, [n.id for n in pending]) == 1
    assert service.pending_alarm_notifications(db) == [] and service.mark_enqueued(db, [pending[0].id]) == 0


def test_a_shelved_condition_is_recorded_but_notifies_nobody(db, world, gt101):
    alarm, _ = _raise(db, gt101)
    operator = world.users[Role.OPERATOR]
    service.shelve(db, actor=operator, alarm_id=alarm.id, until=T0 + dt.timedelta(hours=4), reason="动火作业 HZ-0042",
                   now=T0 + MIN)
    service.clear(db, sensor_id=gt101.id, alarm_type="limit_hh", at=T0 + 2 * MIN)
    again, created = _raise(db, gt101, at=T0 + 3 * MIN)  # the same condition, still during maintenance
    assert created and again.is_shelved(T0 + 3 * MIN) and again.shelve_reason == "动火作业 HZ-0042"
    assert [n.alarm_id for n in service.pending_alarm_notifications(db)] == [alarm.id]  # only the first raise
    assert service.escalate_unacknowledged(db, now=T0 + dt.timedelta(hours=1)) == []


def test_shelving_is_time_limited_and_needs_a_reason(db, world, gt101):
    alarm, _ = _raise(db, gt101)
    operator = world.users[Role.OPERATOR]
    with pytest.raises(InvalidInput, match="at most"):
        service.shelve(db, actor=operator, alarm_id=alarm.id, until=T0 + dt.timedelta(days=10), reason="检修", now=T0)
    with pytest.raises(InvalidInput, match="reason"):
        service.shelve(db, actor=operator, alarm_id=alarm.id, until=T0 + MIN, reason=" ", now=T0)


def test_unshelving_restarts_the_escalation_clock(db, world, gt101):
    alarm, _ = _raise(db, gt101)
    manager = world.users[Role.SAFETY_MANAGER]
    service.shelve(db, actor=manager, alarm_id=alarm.id, until=T0 + dt.timedelta(hours=2), reason="检修", now=T0)
    service.unshelve(db, actor=manager, alarm_id=alarm.id, now=T0 + dt.timedelta(hours=1))
    assert service.escalate_unacknowledged(db, now=T0 + dt.timedelta(hours=1, minutes=1)) == []
    assert len(service.escalate_unacknowledged(db, now=T0 + dt.timedelta(hours=1, minutes=2))) == 1


def test_the_escalation_ladder_climbs_once_per_step_whatever_the_timer_does(db, world, gt101):
    alarm, _ = _raise(db, gt101)  # CRITICAL: safety officer after 2 min, safety manager after 10
    assert service.escalate_unacknowledged(db, now=T0 + MIN) == []
    step1 = service.escalate_unacknowledged(db, now=T0 + 2 * MIN)
    assert [(n.step, n.roles) for n in step1] == [(1, ["safety_officer"])]
    assert service.escalate_unacknowledged(db, now=T0 + 3 * MIN) == []
    assert service.escalate_unacknowledged(db, now=T0 + 3 * MIN) == []
    step2 = service.escalate_unacknowledged(db, now=T0 + 10 * MIN)
    assert [(n.step, n.roles) for n in step2] == [(2, ["safety_manager"])] and alarm.escalation_step == 2
    assert service.escalate_unacknowledged(db, now=T0 + 60 * MIN) == []
    assert db.scalar(select(func.count()).select_from(AlarmNotification)
                     .where(AlarmNotification.kind == "escalated")) == 2


def test_a_late_timer_fires_every_step_that_fell_due_and_acknowledgement_stops_the_ladder(db, world, gt101, gt201):
    late, _ = _raise(db, gt101)
    seen, _ = _raise(db, gt201)
    service.acknowledge(db, actor=_all_areas_manager(db, world), alarm_id=seen.id, now=T0 + MIN)
    fired = service.escalate_unacknowledged(db, now=T0 + dt.timedelta(hours=1))
    assert sorted((n.alarm_id, n.step) for n in fired) == [(late.id, 1), (late.id, 2)]


def _all_areas_manager(db, world):  # noqa: ANN001, ANN202
    manager = world.users[Role.SAFETY_MANAGER]
    manager.all_areas = True
    db.commit()
    return manager
