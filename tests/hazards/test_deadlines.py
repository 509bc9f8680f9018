"""Reminders and the escalation ladder, run against a clock the test controls."""

from __future__ import annotations

import datetime as dt

from helpers import NOW, make_hazard
from sqlalchemy import select
from world import World

from hazardloop.auth import service as auth_service
from hazardloop.auth.models import UserCreate
from hazardloop.auth.roles import Role
from hazardloop.hazards import deadlines, service
from hazardloop.hazards.models import HazardState, PendingNotification, TransitionRequest

DAY = dt.timedelta(days=1)


def _notes(db) -> list[PendingNotification]:  # noqa: ANN001
    return list(db.scalars(select(PendingNotification).order_by(PendingNotification.id)))


def _setup(db, world: World, *, major: bool = False):  # noqa: ANN001, ANN202
    head = auth_service.create_user(db, actor=world.admin, data=UserCreate(
        username="head", display_name="车间主任", role=Role.SAFETY_OFFICER, password="long-enough-1",
        department="维修车间", is_department_head=True, area_ids=[world.area_a]))
    hazard = make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_a,
                         responsible_id=world.users[Role.RECTIFIER].id, deadline=NOW + 5 * DAY, major=major)
    return hazard, head


def test_nothing_is_due_long_before_the_deadline(db, world: World) -> None:  # noqa: ANN001
    _setup(db, world)
    assert deadlines.run(db, now=NOW) == []


def test_reminder_before_the_deadline_goes_to_the_responsible_person_once(db, world: World) -> None:  # noqa: ANN001
    hazard, _ = _setup(db, world)
    first = deadlines.run(db, now=hazard.deadline - 2 * DAY)
    assert [(n.kind, n.recipient_user_id) for n in first] == [("reminder", world.users[Role.RECTIFIER].id)]
    assert "即将" in first[0].message_zh or "到期" in first[0].message_zh
    assert deadlines.run(db, now=hazard.deadline - 2 * DAY + dt.timedelta(hours=3)) == []
    second = deadlines.run(db, now=hazard.deadline - dt.timedelta(hours=12))
    assert len(second) == 1 and second[0].dedup_key.endswith(":1")


def test_escalation_climbs_the_ladder_day_by_day(db, world: World) -> None:  # noqa: ANN001
    hazard, head = _setup(db, world)
    due = hazard.deadline
    steps = {}
    for days in (0.5, 1.5, 3.5, 7.5):
        created = deadlines.run(db, now=due + dt.timedelta(days=days))
        steps[days] = sorted({(n.step, n.recipient_user_id) for n in created if n.kind == "escalation"})
    rectifier, officer, manager = (world.users[r].id for r in (Role.RECTIFIER, Role.SAFETY_OFFICER,
                                                                Role.SAFETY_MANAGER))
    assert steps[0.5] == [(1, rectifier)]
    assert steps[1.5] == [(2, head.id)]
    assert steps[3.5] == sorted([(3, officer), (3, head.id)])  # the head is a safety officer of this area too
    assert steps[7.5] == [(4, manager)]
    assert service.get(db, actor=world.admin, hazard_id=hazard.id).is_overdue(due + DAY)


def test_restart_and_catch_up_are_idempotent(db, world: World) -> None:  # noqa: ANN001
    hazard, _ = _setup(db, world)
    late = hazard.deadline + 10 * DAY
    first = deadlines.run(db, now=late)
    assert {n.step for n in first} == {1, 2, 3, 4}
    assert deadlines.run(db, now=late) == []
    assert deadlines.run(db, now=late + dt.timedelta(minutes=10)) == []
    assert len(_notes(db)) == len(first)


def test_major_hazard_notifications_are_urgent(db, world: World) -> None:  # noqa: ANN001
    hazard, _ = _setup(db, world, major=True)
    created = deadlines.run(db, now=hazard.deadline + DAY)
    assert created and all(n.urgent for n in created)
    assert "重大" in created[0].message_zh and "MAJOR" in created[0].message_en


def test_approved_extension_restarts_the_ladder(db, world: World) -> None:  # noqa: ANN001
    hazard, _ = _setup(db, world)
    rectifier, officer = world.users[Role.RECTIFIER], world.users[Role.SAFETY_OFFICER]
    first_due = hazard.deadline
    deadlines.run(db, now=first_due + DAY)
    service.transition(db, actor=rectifier, hazard_id=hazard.id, now=first_due + DAY, request=TransitionRequest(
        to=HazardState.EXTENSION_REQUESTED, deadline=first_due + 20 * DAY, note="等备件", interim_measures="隔离"))
    service.transition(db, actor=officer, hazard_id=hazard.id, now=first_due + DAY,
                       request=TransitionRequest(to=HazardState.RECTIFYING, approved=True, note="同意"))
    assert deadlines.run(db, now=first_due + 2 * DAY) == []  # not overdue any more
    late = deadlines.run(db, now=first_due + 20.5 * DAY)
    assert {n.step for n in late if n.kind == "escalation"} == {1}  # a fresh ladder for the new deadline


def test_closed_hazards_are_never_chased(db, world: World) -> None:  # noqa: ANN001
    hazard, _ = _setup(db, world)
    hazard.state = HazardState.CLOSED.value
    db.commit()
    assert deadlines.run(db, now=hazard.deadline + 30 * DAY) == []


def test_timeline_records_each_notification(db, world: World) -> None:  # noqa: ANN001
    hazard, _ = _setup(db, world)
    deadlines.run(db, now=hazard.deadline + DAY)
    events = service.timeline(db, actor=world.admin, hazard_id=hazard.id)
    assert any(e.kind == "escalation" for e in events)


def test_scheduler_job_runs_against_the_database(db, world: World, engine) -> None:  # noqa: ANN001
    from hazardloop.db import make_session_factory
    from hazardloop.hazards.flows import check_deadlines

    hazard, _ = _setup(db, world)
    hazard.deadline = dt.datetime.now(dt.UTC) - 2 * DAY
    db.commit()
    assert check_deadlines(make_session_factory(engine)) >= 2
    assert check_deadlines(make_session_factory(engine)) == 0
