"""Append-only audit log, chained by SHA-256.

Each event's hash covers its own content and the previous event's hash, and the chain's head
is kept in a separate row. Editing any row breaks its hash, deleting a row breaks the next
link (or the head, for the last one), so `hazardloop audit verify` finds both.
Events are written in the caller's transaction: the change and its record commit together.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from hazardloop.auth import authz
from hazardloop.auth.models import AuditEvent, AuditHead, User
from hazardloop.db import utcnow

GENESIS_HASH = "0" * 64
SYSTEM_ACTOR = "system"
_SECRET_FIELDS = {"password_hash", "token_hash"}


def snapshot(obj: Any) -> dict[str, Any]:
    """The column values of a mapped object as JSON-safe data (secrets masked)."""
    mapper = inspect(obj).mapper
    data: dict[str, Any] = {}
    for column in mapper.column_attrs:
        value = getattr(obj, column.key)
        if column.key in _SECRET_FIELDS:
            value = "***" if value else None
        data[column.key] = _json_safe(value)
    return data


def _json_safe(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return value


def _digest(prev_hash: str, payload: dict[str, Any]) -> str:
    body = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _payload(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "before": event.before,
        "after": event.after,
        "note": event.note or "",
    }


def record(
    db: Session,
    *,
    actor: User | None,
    action: str,
    target_type: str,
    target_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str = "",
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction (the caller commits)."""
    head = db.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, last_seq=0, last_hash=GENESIS_HASH)
        db.add(head)
    event = AuditEvent(
        seq=head.last_seq + 1,
        at=utcnow(),
        actor_id=actor.id if actor else None,
        actor_name=actor.username if actor else SYSTEM_ACTOR,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        before=_json_safe(before),
        after=_json_safe(after),
        note=note,
        prev_hash=head.last_hash,
    )
    event.hash = _digest(event.prev_hash, _payload(event))
    head.last_seq, head.last_hash = event.seq, event.hash
    db.add(event)
    return event


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def list_events(db: Session, *, actor: User, limit: int = 100, before_seq: int | None = None) -> list[AuditEvent]:
    """Newest first, paged by sequence number."""
    authz.require(actor, "audit.read")
    query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    return list(db.scalars(query))


def verify(db: Session, *, actor: User | None = None, batch_size: int = 5000) -> VerifyReport:
    """Walk the whole chain in order and name every event whose content or link is wrong.

    actor=None is the operator's own check from the command line.
    """
    if actor is not None:
        authz.require(actor, "audit.read")
    report = VerifyReport()
    expected_prev, expected_seq = GENESIS_HASH, 1
    last_seq = 0
    while True:
        rows = db.scalars(
            select(AuditEvent).where(AuditEvent.seq > last_seq).order_by(AuditEvent.seq).limit(batch_size)
        ).all()
        if not rows:
            break
        for event in rows:
            report.checked += 1
            if event.seq != expected_seq:
                report.problems.append(
                    f"events {expected_seq}..{event.seq - 1} are missing (deleted) before event {event.seq}"
                )
            if event.prev_hash != expected_prev:
                report.problems.append(f"event {event.seq}: link to the previous event is broken")
            if _digest(event.prev_hash, _payload(event)) != event.hash:
                report.problems.append(f"event {event.seq} ({event.action}): content was edited after writing")
            expected_prev, expected_seq = event.hash, event.seq + 1
            last_seq = event.seq
    head = db.get(AuditHead, 1)
    head_seq = head.last_seq if head else 0
    head_hash = head.last_hash if head else GENESIS_HASH
    if head_seq != last_seq or head_hash != expected_prev:
        report.problems.append(
            f"the chain ends at event {last_seq} but its head says {head_seq}: events were cut off the end"
        )
    return report
