"""Shelving from the 报警台: only roles with alarm.shelve see the form; a shelf needs a reason and a
duration within escalation.toml's limit, shows on the row, and can be ended early."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "alarms"))

from alarm_clock import T0  # noqa: E402
from world import PASSWORD, World, build_world  # noqa: E402

from hazardloop.alarms import service  # noqa: E402
from hazardloop.alarms.models import Alarm  # noqa: E402
from hazardloop.alarms.service import SensorRef  # noqa: E402
from hazardloop.db import utcnow  # noqa: E402
from hazardloop.plant.models import Sensor  # noqa: E402
from hazardloop.web.alarm_pages import shelve_hours  # noqa: E402


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)


@pytest.fixture
def alarm(db, world: World) -> Alarm:  # noqa: ANN001
    s = db.get(Sensor, world.sensor_a)
    raised, _ = service.raise_or_update(db, sensor=SensorRef(id=s.id, tag=s.tag, area_id=s.area_id, unit=s.unit),
                                        alarm_type="limit_hh", at=T0, value=55.0, reason="GT-101 高于高高限")
    return raised


def login(client, username: str) -> None:  # noqa: ANN001
    answer = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/alarms"},
                         follow_redirects=False)
    assert answer.status_code == 303


def fresh(db, alarm: Alarm) -> Alarm:  # noqa: ANN001
    db.expire_all()
    return db.get(Alarm, alarm.id)


def test_only_roles_allowed_to_shelve_see_the_form(client, world: World, alarm: Alarm) -> None:  # noqa: ANN001
    login(client, "safety_officer")  # may act on alarms, may not shelve (permissions.toml)
    page = client.get("/alarms").text
    assert "ack-form" in page and "shelve-form" not in page
    assert client.post(f"/alarms/{alarm.id}/shelve", data={"hours": "8", "reason": "检修作业票 42"}).status_code == 403
    client.post("/logout")
    login(client, "operator")
    assert "shelve-form" in client.get("/alarms").text and "shelve-form" in client.get(f"/alarms/{alarm.id}").text


def test_operator_shelves_with_reason_and_duration_then_ends_it(client, db, world: World,
                                                                  alarm: Alarm) -> None:  # noqa: ANN001
    login(client, "operator")
    missing = client.post(f"/alarms/{alarm.id}/shelve", data={"hours": "8", "reason": ""},
                          headers={"HX-Request": "true"})
    assert missing.status_code == 422 and 'data-testid="alarm-error"' in missing.text
    too_long = client.post(f"/alarms/{alarm.id}/shelve", data={"hours": str(max(shelve_hours()) + 1),
                                                               "reason": "检修"})
    assert too_long.status_code == 422
    assert not fresh(db, alarm).is_shelved(utcnow())

    before = utcnow()
    row = client.post(f"/alarms/{alarm.id}/shelve", data={"hours": "4", "reason": "检修作业票 42"},
                      headers={"HX-Request": "true"})
    assert row.status_code == 200 and row.text.lstrip().startswith(f'<tr id="alarm-{alarm.id}"')
    assert "is-shelved" in row.text and "unshelve-form" in row.text
    stored = fresh(db, alarm)
    assert stored.shelve_reason == "检修作业票 42"
    hours = (stored.shelved_until - before).total_seconds() / 3600
    assert 3.99 < hours < 4.01

    detail = client.post(f"/alarms/{alarm.id}/unshelve", data={"back": "detail"}, follow_redirects=False)
    assert detail.headers["location"] == f"/alarms/{alarm.id}?done=unshelved"
    page = client.get(detail.headers["location"]).text
    assert "已解除搁置" in page and 'data-testid="event-unshelved"' in page
    assert not fresh(db, alarm).is_shelved(utcnow())
    again = client.post(f"/alarms/{alarm.id}/unshelve", headers={"HX-Request": "true"})
    assert again.status_code == 409
