"""Reminders before a rectification deadline and the escalation ladder after it (domain.md §2.4).

`run` is a pure function of the database and the clock it is given: the scheduler passes the
wall clock, tests pass any time they like. Every notification carries a dedup key made of the
hazard, its current deadline and the step, so running twice, catching up after a restart, or
two processes racing never notify anyone twice; an approved extension moves the deadline and
so starts a fresh ladder.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hazardloop.auth import authz
from hazardloop.auth.models import User
from hazardloop.auth.roles import Role
from hazardloop.hazards.models import DEADLINE_STATES, Hazard, PendingNotification
from hazardloop.hazards.reference import policy
from hazardloop.hazards.service import add_event
from hazardloop.web.i18n import translate


@dataclass(frozen=True)
class Planned:
    key: str
    kind: str
    step: int
    hazard: Hazard
    recipient: User | None
    message_zh: str
    message_en: str


def _recipients(db: Session, hazard: Hazard, notify: str) -> list[User]:
    if notify == "responsible_person":
        person = db.get(User, hazard.responsible_person_id) if hazard.responsible_person_id else None
        return [person] if person is not None and person.is_active else []
    if notify == "department_head":
        if not hazard.responsible_department:
            return []
        query = select(User).where(
            User.is_department_head.is_(True),
            User.is_active.is_(True),
            User.department == hazard.responsible_department,
        )
    elif notify.startswith("role:"):
        query = select(User).where(User.role == Role(notify[5:]).value, User.is_active.is_(True))
    else:
        raise ValueError(f"policy.toml: unknown escalation target '{notify}'")
    return [u for u in db.scalars(query.order_by(User.id)) if authz.can_see_area(u, hazard.area_id)]


def _messages(key: str, **values: object) -> tuple[str, str]:
    return translate(key, "zh-CN", **values), translate(key, "en", **values)


def _reminders(hazard: Hazard, now: dt.datetime, db: Session) -> list[Planned]:
    planned = []
    for days in sorted(policy().reminder_days_before):  # nearest first
        if hazard.deadline - dt.timedelta(days=days) <= now < hazard.deadline:
            zh, en = _messages("notify.reminder", number=hazard.number, days=days,
                               deadline=f"{hazard.deadline:%Y-%m-%d %H:%M}", description=hazard.description[:60])
            for person in _recipients(db, hazard, "responsible_person"):
                key = f"reminder:{hazard.id}:{hazard.deadline.isoformat()}:{days}"
                planned.append(Planned(key, "reminder", 0, hazard, person, zh, en))
            break  # only the nearest reminder that applies; the earlier one was sent on its own day
    return planned


def _escalations(hazard: Hazard, now: dt.datetime, db: Session) -> list[Planned]:
    if now <= hazard.deadline:
        return []
    days_over = (now - hazard.deadline).days
    planned = []
    for step in policy().escalation:
        if days_over < step.days_overdue:
            continue
        zh, en = (
            translate("notify.escalation", lang, step=step.step, number=hazard.number, days=days_over,
                      major=translate("notify.major", lang) if hazard.is_major else "",
                      department=hazard.responsible_department or "—", description=hazard.description[:60])
            for lang in ("zh-CN", "en")
        )
        for person in _recipients(db, hazard, step.notify):
            key = f"escalation:{hazard.id}:{hazard.deadline.isoformat()}:{step.step}:{person.id}"
            planned.append(Planned(key, "escalation", step.step, hazard, person, zh, en))
    return planned


def plan(db: Session, now: dt.datetime) -> list[Planned]:
    """Everything due at `now`, already-sent ones included (run() filters those out)."""
    hazards = db.scalars(
        select(Hazard).where(Hazard.state.in_([s.value for s in DEADLINE_STATES]), Hazard.deadline.is_not(None))
    )
    planned: list[Planned] = []
    for hazard in hazards:
        planned += _reminders(hazard, now, db) + _escalations(hazard, now, db)
    return planned


def run(db: Session, *, now: dt.datetime) -> list[PendingNotification]:
    """Queue the reminders and escalations due at `now` that were not queued before."""
    planned = plan(db, now)
    if not planned:
        return []
    keys = [p.key for p in planned]
    existing = set()
    for start in range(0, len(keys), 500):
        existing |= set(
            db.scalars(
                select(PendingNotification.dedup_key).where(
                    PendingNotification.dedup_key.in_(keys[start : start + 500])
                )
            )
        )
    created = []
    for item in planned:
        if item.key in existing:
            continue
        existing.add(item.key)
        notification = PendingNotification(
            dedup_key=item.key,
            created_at=now,
            kind=item.kind,
            step=item.step,
            hazard_id=item.hazard.id,
            recipient_user_id=item.recipient.id if item.recipient else None,
            message_zh=item.message_zh,
            message_en=item.message_en,
            urgent=item.hazard.is_major,
        )
        db.add(notification)
        add_event(
            db,
            item.hazard,
            actor=None,
            kind=item.kind,
            at=now,
            note=f"{item.kind} → {item.recipient.username if item.recipient else '-'}",
            data={"step": item.step},
        )
        created.append(notification)
    try:
        db.commit()
    except IntegrityError:  # another process queued the same keys first; theirs stand
        db.rollback()
        return []
    return created
