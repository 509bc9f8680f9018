"""The 报警台 as an operator uses it: the live list of their areas, acknowledge / judge / to-hazard
through the forms, refusals beside the row, and one alarm with its sensor chart."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "alarms"))

from alarm_clock import T0  # noqa: E402
from world import PASSWORD, World, build_world  # noqa: E402

from hazardloop.alarms import service  # noqa: E402
from hazardloop.alarms.models import Alarm  # noqa: E402
from hazardloop.alarms.service import SensorRef  # noqa: E402
from hazardloop.hazards import service as hazards  # noqa: E402
from hazardloop.hazards.models import Hazard, HazardState  # noqa: E402
from hazardloop.plant.models import Sensor  # noqa: E402
from hazardloop.readings.views import store_for  # noqa: E402


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)


def _ref(db, sensor_id: int) -> SensorRef:  # noqa: ANN001
    s = db.get(Sensor, sensor_id)
    return SensorRef(id=s.id, tag=s.tag, area_id=s.area_id, unit=s.unit)


@pytest.fixture
def alarm_a(db, world: World) -> Alarm:  # noqa: ANN001
    alarm, _ = service.raise_or_update(db, sensor=_ref(db, world.sensor_a), alarm_type="limit_hh", at=T0,
                                       value=55.0, reason="GT-101 高于高高限 5 秒", peak=62.5)
    return alarm


@pytest.fixture
def alarm_b(db, world: World) -> Alarm:  # noqa: ANN001
    alarm, _ = service.raise_or_update(db, sensor=_ref(db, world.sensor_b), alarm_type="limit_h", at=T0,
                                       value=25.0, reason="GT-201 高于高限")
    return alarm


def login(client, username: str) -> None:  # noqa: ANN001
    response = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/alarms"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def fresh(db, alarm: Alarm) -> Alarm:  # noqa: ANN001
    db.expire_all()
    return db.get(Alarm, alarm.id)


def test_operator_sees_the_active_alarm_of_their_area_only(client, world: World, alarm_a, alarm_b) -> None:  # noqa: ANN001
    assert client.get("/alarms", follow_redirects=False).status_code == 303  # to the login
    login(client, "operator")
    page = client.get("/alarms").text
    assert "GT-101 高于高高限 5 秒" in page and "GT-101" in page and "GT-201" not in page
    assert page.count('data-testid="alarm-row"') == 1 and f'class="al-sev sev-{alarm_a.severity}"' in page
    assert 'hx-trigger="every 5s' in page and 'href="/alarms"' in page
    assert "未确认" in page and "罐区" in page
    partial = client.get("/alarms", headers={"HX-Request": "true"}).text
    assert partial.lstrip().startswith('<section class="card" id="alarm-table"') and "GT-101" in partial
    assert client.get(f"/alarms/{alarm_b.id}").status_code == 404


def test_acknowledge_and_verdict_through_the_forms_change_the_alarm(client, db, world: World, alarm_a) -> None:  # noqa: ANN001
    login(client, "operator")
    row = client.post(f"/alarms/{alarm_a.id}/acknowledge", headers={"HX-Request": "true"})
    assert row.status_code == 200 and row.text.lstrip().startswith(f'<tr id="alarm-{alarm_a.id}"')
    assert 'data-testid="acked"' in row.text and 'data-testid="ack-form"' not in row.text
    assert fresh(db, alarm_a).acknowledged

    again = client.post(f"/alarms/{alarm_a.id}/acknowledge", headers={"HX-Request": "true"})
    assert again.status_code == 409 and 'data-testid="alarm-error"' in again.text and "报警状态已变化" in again.text

    plain = client.post(f"/alarms/{alarm_a.id}/verdict", data={"verdict": "false_alarm", "comment": "标定气"},
                        follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == f"/alarms#alarm-{alarm_a.id}"
    stored = fresh(db, alarm_a)
    assert stored.verdict == "false_alarm" and stored.verdict_comment == "标定气"

    back = client.post(f"/alarms/{alarm_a.id}/verdict", data={"verdict": "sensor_fault", "back": "detail"},
                       follow_redirects=False)
    assert back.headers["location"] == f"/alarms/{alarm_a.id}?done=verdict"
    detail = client.get(back.headers["location"]).text
    assert "研判已保存" in detail and "仪表故障" in detail and 'data-testid="event-verdict"' in detail

    bad = client.post(f"/alarms/{alarm_a.id}/verdict", data={"verdict": "maybe"})
    assert bad.status_code == 422 and 'data-testid="alarm-error"' in bad.text


def test_a_viewer_gets_no_action_buttons_and_a_post_is_refused(client, db, world: World, alarm_a) -> None:  # noqa: ANN001
    login(client, "viewer")
    page = client.get("/alarms").text
    assert "GT-101" in page and 'data-testid="no-actions"' in page
    assert "ack-form" not in page and "verdict-form" not in page and "to-hazard-form" not in page
    assert "ack-form" not in client.get(f"/alarms/{alarm_a.id}").text
    refused = client.post(f"/alarms/{alarm_a.id}/acknowledge")
    assert refused.status_code == 403 and "无权执行此操作" in refused.text
    assert client.post(f"/alarms/{alarm_a.id}/verdict", data={"verdict": "true_alarm"}).status_code == 403
    assert client.post(f"/alarms/{alarm_a.id}/to-hazard").status_code == 403
    stored = fresh(db, alarm_a)
    assert not stored.acknowledged and stored.verdict is None and stored.hazard_id is None


def test_to_hazard_creates_a_linked_draft_with_the_chart_as_evidence(client, app, db, world: World, alarm_a) -> None:  # noqa: ANN001
    ts = np.arange(_ms(T0 - dt.timedelta(minutes=5)), _ms(T0 + dt.timedelta(minutes=5)), 10_000, dtype=np.int64)
    store_for(app.state).insert(np.full(len(ts), world.sensor_a), ts, np.linspace(10, 60, len(ts)))
    login(client, "operator")
    row = client.post(f"/alarms/{alarm_a.id}/to-hazard", headers={"HX-Request": "true"})
    assert row.status_code == 200, row.text
    stored = fresh(db, alarm_a)
    hazard = db.get(Hazard, stored.hazard_id)
    assert hazard is not None and hazard.state == HazardState.DRAFT.value and hazard.source_ref == f"alarm:{alarm_a.id}"
    assert f'href="/hazards/{hazard.id}"' in row.text and "to-hazard-form" not in row.text
    events = hazards.timeline(db, actor=world.admin, hazard_id=hazard.id)
    window = next(e.data for e in events if e.kind == "evidence")["window"]  # the chart the detail page draws
    assert window["values"] and all(10 <= v <= 60 for v in window["values"])
    twice = client.post(f"/alarms/{alarm_a.id}/to-hazard")
    assert twice.status_code == 409 and 'data-testid="alarm-error"' in twice.text


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def test_the_detail_page_draws_the_readings_around_the_alarm(client, app, world: World, alarm_a) -> None:  # noqa: ANN001
    login(client, "operator")
    empty = client.get(f"/alarms/{alarm_a.id}").text
    assert 'data-testid="chart-empty"' in empty and 'id="alarm-chart"' not in empty
    assert 'data-testid="event-raised"' in empty and "GT-101 高于高高限 5 秒" in empty and "62.5" in empty

    ts = np.arange(_ms(T0 - dt.timedelta(minutes=10)), _ms(T0 + dt.timedelta(minutes=10)), 5_000, dtype=np.int64)
    store_for(app.state).insert(np.full(len(ts), world.sensor_a), ts, np.full(len(ts), 42.0))
    page = client.get(f"/alarms/{alarm_a.id}").text
    assert 'id="alarm-chart"' in page and 'id="alarm-chart-data"' in page and "chart-empty" not in page
    assert f'"period": [{_ms(T0)},' in page and '"title": "GT-101' in page and "/static/alarms.js" in page
    assert '"HH": 50.0' in page


def test_the_console_and_detail_speak_english_too(client, world: World, alarm_a) -> None:  # noqa: ANN001
    login(client, "operator")
    client.cookies.set("hl_lang", "en")
    page = client.get("/alarms").text
    assert "Alarm console" in page and "Acknowledge" in page and "High-high limit" in page
    assert "Sensor chart" in client.get(f"/alarms/{alarm_a.id}").text
