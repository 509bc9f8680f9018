"""The console API: who may judge, shelve and escalate an alarm into a hazard draft, and what they see."""

from __future__ import annotations

import datetime as dt

import pytest
from alarm_clock import T0

from hazardloop.alarms import service
from hazardloop.alarms.models import Verdict
from hazardloop.auth.roles import Role
from hazardloop.hazards import service as hazards
from hazardloop.hazards.models import HazardState


@pytest.fixture
def alarm_a(db, gt101):  # noqa: ANN001, ANN201
    alarm, _ = service.raise_or_update(db, sensor=gt101, alarm_type="limit_hh", at=T0, value=55.0,
                                       reason="GT-101 above HH for 5 s", peak=62.5)
    return alarm


@pytest.fixture
def alarm_b(db, gt201):  # noqa: ANN001, ANN201
    alarm, _ = service.raise_or_update(db, sensor=gt201, alarm_type="limit_h", at=T0, value=25.0,
                                       reason="GT-201 above H")
    return alarm


def test_operator_marks_an_active_alarm_false_and_it_is_recorded(client, world, alarm_a):
    r = client.post(f"/api/v1/alarms/{alarm_a.id}/verdict", json={"verdict": "false_alarm", "comment": "标定气"},
                    headers=world.auth(Role.OPERATOR))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "false_alarm" and body["active"] and body["acknowledged"]
    detail = client.get(f"/api/v1/alarms/{alarm_a.id}", headers=world.auth(Role.VIEWER)).json()
    assert [e["kind"] for e in detail["events"]] == ["raised", "acknowledged", "verdict"]
    assert detail["events"][-1]["note"] == "标定气"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.RECTIFIER, Role.ADMIN])
def test_roles_without_alarm_duty_cannot_judge(client, world, alarm_a, role):
    r = client.post(f"/api/v1/alarms/{alarm_a.id}/verdict", json={"verdict": "true_alarm"}, headers=world.auth(role))
    assert r.status_code == 403 and "alarm.act" in r.json()["detail"]


def test_an_alarm_in_another_area_is_not_found(client, world, alarm_b):
    for path, body in (("verdict", {"verdict": "true_alarm"}), ("acknowledge", {})):
        r = client.post(f"/api/v1/alarms/{alarm_b.id}/{path}", json=body, headers=world.auth(Role.OPERATOR))
        assert r.status_code == 404
    assert client.get(f"/api/v1/alarms/{alarm_b.id}", headers=world.auth(Role.OPERATOR)).status_code == 404


def test_the_list_filters_and_keeps_to_the_users_areas(client, world, alarm_a, alarm_b):
    ids = [a["id"] for a in client.get("/api/v1/alarms", headers=world.auth(Role.OPERATOR)).json()["items"]]
    assert ids == [alarm_a.id]
    every = client.get("/api/v1/alarms", params={"severity": "MAJOR"}, headers=world.auth(Role.ADMIN)).json()
    assert [a["id"] for a in every["items"]] == [alarm_b.id] and every["total"] == 1
    unacked = client.get("/api/v1/alarms", params={"acknowledged": "false", "active": "true",
                                                   "area_id": world.area_a}, headers=world.auth(Role.ADMIN)).json()
    assert [a["id"] for a in unacked["items"]] == [alarm_a.id]
    assert unacked["items"][0]["state"] == "ACTIVE_UNACK" and unacked["items"][0]["severity"] == "CRITICAL"


def _listed(client, world, **params: str) -> set[int]:  # noqa: ANN001
    r = client.get("/api/v1/alarms", params=params, headers=world.auth(Role.ADMIN))
    assert r.status_code == 200, r.text
    assert r.json()["total"] == len(r.json()["items"])
    return {a["id"] for a in r.json()["items"]}


def test_the_list_takes_the_consoles_verdict_family_and_raise_window(client, db, world, gt101, alarm_a, alarm_b):
    stuck, _ = service.raise_or_update(db, sensor=gt101, alarm_type="sensor_fault:stuck",
                                       at=T0 + dt.timedelta(hours=2), value=4.0, reason="GT-101 stuck")
    service.give_verdict(db, actor=world.users[Role.OPERATOR], alarm_id=alarm_a.id, verdict=Verdict.FALSE_ALARM)
    assert _listed(client, world, verdict="false_alarm") == {alarm_a.id}
    assert _listed(client, world, verdict="none") == {alarm_b.id, stuck.id}
    assert _listed(client, world, type_family="sensor_fault") == {stuck.id}
    assert _listed(client, world, type_family="limit", verdict="none") == {alarm_b.id}
    beijing_hour = {"raised_from": "2026-06-01T16:00:00+08:00", "raised_to": "2026-06-01T17:00:00+08:00"}
    assert _listed(client, world, **beijing_hour) == {alarm_a.id, alarm_b.id}  # T0 is 16:00 in Beijing
    assert _listed(client, world, raised_to=T0.isoformat()) == set()  # the end is exclusive
    assert _listed(client, world, raised_from="2026-06-01T09:00:00Z") == {stuck.id}


@pytest.mark.parametrize(("name", "value"), [
    ("verdict", "false"), ("type_family", "silent"), ("raised_from", "2026-06-01T08:00:00"), ("raised_to", "today"),
])
def test_an_unreadable_list_filter_is_a_422_naming_it(client, world, name, value):
    r = client.get("/api/v1/alarms", params={name: value}, headers=world.auth(Role.ADMIN))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", name]


def test_the_new_list_filters_are_documented_in_the_api(client):
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/alarms"]["get"]
    parameters = {p["name"] for p in operation["parameters"]}
    assert {"verdict", "type_family", "raised_from", "raised_to"} <= parameters
    assert all(name in operation["description"] for name in ("verdict", "type_family", "raised_from", "raised_to"))


def test_only_managers_and_operators_shelve(client, world, alarm_a):
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    body = {"until": until, "reason": "检修作业票 2026-118"}
    refused = client.post(f"/api/v1/alarms/{alarm_a.id}/shelve", json=body, headers=world.auth(Role.SAFETY_OFFICER))
    assert refused.status_code == 403
    r = client.post(f"/api/v1/alarms/{alarm_a.id}/shelve", json=body, headers=world.auth(Role.OPERATOR))
    assert r.status_code == 200 and r.json()["shelve_reason"] == "检修作业票 2026-118"
    shelved = client.get("/api/v1/alarms", params={"shelved": "true"}, headers=world.auth(Role.OPERATOR)).json()
    assert shelved["total"] == 1
    r = client.post(f"/api/v1/alarms/{alarm_a.id}/unshelve", headers=world.auth(Role.OPERATOR))
    assert r.status_code == 200
    assert client.post(f"/api/v1/alarms/{alarm_a.id}/unshelve", headers=world.auth(Role.OPERATOR)).status_code == 409


def test_an_alarm_becomes_a_linked_hazard_draft_with_its_chart(client, db, world, alarm_a):
    stamps = [(T0 + dt.timedelta(seconds=s)).isoformat() for s in range(-2, 3)]
    window = {"timestamps": stamps, "values": [18.0, 35.0, 55.0, 62.5, 40.0]}
    r = client.post(f"/api/v1/alarms/{alarm_a.id}/to-hazard", json=window, headers=world.auth(Role.OPERATOR))
    assert r.status_code == 201, r.text
    hazard_id = r.json()["hazard_id"]
    assert r.json()["alarm"]["hazard_id"] == hazard_id
    hazard = hazards.get(db, actor=world.admin, hazard_id=hazard_id)
    assert hazard.state == HazardState.DRAFT.value and hazard.source_ref == f"alarm:{alarm_a.id}"
    assert hazard.source == "sensor_alarm" and "GT-101" in hazard.description
    events = hazards.timeline(db, actor=world.admin, hazard_id=hazard_id)
    evidence = next(e.data for e in events if e.kind == "evidence")
    assert evidence["tag"] == "GT-101" and evidence["unit"] == "%LEL" and evidence["peak"] == 62.5
    assert evidence["limits"]["H"] == 20 and evidence["limits"]["HH"] == 50
    assert evidence["window"]["values"] == window["values"] and len(evidence["window"]["timestamps"]) == 5
    again = client.post(f"/api/v1/alarms/{alarm_a.id}/to-hazard", json=window, headers=world.auth(Role.OPERATOR))
    assert again.status_code == 409


def test_a_chart_with_unequal_lengths_is_refused(client, world, alarm_a):
    window = {"timestamps": [T0.isoformat()], "values": [1.0, 2.0]}
    r = client.post(f"/api/v1/alarms/{alarm_a.id}/to-hazard", json=window, headers=world.auth(Role.OPERATOR))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "values"]


def test_viewer_cannot_make_a_hazard_from_an_alarm(client, world, alarm_a):
    r = client.post(f"/api/v1/alarms/{alarm_a.id}/to-hazard", headers=world.auth(Role.VIEWER))
    assert r.status_code == 403
