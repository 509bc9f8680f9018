"""Hazard reminders reach the outbox exactly once; the admin API masks secrets and checks who asks."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from notify_servers import WEBHOOK_SECRET, RobotServer
from sqlalchemy import select
from world import World

from hazardloop.auth.roles import Role
from hazardloop.hazards.models import HazardState, PendingNotification
from hazardloop.notify import service
from hazardloop.notify.bridge import pull_hazard_notifications
from hazardloop.notify.models import ChannelCreate, ChannelKind, OutboxEntry, PolicyCreate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hazards"))
from helpers import make_hazard  # noqa: E402  (tests/hazards builds hazards in any state)

NOW = dt.datetime(2026, 6, 1, 15, 30, tzinfo=dt.UTC)  # 23:30 in Shanghai: inside the quiet hours below


def _hazard(db, world: World, *, major: bool) -> int:  # noqa: ANN001
    return make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_a, major=major,
                       responsible_id=world.users[Role.RECTIFIER].id).id


def _pending(db, hazard_id: int, key: str, *, kind: str = "reminder", step: int = 0, user_id: int | None = None,  # noqa: ANN001
             urgent: bool = False) -> None:
    db.add(PendingNotification(dedup_key=key, created_at=NOW, kind=kind, step=step, hazard_id=hazard_id,
                               recipient_user_id=user_id, message_zh=f"【整改提醒】{key}", message_en=key,
                               urgent=urgent))
    db.commit()


@pytest.fixture
def routed(db, world: World, robots: RobotServer) -> int:  # noqa: ANN001
    channel = service.create_channel(db, actor=world.admin, data=ChannelCreate(
        kind=ChannelKind.WECOM, name="群", config={"webhook_url": robots.url("wecom")}))
    service.create_policy(db, actor=world.admin, data=PolicyCreate(
        name="hazards", channel_ids=[channel.id], event_kinds=["hazard_reminder", "hazard_escalation"],
        quiet_start="22:00", quiet_end="07:00"))
    return channel.id


def test_pending_hazard_notifications_enter_the_outbox_exactly_once(db, world, routed) -> None:  # noqa: ANN001
    hazard_id = _hazard(db, world, major=False)
    rectifier = world.users[Role.RECTIFIER]
    _pending(db, hazard_id, f"reminder:{hazard_id}:d:3", user_id=rectifier.id)
    [row] = pull_hazard_notifications(db, now=NOW)
    assert row.event_kind == "hazard_reminder" and row.recipients[0]["user_id"] == rectifier.id
    assert row.next_attempt_at == dt.datetime(2026, 6, 1, 23, 0, tzinfo=dt.UTC)  # a general reminder waits
    assert db.scalar(select(PendingNotification.sent_at)) == NOW
    assert pull_hazard_notifications(db, now=NOW + dt.timedelta(minutes=1)) == []
    assert len(db.scalars(select(OutboxEntry)).all()) == 1


def test_escalations_to_several_people_become_one_urgent_message(db, world, routed) -> None:  # noqa: ANN001
    hazard_id = _hazard(db, world, major=False)
    officer, manager = world.users[Role.SAFETY_OFFICER], world.users[Role.SAFETY_MANAGER]
    for person in (officer, manager):
        _pending(db, hazard_id, f"escalation:{hazard_id}:d:3:{person.id}", kind="escalation", step=3,
                 user_id=person.id)
    [row] = pull_hazard_notifications(db, now=NOW)
    assert row.urgent and row.next_attempt_at == NOW  # step 3 is not held by quiet hours
    assert {r["user_id"] for r in row.recipients} == {officer.id, manager.id}
    assert row.title == "隐患超期督办(第3级)"


def test_a_major_hazard_reminder_is_not_held_at_night(db, world, routed) -> None:  # noqa: ANN001
    hazard_id = _hazard(db, world, major=True)
    _pending(db, hazard_id, f"reminder:{hazard_id}:d:1", urgent=True)
    [row] = pull_hazard_notifications(db, now=NOW)
    assert row.urgent and row.next_attempt_at == NOW and row.severity == "major"


# ---------------------------------------------------------------- admin API


def _webhook(client, world: World, robots: RobotServer, **config: object):  # noqa: ANN001, ANN202
    body = {"kind": "webhook", "name": "MES", "config": {"webhook_url": robots.url("webhook"),
                                                          "secret": WEBHOOK_SECRET} | config}
    return client.post("/api/v1/notify/channels", json=body, headers=world.auth(Role.ADMIN))


def test_the_api_never_returns_secrets(client, world, robots) -> None:  # noqa: ANN001
    created = _webhook(client, world, robots)
    assert created.status_code == 201 and created.json()["config"]["secret"] == "***"
    ding = client.post("/api/v1/notify/channels", headers=world.auth(Role.ADMIN), json={
        "kind": "dingtalk", "name": "钉钉", "config": {"webhook_url": robots.url("dingtalk"), "secret": "SECabc"}})
    assert ding.json()["config"]["webhook_url"].endswith("access_token=***")
    listed = client.get("/api/v1/notify/channels", headers=world.auth(Role.SAFETY_MANAGER)).text
    assert WEBHOOK_SECRET not in listed and "SECabc" not in listed and "ding-token-1" not in listed


def test_sending_a_masked_secret_back_keeps_the_stored_one(client, world, robots) -> None:  # noqa: ANN001
    channel = _webhook(client, world, robots).json()
    r = client.patch(f"/api/v1/notify/channels/{channel['id']}", headers=world.auth(Role.ADMIN),
                     json={"config": channel["config"] | {"secret": "***"}})
    assert r.status_code == 200
    test = client.post(f"/api/v1/notify/channels/{channel['id']}/test", headers=world.auth(Role.ADMIN))
    assert test.json()["status"] == "sent"  # the server verified the signature with the stored secret


def test_the_test_button_reports_the_channel_error(client, world, robots) -> None:  # noqa: ANN001
    channel = _webhook(client, world, robots).json()
    robots.replies.append((200, {}))
    ok = client.post(f"/api/v1/notify/channels/{channel['id']}/test", headers=world.auth(Role.ADMIN)).json()
    assert ok["status"] == "sent" and robots.requests[0].json()["title"] == "HazardLoop 测试消息"
    wecom = client.post("/api/v1/notify/channels", headers=world.auth(Role.ADMIN), json={
        "kind": "wecom", "name": "bad", "config": {"webhook_url": robots.url("wecom").replace("key-1", "gone")}})
    bad = client.post(f"/api/v1/notify/channels/{wecom.json()['id']}/test", headers=world.auth(Role.ADMIN)).json()
    assert bad["status"] == "dead" and bad["detail"].startswith("93000 invalid webhook url")
    outbox = client.get("/api/v1/notify/outbox?status=dead", headers=world.auth(Role.ADMIN)).json()
    assert [e["id"] for e in outbox] == [bad["outbox_id"]]


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "wecom", "name": "x", "config": {"webhook_url": "not a url"}}, "config.webhook_url"),
    ({"kind": "wecom", "name": "x", "config": {"webhook_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}},
     "config.webhook_url"),
    ({"kind": "webhook", "name": "x", "config": {"webhook_url": "https://mes.local/hook"}}, "config.secret"),
    ({"kind": "dingtalk", "name": "x", "config": {"webhook_url": "https://o/robot/send?access_token=t",
                                                   "secret": "nope"}}, "config.secret"),
    ({"kind": "pager", "name": "x", "config": {}}, "kind"),
])
def test_bad_channel_input_is_a_422_naming_the_field(client, world, body, field) -> None:  # noqa: ANN001
    r = client.post("/api/v1/notify/channels", json=body, headers=world.auth(Role.ADMIN))
    assert r.status_code == 422
    assert field in [".".join(str(p) for p in e["loc"][1:]) for e in r.json()["detail"]]


def test_policy_with_unknown_timezone_or_channel_is_a_422(client, world, robots) -> None:  # noqa: ANN001
    channel = _webhook(client, world, robots).json()
    base = {"name": "p", "channel_ids": [channel["id"]]}
    r = client.post("/api/v1/notify/policies", json=base | {"timezone": "Mars/Olympus"},
                    headers=world.auth(Role.ADMIN))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "timezone"]
    r = client.post("/api/v1/notify/policies", json=base | {"channel_ids": [999]}, headers=world.auth(Role.ADMIN))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "channel_ids"]


def test_only_admins_change_channels_and_managers_only_read(client, world, robots) -> None:  # noqa: ANN001
    body = {"kind": "webhook", "name": "x", "config": {"webhook_url": robots.url("webhook"), "secret": "s" * 16}}
    assert client.post("/api/v1/notify/channels", json=body, headers=world.auth(Role.SAFETY_MANAGER)).status_code == 403
    assert client.get("/api/v1/notify/outbox", headers=world.auth(Role.SAFETY_MANAGER)).status_code == 200
    assert client.get("/api/v1/notify/channels", headers=world.auth(Role.RECTIFIER)).status_code == 403
    assert client.get("/api/v1/notify/policies").status_code == 401
