"""From the hazard register's queue (PendingNotification) into the outbox, exactly once.

hazards/deadlines.py decides *that* someone must be reminded or escalated to; this decides *how*.
Each queued row is marked sent_at in the same transaction that adds its outbox rows, with a
compare-and-set on sent_at, so a crash leaves it either untouched or fully handed over, and two
bridges racing hand it over once. Escalation rows for the same hazard, deadline and step (one per
person) become one message per channel that mentions all of them, not one message per person.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hazardloop.alarms import service as alarms
from hazardloop.auth.service import users_for
from hazardloop.hazards.models import Hazard, PendingNotification
from hazardloop.notify import quiet
from hazardloop.notify.models import EventKind, OutboxEntry
from hazardloop.notify.outbox import Event, route

TITLES = {"reminder": "隐患整改提醒", "escalation": "隐患超期督办"}


def _batch_key(note: PendingNotification) -> str:
    """escalation:<hazard>:<deadline>:<step>:<person> → without the person; reminders are already one each."""
    return note.dedup_key.rsplit(":", 1)[0] if note.kind == "escalation" else note.dedup_key


def pull_hazard_notifications(db: Session, *, now: dt.datetime, limit: int = 500) -> list[OutboxEntry]:
    """Move unsent PendingNotification rows into the outbox and commit; returns the outbox rows added."""
    query = select(PendingNotification).where(PendingNotification.sent_at.is_(None)).order_by(PendingNotification.id)
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    notes = list(db.scalars(query.limit(limit)))
    batches: dict[str, list[PendingNotification]] = defaultdict(list)
    for note in notes:
        taken = db.execute(
            update(PendingNotification)
            .where(PendingNotification.id == note.id, PendingNotification.sent_at.is_(None))
            .values(sent_at=now)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:
            batches[_batch_key(note)].append(note)
    created: list[OutboxEntry] = []
    for key, batch in batches.items():
        first = batch[0]
        hazard = db.get(Hazard, first.hazard_id)
        if hazard is None:
            continue  # the hazard was deleted; its notifications go with it
        escalation = first.kind == "escalation"
        event = Event(
            kind=(EventKind.HAZARD_ESCALATION if escalation else EventKind.HAZARD_REMINDER).value,
            key=f"hazard:{key}",
            title=TITLES.get(first.kind, "隐患通知") + (f"(第{first.step}级)" if escalation else ""),
            text=first.message_zh,
            area_id=hazard.area_id,
            severity="major" if hazard.is_major else "general",
            urgent=quiet.is_urgent(flagged=any(n.urgent for n in batch) or hazard.is_major,
                                   escalation_step=first.step if escalation else 0),
            user_ids=tuple(n.recipient_user_id for n in batch if n.recipient_user_id is not None),
            group_key=f"hazard:{hazard.id}:{first.kind}",
        )
        created += route(db, event, now=now)
    db.commit()
    return created


def pull_alarm_notifications(db: Session, *, now: dt.datetime, limit: int = 500) -> list[OutboxEntry]:
    """Move the alarm domain's pending messages (raised, escalated) into the outbox and commit.

    The alarm names roles in its area; they are resolved to people here. A CRITICAL alarm (HH/LL)
    is urgent: quiet hours never hold it back. The outbox keys derive from (alarm, kind, step), so
    two bridges racing add each message once (the loser's transaction is rolled back).
    """
    notes = alarms.pending_alarm_notifications(db, limit=limit)
    created: list[OutboxEntry] = []
    for note in notes:
        people = users_for(db, roles=list(note.roles), area_id=note.area_id) if note.roles else []
        event = Event(
            kind=EventKind.ALARM.value,
            key=f"alarm:{note.alarm_id}:{note.kind}:{note.step}",
            title=note.title,
            text=note.body or note.title,
            area_id=note.area_id,
            severity=note.severity,
            urgent=quiet.is_urgent(flagged=note.severity == "CRITICAL", escalation_step=note.step),
            user_ids=tuple(p.id for p in people),
            group_key=f"alarm:{note.alarm_id}",
        )
        created += route(db, event, now=now)
    alarms.mark_enqueued(db, [n.id for n in notes], now=now, commit=False)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        return []
    return created
