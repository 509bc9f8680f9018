"""Alarm messages (raised, escalated) reach the outbox once; an HH alarm is never held by quiet hours."""

from __future__ import annotations

import datetime as dt

import pytest
from notify_servers import RobotServer
from sqlalchemy import select
from world import World

from hazardloop.alarms import service as alarms
from hazardloop.alarms.service import SensorRef
from hazardloop.notify import service
from hazardloop.notify.bridge import pull_alarm_notifications
from hazardloop.notify.models import ChannelCreate, ChannelKind, OutboxEntry, PolicyCreate
from hazardloop.plant.models import Sensor

NOW = dt.datetime(2026, 6, 1, 15, 30, tzinfo=dt.UTC)  # 23:30 in Shanghai: inside the quiet hours below


@pytest.fixture
def console(db, world: World, robots: RobotServer) -> SensorRef:  # noqa: ANN001
    channel = service.create_channel(db, actor=world.admin, data=ChannelCreate(
        kind=ChannelKind.WECOM, name="中控室群", config={"webhook_url": robots.url("wecom")}))
    service.create_policy(db, actor=world.admin, data=PolicyCreate(
        name="alarms", channel_ids=[channel.id], event_kinds=["alarm"], quiet_start="22:00", quiet_end="07:00"))
    sensor = db.get(Sensor, world.sensor_a)
    return SensorRef(id=sensor.id, tag=sensor.tag, area_id=sensor.area_id, unit=sensor.unit)


def test_hh_alarm_goes_out_at_once_even_in_quiet_hours(db, world: World, console: SensorRef) -> None:  # noqa: ANN001
    alarms.raise_or_update(db, sensor=console, alarm_type="limit_hh", at=NOW, value=55.0, reason="GT-101 above HH")
    rows = pull_alarm_notifications(db, now=NOW)
    assert rows and all(r.event_kind == "alarm" for r in rows)
    assert all(r.next_attempt_at <= NOW for r in rows), "CRITICAL alarms are not held back"
    assert pull_alarm_notifications(db, now=NOW + dt.timedelta(minutes=1)) == []


def test_unacknowledged_alarm_escalates_once_per_step(db, world: World, console: SensorRef) -> None:  # noqa: ANN001
    alarms.raise_or_update(db, sensor=console, alarm_type="limit_hh", at=NOW, value=55.0, reason="GT-101 above HH")
    pull_alarm_notifications(db, now=NOW)
    later = NOW + dt.timedelta(hours=6)
    assert alarms.escalate_unacknowledged(db, later)
    first = pull_alarm_notifications(db, now=later)
    assert first
    assert alarms.escalate_unacknowledged(db, later) == []
    assert pull_alarm_notifications(db, now=later) == []
    keys = db.scalars(select(OutboxEntry.idempotency_key)).all()
    assert len(keys) == len(set(keys))
