"""The outbox delivers at least once, retries with back-off, gives up cleanly, respects limits and quiet hours."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import httpx
import pytest
from notify_servers import RobotServer
from sqlalchemy import select
from sqlalchemy.orm import Session
from world import World

from hazardloop.auth.roles import Role
from hazardloop.notify import outbox, service
from hazardloop.notify.channels.base import Transport
from hazardloop.notify.models import ChannelCreate, ChannelKind, OutboxEntry, PolicyCreate

NOW = dt.datetime(2026, 6, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


@pytest.fixture
def transport() -> Iterator[Transport]:
    client = httpx.Client(timeout=5)
    yield Transport(http=client)
    client.close()


def wecom_channel(db: Session, world: World, robots: RobotServer, **policy: object) -> int:
    channel = service.create_channel(db, actor=world.admin, data=ChannelCreate(
        kind=ChannelKind.WECOM, name="罐区群", config={"webhook_url": robots.url("wecom")}))
    values: dict = {"name": "all", "channel_ids": [channel.id], "roles": [Role.SAFETY_OFFICER]} | policy
    service.create_policy(db, actor=world.admin, data=PolicyCreate(**values))
    return channel.id


def event(key: str = "e1", *, urgent: bool = False, area_id: int | None = None) -> outbox.Event:
    return outbox.Event(kind="hazard_reminder", key=key, title="隐患整改提醒", text=f"【整改提醒】{key}",
                        area_id=area_id, urgent=urgent, severity="major" if urgent else "general")


def enqueue(db: Session, *events: outbox.Event, now: dt.datetime = NOW) -> list[OutboxEntry]:
    rows = [row for e in events for row in outbox.route(db, e, now=now)]
    db.commit()
    return rows


def test_a_5xx_is_retried_with_growing_back_off_then_sent(db, world, robots, transport) -> None:  # noqa: ANN001
    wecom_channel(db, world, robots)
    [row] = enqueue(db, event())
    robots.replies.extend([(500, {}), (503, {})])
    rng = random.Random(1)
    first = outbox.dispatch(db, now=NOW, transport=transport, rng=rng)
    db.refresh(row)
    assert first.retried == 1 and row.status == "failed" and row.attempts == 1 and "HTTP 500" in row.last_error
    delay1 = row.next_attempt_at - NOW
    assert dt.timedelta(seconds=15) <= delay1 <= dt.timedelta(seconds=30)
    assert outbox.dispatch(db, now=row.next_attempt_at - dt.timedelta(seconds=1), transport=transport).sent == 0
    later = row.next_attempt_at
    outbox.dispatch(db, now=later, transport=transport, rng=rng)
    db.refresh(row)
    assert row.attempts == 2 and dt.timedelta(seconds=30) <= row.next_attempt_at - later <= dt.timedelta(seconds=60)
    outbox.dispatch(db, now=row.next_attempt_at, transport=transport, rng=rng)
    db.refresh(row)
    assert row.status == "sent" and row.attempts == 3 and len(robots.requests) == 3


def test_a_permanent_error_makes_the_row_dead_at_once(db, world, robots, transport) -> None:  # noqa: ANN001
    wecom_channel(db, world, robots)
    [row] = enqueue(db, event())
    robots.replies.append((200, {"errcode": 93000, "errmsg": "invalid webhook url"}))
    assert outbox.dispatch(db, now=NOW, transport=transport).dead == 1
    db.refresh(row)
    assert row.status == "dead" and row.last_error == "93000 invalid webhook url"


def test_retries_end_dead_after_the_attempt_limit(db, world, robots, transport) -> None:  # noqa: ANN001
    wecom_channel(db, world, robots)
    [row] = enqueue(db, event())
    robots.replies.extend([(500, {})] * 3)
    now = NOW
    for _ in range(3):
        outbox.dispatch(db, now=now, transport=transport, max_attempts=3)
        db.refresh(row)
        now = row.next_attempt_at
    assert row.status == "dead" and "gave up after 3 attempts" in row.last_error


def test_a_crash_between_claim_and_mark_resends_once_after_the_lease(db, world, robots, transport) -> None:  # noqa: ANN001
    wecom_channel(db, world, robots)
    [row] = enqueue(db, event())
    lease = dt.timedelta(minutes=5)
    token, ids = outbox.claim(db, now=NOW, lease=lease)
    assert ids == [row.id]
    # the worker sends, then dies before marking the row
    outbox._attempt(db.get(outbox.Channel, row.channel_id), row, transport, NOW)
    assert outbox.dispatch(db, now=NOW + dt.timedelta(minutes=4), transport=transport).sent == 0
    report = outbox.dispatch(db, now=NOW + lease + dt.timedelta(seconds=1), transport=transport)
    assert report.sent == 1
    assert outbox.dispatch(db, now=NOW + dt.timedelta(hours=1), transport=transport).sent == 0
    assert len(robots.requests) == 2  # at least once: exactly one resend, nothing more
    db.refresh(row)
    assert row.status == "sent" and row.attempts == 2


def test_a_sender_killed_after_claiming_is_replaced_within_a_minute(db, world, robots, transport) -> None:  # noqa: ANN001
    wecom_channel(db, world, robots)
    rows = enqueue(db, *(event(f"e{i}") for i in range(3)))
    token, ids = outbox.claim(db, now=NOW)  # the sender claims its batch with the default lease, then is killed
    assert sorted(ids) == sorted(r.id for r in rows)
    assert outbox.next_due(db) == NOW + outbox.DEFAULT_LEASE  # when the next sender should look again
    assert outbox.dispatch(db, now=NOW + outbox.DEFAULT_LEASE / 2, transport=transport).sent == 0
    report = outbox.dispatch(db, now=NOW + outbox.DEFAULT_LEASE + dt.timedelta(seconds=1), transport=transport)
    assert report.sent == 3
    assert outbox.DEFAULT_LEASE.total_seconds() < 60  # recovery in tens of seconds, not minutes
    assert sorted(r.json()["text"]["content"] for r in robots.requests) == [f"【整改提醒】e{i}" for i in range(3)]


def test_a_live_slow_sender_keeps_its_claim_while_another_sender_polls(db, engine, world, robots) -> None:  # noqa: ANN001
    """Real time, a lease of 0.6 s and a receiver that takes 1 s per message: without the heartbeat the
    second sender would take the rows still waiting in the first one's batch and send them as well."""
    import threading
    import time

    from hazardloop.db import utcnow

    wecom_channel(db, world, robots)
    enqueue(db, *(event(f"e{i}") for i in range(3)), now=utcnow())
    robots.delay_s = 1.0
    lease = dt.timedelta(seconds=0.6)
    slow: list[outbox.DispatchReport] = []

    def first_sender() -> None:
        with Session(engine) as session, httpx.Client(timeout=5) as client:
            slow.append(outbox.dispatch(session, now=utcnow(), transport=Transport(http=client), lease=lease))

    thread = threading.Thread(target=first_sender)
    thread.start()
    while not robots.requests:  # the first sender has claimed its batch and is on the wire with its first row
        time.sleep(0.01)
    stolen = 0
    with Session(engine) as other, httpx.Client(timeout=5) as client:
        while thread.is_alive():  # the second sender polls all the while (each poll sends what it could claim)
            stolen += outbox.dispatch(other, now=utcnow(), transport=Transport(http=client), lease=lease).sent
            thread.join(0.1)
    assert stolen == 0
    assert slow[0].sent == 3 and slow[0].lost_claims == 0
    assert len(robots.requests) == 3


def test_a_sender_that_lost_its_claim_during_a_stall_does_not_send_the_row(db, world, robots, transport) -> None:  # noqa: ANN001
    wecom_channel(db, world, robots)
    [row] = enqueue(db, event())
    token, ids = outbox.claim(db, now=NOW)
    later = NOW + outbox.DEFAULT_LEASE + dt.timedelta(seconds=1)  # the first sender stalled past its lease
    assert outbox.dispatch(db, now=later, transport=transport).sent == 1  # another sender took the row
    report = outbox.deliver(db, token, ids, now=later, transport=transport)  # the first one wakes up
    assert report.lost_claims == 1 and report.sent == 0
    assert len(robots.requests) == 1


def test_two_dispatchers_interleaved_never_send_a_row_twice(db, engine, world, robots, transport) -> None:  # noqa: ANN001
    wecom_channel(db, world, robots)
    enqueue(db, *(event(f"e{i}") for i in range(4)))
    other = Session(engine)
    try:
        seen_by_a = outbox.due_ids(db, now=NOW)
        db.rollback()  # SQLite: end the read; PostgreSQL would hold these rows locked instead
        seen_by_b = outbox.due_ids(other, now=NOW)
        assert seen_by_a == seen_by_b  # on SQLite both saw every row
        other.rollback()
        token_a, won_a = outbox.take(db, seen_by_a, now=NOW)
        token_b, won_b = outbox.take(other, seen_by_b, now=NOW)
        assert len(won_a) == 4 and won_b == []
        outbox.deliver(db, token_a, won_a, now=NOW, transport=transport)
        outbox.deliver(other, token_b, won_b, now=NOW, transport=transport)
    finally:
        other.close()
    assert len(robots.requests) == 4


def test_the_21st_wecom_message_in_a_minute_waits_for_a_slot(db, world, robots, transport) -> None:  # noqa: ANN001
    wecom_channel(db, world, robots)
    enqueue(db, *(event(f"e{i:02}") for i in range(21)))
    report = outbox.dispatch(db, now=NOW, transport=transport)
    assert report.sent == 20 and report.deferred == 1 and len(robots.requests) == 20
    waiting = db.scalar(select(OutboxEntry).where(OutboxEntry.status == "pending"))
    assert waiting.attempts == 0 and waiting.next_attempt_at > NOW + dt.timedelta(seconds=59)
    assert outbox.dispatch(db, now=waiting.next_attempt_at, transport=transport).sent == 1


def test_quiet_hours_hold_a_general_reminder_but_not_an_urgent_one(db, world, robots, transport) -> None:  # noqa: ANN001
    wecom_channel(db, world, robots, quiet_start="22:00", quiet_end="07:00", timezone="Asia/Shanghai")
    night = dt.datetime(2026, 6, 1, 15, 30, tzinfo=dt.UTC)  # 23:30 in Shanghai
    general, urgent = enqueue(db, event("general"), event("major", urgent=True), now=night)
    assert general.next_attempt_at == dt.datetime(2026, 6, 1, 23, 0, tzinfo=dt.UTC)  # 07:00 Shanghai
    assert outbox.dispatch(db, now=night, transport=transport).sent == 1
    assert robots.requests[0].json()["text"]["content"] == "【整改提醒】major"
    assert outbox.dispatch(db, now=general.next_attempt_at, transport=transport).sent == 1


def test_recipients_come_from_roles_and_area_scopes(db, world, robots) -> None:  # noqa: ANN001
    from hazardloop.auth import service as auth_service
    from hazardloop.auth.models import UserUpdate

    officer = world.users[Role.SAFETY_OFFICER]
    auth_service.update_user(db, actor=world.admin, user_id=officer.id, data=UserUpdate(mobile="13800002222"))
    wecom_channel(db, world, robots, roles=[Role.SAFETY_OFFICER, Role.SAFETY_MANAGER])
    [in_a] = enqueue(db, event("a", area_id=world.area_a))
    [in_b] = enqueue(db, event("b", area_id=world.area_b))
    assert {r["user_id"] for r in in_a.recipients} == {officer.id, world.users[Role.SAFETY_MANAGER].id}
    assert in_b.recipients == []  # nobody with those roles covers area B
    assert {"mobile": "13800002222"}.items() <= next(r for r in in_a.recipients if r["user_id"] == officer.id).items()


def test_an_event_no_policy_routes_is_visible_as_dead(db, world, robots) -> None:  # noqa: ANN001
    wecom_channel(db, world, robots, event_kinds=["alarm"])
    [row] = enqueue(db, event())
    assert row.status == "dead" and row.channel_id is None and "no enabled notification policy" in row.last_error


def test_routing_the_same_event_twice_adds_nothing(db, world, robots) -> None:  # noqa: ANN001
    wecom_channel(db, world, robots)
    assert len(enqueue(db, event())) == 1
    assert enqueue(db, event()) == []


def test_two_dispatchers_running_at_once_send_each_row_once(db, engine, world, robots) -> None:  # noqa: ANN001
    """Real threads; on PostgreSQL the claim goes through SELECT … FOR UPDATE SKIP LOCKED."""
    import threading

    wecom_channel(db, world, robots)
    enqueue(db, *(event(f"e{i}") for i in range(8)))
    robots.delay_s = 0.02
    reports: list[outbox.DispatchReport] = []

    def work() -> None:
        with Session(engine) as session, httpx.Client(timeout=5) as client:
            reports.append(outbox.dispatch(session, now=NOW, transport=Transport(http=client), limit=3))
            reports.append(outbox.dispatch(session, now=NOW, transport=Transport(http=client), limit=3))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.sent for r in reports) == 8
    assert sorted(r.json()["text"]["content"] for r in robots.requests) == sorted(f"【整改提醒】e{i}" for i in range(8))
