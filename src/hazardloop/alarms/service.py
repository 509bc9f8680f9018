"""The alarm console. The only code that touches the alarm tables.

Two kinds of caller pass through here. The detectors (``live.py``, actor ``None`` = the system) raise,
update and clear alarms; people acknowledge, judge, shelve and turn alarms into hazard drafts. People's
actions check the role permission and the area scope here, so the API, the pages and the CLI share
one gate; every write is audited in the same transaction as the change.

Functions whose name starts with ``_`` leave the commit to the caller: live detection writes a whole
batch of alarm changes and its detector state in one transaction, so a crash never leaves them apart.
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from hazardloop.alarms.models import (
    SENSOR_FAULT_PREFIX,
    Alarm,
    AlarmEvent,
    AlarmNotification,
    AlarmType,
    ChartWindow,
    DetectorState,
    Severity,
    Verdict,
)
from hazardloop.auth import audit, authz
from hazardloop.auth.models import User
from hazardloop.auth.roles import Role
from hazardloop.db import utcnow
from hazardloop.errors import Conflict, InvalidInput, NotFound

SYSTEM_NAME = "system"

# ---------------------------------------------------------------- reference data (alarms/data)


@dataclass(frozen=True)
class EscalationStep:
    step: int  # 1-based: the alarm's escalation_step after this one fired
    after_minutes: float
    roles: tuple[str, ...]


@dataclass(frozen=True)
class EscalationPolicy:
    on_raise: dict[str, tuple[str, ...]]  # severity -> roles told at once
    ladder: dict[str, tuple[EscalationStep, ...]]  # severity -> steps in time order
    max_shelve: dt.timedelta


def _data(name: str) -> dict[str, Any]:
    return tomllib.loads((resources.files("hazardloop.alarms") / "data" / name).read_text("utf-8"))


def _roles(names: Sequence[str]) -> tuple[str, ...]:
    for name in names:
        Role(name)  # a typo in the data file fails loudly at load, not silently at 3 a.m.
    return tuple(names)


@lru_cache(maxsize=1)
def severity_table() -> dict[str, Severity]:
    return {key: Severity(value) for key, value in _data("severity.toml")["severity"].items()}


@lru_cache(maxsize=1)
def auto_draft_types() -> frozenset[str]:
    """Alarm types that open a hazard DRAFT by themselves (severity.toml [auto_hazard_draft])."""
    return frozenset(_data("severity.toml").get("auto_hazard_draft", {}).get("types", []))


@lru_cache(maxsize=1)
def escalation_policy() -> EscalationPolicy:
    raw = _data("escalation.toml")
    on_raise = {Severity(k).value: _roles(v) for k, v in raw.get("raise", {}).items()}
    ladder: dict[str, tuple[EscalationStep, ...]] = {}
    for severity, steps in raw.get("ladder", {}).items():
        ordered = sorted(steps, key=lambda s: float(s["after_minutes"]))
        ladder[Severity(severity).value] = tuple(
            EscalationStep(step=i, after_minutes=float(s["after_minutes"]), roles=_roles(s["roles"]))
            for i, s in enumerate(ordered, start=1)
        )
    hours = float(raw.get("shelving", {}).get("max_hours", 72))
    return EscalationPolicy(on_raise=on_raise, ladder=ladder, max_shelve=dt.timedelta(hours=hours))


def severity_for(alarm_type: str) -> Severity:
    """Severity of an alarm type from severity.toml; 'sensor_fault:stuck' falls back to 'sensor_fault'."""
    table = severity_table()
    if alarm_type in table:
        return table[alarm_type]
    family = alarm_type.split(":", 1)[0]
    if family in table:
        return table[family]
    raise InvalidInput("type", f"alarm type '{alarm_type}' has no severity in alarms/data/severity.toml")


# ---------------------------------------------------------------- timeline and audit helpers


def _event(db: Session, alarm: Alarm, *, kind: str, at: dt.datetime, actor: User | None = None, note: str = "",
           data: dict[str, Any] | None = None) -> None:
    db.add(AlarmEvent(alarm_id=alarm.id, at=at, kind=kind, actor_id=actor.id if actor else None,
                      actor_name=actor.username if actor else SYSTEM_NAME, note=note, data=data))


def _audit(db: Session, alarm: Alarm, *, actor: User | None, action: str, before: dict[str, Any] | None,
           note: str = "") -> None:
    audit.record(db, actor=actor, action=action, target_type="alarm", target_id=alarm.id, before=before,
                 after=audit.snapshot(alarm), note=note)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# ---------------------------------------------------------------- reading


def get(db: Session, *, actor: User, alarm_id: int) -> Alarm:
    authz.require(actor, "alarm.read")
    alarm = db.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFound(f"alarm {alarm_id} not found")
    authz.require_area(actor, alarm.area_id, f"alarm {alarm_id}")  # same words as a missing one
    return alarm


TYPE_FAMILIES = ("limit", "statistical", "sensor_fault")  # what AlarmFilter.type_family accepts
NOT_JUDGED = "none"  # AlarmFilter.verdict for alarms nobody has judged yet
VERDICT_FILTERS = (*(v.value for v in Verdict), NOT_JUDGED)  # what AlarmFilter.verdict accepts


@dataclass(frozen=True)
class AlarmFilter:
    """Which alarms to list; every field left None does not filter.

    ``type`` is one exact alarm type; ``type_family`` a group of them as the console offers it (see
    ``_type_family``). ``raised_from``/``raised_to`` bound ``first_at`` as [from, to) — the window the
    cockpit's alarm metrics count by (alarms/stats.raised_between), so a drill-down lists their rows.
    """

    active: bool | None = None
    acknowledged: bool | None = None
    area_id: int | None = None
    severity: Severity | None = None
    sensor_id: int | None = None
    type: str | None = None
    shelved: bool | None = None
    verdict: str | None = None  # a Verdict value, or NOT_JUDGED
    type_family: str | None = None  # one of TYPE_FAMILIES
    raised_from: dt.datetime | None = None  # first_at >= raised_from
    raised_to: dt.datetime | None = None  # first_at < raised_to

    def __post_init__(self) -> None:
        """Refuse what would silently match nothing (a misspelt verdict) or compare wrongly (a naive time)."""
        if self.verdict is not None and self.verdict not in VERDICT_FILTERS:
            raise InvalidInput("verdict", f"'{self.verdict}' is not one of {', '.join(VERDICT_FILTERS)}")
        if self.type_family is not None and self.type_family not in TYPE_FAMILIES:
            raise InvalidInput("type_family", f"'{self.type_family}' is not one of {', '.join(TYPE_FAMILIES)}")
        for name in ("raised_from", "raised_to"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise InvalidInput(name, "needs its time zone")


def _type_family(name: str) -> ColumnElement[bool]:
    """limit: the four limit types; statistical: the statistical detector; sensor_fault: every
    ``sensor_fault:<kind>`` and ``silent`` (an instrument that stopped reporting is an instrument fault)."""
    if name == "limit":
        return Alarm.type.in_([t.value for t in AlarmType if t.value.startswith("limit_")])
    if name == "statistical":
        return Alarm.type == AlarmType.STATISTICAL.value
    return or_(Alarm.type.like(f"{SENSOR_FAULT_PREFIX}:%"), Alarm.type == AlarmType.SILENT.value)


def _filtered(actor: User, f: AlarmFilter, now: dt.datetime) -> Select:
    query = select(Alarm)
    visible = authz.visible_area_ids(actor)
    if visible is not None:
        query = query.where(Alarm.area_id.in_(visible))
    if f.active is not None:
        query = query.where(Alarm.active == f.active)
    if f.acknowledged is not None:
        query = query.where(Alarm.acknowledged == f.acknowledged)
    if f.area_id is not None:
        query = query.where(Alarm.area_id == f.area_id)
    if f.severity is not None:
        query = query.where(Alarm.severity == f.severity.value)
    if f.sensor_id is not None:
        query = query.where(Alarm.sensor_id == f.sensor_id)
    if f.type is not None:
        query = query.where(Alarm.type == f.type)
    if f.type_family is not None:
        query = query.where(_type_family(f.type_family))
    if f.shelved is not None:
        on_shelf = Alarm.shelved_until.is_not(None) & (Alarm.shelved_until > now)
        query = query.where(on_shelf if f.shelved else ~on_shelf | Alarm.shelved_until.is_(None))
    if f.verdict == NOT_JUDGED:
        query = query.where(Alarm.verdict.is_(None))
    elif f.verdict is not None:
        query = query.where(Alarm.verdict == f.verdict)
    if f.raised_from is not None:
        query = query.where(Alarm.first_at >= f.raised_from)
    if f.raised_to is not None:
        query = query.where(Alarm.first_at < f.raised_to)
    return query


def list_for_user(db: Session, *, actor: User, filters: AlarmFilter | None = None, limit: int | None = 100,
                  offset: int = 0, now: dt.datetime | None = None) -> tuple[list[Alarm], int]:
    """Alarms this actor may see, active first, then newest first; and their total count."""
    authz.require(actor, "alarm.read")
    query = _filtered(actor, filters or AlarmFilter(), now or utcnow())
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    query = query.order_by(Alarm.active.desc(), Alarm.first_at.desc(), Alarm.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(db.scalars(query)), total


def timeline(db: Session, *, actor: User, alarm_id: int) -> list[AlarmEvent]:
    get(db, actor=actor, alarm_id=alarm_id)
    return list(db.scalars(select(AlarmEvent).where(AlarmEvent.alarm_id == alarm_id)
                           .order_by(AlarmEvent.at, AlarmEvent.id)))


def active_alarm(db: Session, *, sensor_id: int, alarm_type: str) -> Alarm | None:
    """The one active alarm of a condition, if any (the partial unique index guarantees at most one)."""
    return db.scalar(select(Alarm).where(Alarm.sensor_id == sensor_id, Alarm.type == alarm_type, Alarm.active))


# ---------------------------------------------------------------- the detector side (actor = system)


@dataclass(frozen=True)
class SensorRef:
    """What an alarm needs to know of its sensor; built by live detection from the plant register."""

    id: int
    tag: str
    area_id: int
    unit: str = ""


def _more_extreme(alarm_type: str, old: float | None, new: float | None) -> float | None:
    """High limits peak at the maximum, low limits at the minimum; for other types the caller judges
    (a statistical peak is the reading farthest from normal either way) and passes only a worse one."""
    if new is None:
        return old
    if old is None:
        return new
    if alarm_type in ("limit_l", "limit_ll"):
        return min(old, new)
    if alarm_type in ("limit_h", "limit_hh"):
        return max(old, new)
    return new


def _shelf_of_condition(db: Session, sensor_id: int, alarm_type: str, at: dt.datetime) -> Alarm | None:
    """A shelf covers the condition, not one row: a new occurrence during maintenance stays shelved."""
    last = db.scalar(select(Alarm).where(Alarm.sensor_id == sensor_id, Alarm.type == alarm_type)
                     .order_by(Alarm.id.desc()).limit(1))
    return last if last is not None and last.is_shelved(at) else None


def _queue(db: Session, alarm: Alarm, *, kind: str, step: int, roles: Sequence[str], at: dt.datetime) -> None:
    if not roles:
        return
    title = f"[{alarm.severity}] {alarm.reason or alarm.tag}"
    state = "still unacknowledged" if kind == "escalated" else "raised"
    body = (f"Alarm #{alarm.id} {alarm.type} on {alarm.tag}, {state}; first at "
            f"{alarm.first_at:%Y-%m-%d %H:%M:%S} UTC" + (f", peak {alarm.peak:g} {alarm.unit}" if alarm.peak is not None
                                                        else ""))
    db.add(AlarmNotification(alarm_id=alarm.id, kind=kind, step=step, area_id=alarm.area_id,
                             severity=alarm.severity, roles=list(roles), title=title[:255], body=body, created_at=at))


def _raise_or_update(db: Session, *, sensor: SensorRef, alarm_type: str, at: dt.datetime, value: float | None,
                     reason: str, peak: float | None = None, occurrences: int = 1,
                     provenance: Mapping[str, Any] | None = None) -> tuple[Alarm, bool]:
    """Create the alarm of a condition, or fold this occurrence into its active alarm. No commit.

    ``provenance`` (which detector and version raised it, and how) goes on the "raised" event, so
    an alarm judged months later still says what made it, after the detectors have changed.
    """
    value, peak = _finite(value), _finite(peak)
    alarm = active_alarm(db, sensor_id=sensor.id, alarm_type=alarm_type)
    if alarm is not None:
        before = audit.snapshot(alarm)
        alarm.count += occurrences
        alarm.last_at = max(alarm.last_at, at)
        alarm.peak = _more_extreme(alarm_type, alarm.peak, peak)
        if reason:
            alarm.reason = reason
        _event(db, alarm, kind="updated", at=at, data={"occurrences": occurrences, "peak": alarm.peak})
        _audit(db, alarm, actor=None, action="alarm.update", before=before)
        return alarm, False
    severity = severity_for(alarm_type)
    alarm = Alarm(sensor_id=sensor.id, tag=sensor.tag, area_id=sensor.area_id, type=alarm_type,
                  severity=severity.value, active=True, acknowledged=False, first_at=at, last_at=at, value=value,
                  peak=peak if peak is not None else value, unit=sensor.unit, reason=reason, count=max(occurrences, 1),
                  escalation_step=0, verdict_comment="", shelve_reason="")
    shelf = _shelf_of_condition(db, sensor.id, alarm_type, at)
    if shelf is not None:
        alarm.shelved_until, alarm.shelve_reason, alarm.shelved_by_id = (shelf.shelved_until, shelf.shelve_reason,
                                                                        shelf.shelved_by_id)
    db.add(alarm)
    db.flush()
    _event(db, alarm, kind="raised", at=at, note=reason,
           data={"value": alarm.value, "shelved_until": alarm.shelved_until.isoformat() if shelf else None,
                 **(provenance or {})})
    if shelf is None:
        _queue(db, alarm, kind="raised", step=0, roles=escalation_policy().on_raise.get(alarm.severity, ()), at=at)
    _audit(db, alarm, actor=None, action="alarm.raise", before=None)
    return alarm, True


def raise_or_update(db: Session, *, sensor: SensorRef, alarm_type: str, at: dt.datetime, value: float | None,
                    reason: str, peak: float | None = None, occurrences: int = 1,
                    provenance: Mapping[str, Any] | None = None) -> tuple[Alarm, bool]:
    """Report a condition on a sensor: (alarm, created). Idempotent per (sensor, type) while it is active —
    repeated reports update the one alarm (count, last_at, peak); only after a clear is a new alarm made."""
    result = _raise_or_update(db, sensor=sensor, alarm_type=alarm_type, at=at, value=value, reason=reason,
                              peak=peak, occurrences=occurrences, provenance=provenance)
    db.commit()
    return result


def _clear(db: Session, *, sensor_id: int, alarm_type: str, at: dt.datetime, peak: float | None = None,
           note: str = "") -> Alarm | None:
    alarm = active_alarm(db, sensor_id=sensor_id, alarm_type=alarm_type)
    if alarm is None:
        return None
    before = audit.snapshot(alarm)
    alarm.active = False
    alarm.cleared_at = at
    alarm.last_at = max(alarm.last_at, at)
    alarm.peak = _more_extreme(alarm_type, alarm.peak, _finite(peak))
    _event(db, alarm, kind="cleared", at=at, note=note)
    _audit(db, alarm, actor=None, action="alarm.clear", before=before)
    db.flush()  # the partial unique index must see it inactive before a new occurrence is inserted
    return alarm


def clear(db: Session, *, sensor_id: int, alarm_type: str, at: dt.datetime, peak: float | None = None,
          note: str = "") -> Alarm | None:
    """The condition is gone: the alarm becomes cleared (and stays unacknowledged until someone acknowledges)."""
    alarm = _clear(db, sensor_id=sensor_id, alarm_type=alarm_type, at=at, peak=peak, note=note)
    db.commit()
    return alarm


# ---------------------------------------------------------------- people's actions


def acknowledge(db: Session, *, actor: User, alarm_id: int, note: str = "", now: dt.datetime | None = None) -> Alarm:
    """Someone has seen it: stops the escalation ladder. Active or cleared alike (cleared-unacknowledged)."""
    authz.require(actor, "alarm.act")
    alarm = get(db, actor=actor, alarm_id=alarm_id)
    if alarm.acknowledged:
        raise Conflict(f"alarm {alarm_id} was already acknowledged at {alarm.acknowledged_at:%Y-%m-%d %H:%M:%S}")
    _acknowledge(db, alarm, actor, note, now or utcnow())
    db.commit()
    return alarm


def _acknowledge(db: Session, alarm: Alarm, actor: User, note: str, now: dt.datetime) -> None:
    before = audit.snapshot(alarm)
    alarm.acknowledged, alarm.acknowledged_by_id, alarm.acknowledged_at = True, actor.id, now
    _event(db, alarm, kind="acknowledged", at=now, actor=actor, note=note)
    _audit(db, alarm, actor=actor, action="alarm.acknowledge", before=before, note=note)


def give_verdict(db: Session, *, actor: User, alarm_id: int, verdict: Verdict, comment: str = "",
                 now: dt.datetime | None = None) -> Alarm:
    """A person's judgement: true alarm, false alarm or sensor fault, with a comment.

    Allowed while the alarm is still active (an operator often knows at once that it is false), and it
    acknowledges an unacknowledged alarm, since judging it means someone has seen it. A later verdict
    replaces the earlier one; both stay on the timeline. These labels recalibrate the detectors.
    """
    authz.require(actor, "alarm.act")
    alarm = get(db, actor=actor, alarm_id=alarm_id)
    now = now or utcnow()
    if not alarm.acknowledged:
        _acknowledge(db, alarm, actor, "by verdict", now)
    before = audit.snapshot(alarm)
    previous = alarm.verdict
    alarm.verdict, alarm.verdict_comment = Verdict(verdict).value, comment
    alarm.verdict_by_id, alarm.verdict_at = actor.id, now
    _event(db, alarm, kind="verdict", at=now, actor=actor, note=comment,
           data={"verdict": alarm.verdict, "previous": previous, "active": alarm.active})
    _audit(db, alarm, actor=actor, action="alarm.verdict", before=before, note=comment)
    db.commit()
    return alarm


def shelve(db: Session, *, actor: User, alarm_id: int, until: dt.datetime, reason: str,
           now: dt.datetime | None = None) -> Alarm:
    """Take a condition off the operators' ears during maintenance: still recorded, never notified.

    Time-limited (escalation.toml [shelving] max_hours): a forgotten shelf is how real alarms go unheard.
    """
    authz.require(actor, "alarm.shelve")
    alarm = get(db, actor=actor, alarm_id=alarm_id)
    now = now or utcnow()
    if until.tzinfo is None:
        raise InvalidInput("until", "needs its time zone")
    if until <= now:
        raise InvalidInput("until", "lies in the past")
    limit = escalation_policy().max_shelve
    if until - now > limit:
        raise InvalidInput("until", f"a shelf lasts at most {limit.total_seconds() / 3600:g} h; shelve again later")
    if not reason or len(reason.strip()) < 2:
        raise InvalidInput("reason", "say why (e.g. the work permit number)")
    before = audit.snapshot(alarm)
    alarm.shelved_until, alarm.shelve_reason, alarm.shelved_by_id = until, reason.strip(), actor.id
    _event(db, alarm, kind="shelved", at=now, actor=actor, note=reason, data={"until": until.isoformat()})
    _audit(db, alarm, actor=actor, action="alarm.shelve", before=before, note=reason)
    db.commit()
    return alarm


def unshelve(db: Session, *, actor: User, alarm_id: int, now: dt.datetime | None = None) -> Alarm:
    """End a shelf early. The end time is kept (not erased), so escalation counts from it."""
    authz.require(actor, "alarm.shelve")
    alarm = get(db, actor=actor, alarm_id=alarm_id)
    now = now or utcnow()
    if not alarm.is_shelved(now):
        raise Conflict(f"alarm {alarm_id} is not shelved")
    before = audit.snapshot(alarm)
    alarm.shelved_until = now
    _event(db, alarm, kind="unshelved", at=now, actor=actor)
    _audit(db, alarm, actor=actor, action="alarm.unshelve", before=before)
    db.commit()
    return alarm


# ---------------------------------------------------------------- escalation and the notify bridge


def escalate_unacknowledged(db: Session, now: dt.datetime | None = None) -> list[AlarmNotification]:
    """Climb the ladder (escalation.toml) for active alarms nobody acknowledged. Run it on a timer.

    Idempotent: each step fires once per alarm (``escalation_step`` and a unique key on the
    notifications), however often or late this runs; a late run fires every step that fell due.
    The clock starts at the raise, or at the end of a shelf, so a shelved alarm does not escalate
    the moment maintenance ends.
    """
    now = now or utcnow()
    policy = escalation_policy()
    query = select(Alarm).where(
        Alarm.active, ~Alarm.acknowledged, Alarm.severity.in_(list(policy.ladder)),
        or_(Alarm.shelved_until.is_(None), Alarm.shelved_until <= now),
    )
    queued: list[AlarmNotification] = []
    for alarm in db.scalars(query.order_by(Alarm.id)):
        ladder = policy.ladder.get(alarm.severity, ())
        start = max(alarm.first_at, alarm.shelved_until) if alarm.shelved_until else alarm.first_at
        due = [s for s in ladder if s.step > alarm.escalation_step and start + dt.timedelta(minutes=s.after_minutes)
               <= now]
        if not due:
            continue
        before = audit.snapshot(alarm)
        for step in due:
            _queue(db, alarm, kind="escalated", step=step.step, roles=step.roles, at=now)
            _event(db, alarm, kind="escalated", at=now, note=", ".join(step.roles), data={"step": step.step})
        alarm.escalation_step = due[-1].step
        _audit(db, alarm, actor=None, action="alarm.escalate", before=before)
        db.flush()
        queued.extend(db.scalars(select(AlarmNotification).where(
            AlarmNotification.alarm_id == alarm.id, AlarmNotification.kind == "escalated",
            AlarmNotification.step.in_([s.step for s in due]))))
    db.commit()
    return queued


def pending_alarm_notifications(db: Session, limit: int = 500) -> list[AlarmNotification]:
    """Messages not yet handed to the notify outbox, oldest first. The bridge: read these, put them in
    the outbox in the same transaction as ``mark_enqueued``, commit — then each is sent exactly once."""
    return list(db.scalars(select(AlarmNotification).where(AlarmNotification.enqueued_at.is_(None))
                           .order_by(AlarmNotification.id).limit(limit)))


def mark_enqueued(db: Session, notification_ids: Sequence[int], now: dt.datetime | None = None,
                  commit: bool = True) -> int:
    """Mark notifications as taken by the outbox; returns how many were still pending (repeat calls: 0)."""
    now = now or utcnow()
    rows = list(db.scalars(select(AlarmNotification).where(AlarmNotification.id.in_(list(notification_ids)),
                                                           AlarmNotification.enqueued_at.is_(None))))
    for row in rows:
        row.enqueued_at = now
    if rows:
        audit.record(db, actor=None, action="alarm.notifications_enqueued", target_type="alarm_notification",
                     target_id=None, after={"ids": [r.id for r in rows]})
    if commit:
        db.commit()
    return len(rows)


# ---------------------------------------------------------------- alarm -> hazard draft


def evidence_of(alarm: Alarm, window: ChartWindow | None, limits: dict[str, float | None] | None) -> dict[str, Any]:
    """What a hazard draft keeps of its alarm: where, what, how far out, and the chart around it."""
    evidence: dict[str, Any] = {
        "alarm_id": alarm.id, "tag": alarm.tag, "type": alarm.type, "severity": alarm.severity,
        "unit": alarm.unit, "reason": alarm.reason, "value": alarm.value, "peak": alarm.peak,
        "first_at": alarm.first_at.isoformat(),
        "cleared_at": alarm.cleared_at.isoformat() if alarm.cleared_at else None,
        "limits": limits or {}, "verdict": alarm.verdict, "verdict_comment": alarm.verdict_comment,
    }
    if window is not None:
        if len(window.timestamps) != len(window.values):
            raise InvalidInput("values", f"{len(window.values)} values for {len(window.timestamps)} timestamps")
        evidence["window"] = {"timestamps": [t.astimezone(dt.UTC).isoformat() for t in window.timestamps],
                              "values": [_finite(v) for v in window.values]}
    return evidence


def _sensor_limits(db: Session, actor: User | None, sensor_id: int | None) -> dict[str, float | None] | None:
    from hazardloop.plant import service as plant

    if sensor_id is None:
        return None
    if actor is None:  # the system's own rule: the sensor is read without a person's scope
        from hazardloop.plant.models import Sensor

        sensor = db.get(Sensor, sensor_id)
    else:
        try:
            sensor = plant.get_sensor(db, actor=actor, sensor_id=sensor_id)
        except (NotFound, authz.OutOfScope):
            return None
    if sensor is None:
        return None
    return {"LL": sensor.ll, "L": sensor.l, "H": sensor.h, "HH": sensor.hh, "range_min": sensor.range_min,
            "range_max": sensor.range_max}


def _draft(db: Session, alarm: Alarm, actor: User | None, window: ChartWindow | None, now: dt.datetime) -> int:
    from hazardloop.hazards import service as hazards
    from hazardloop.hazards.models import HazardSource

    if alarm.hazard_id is not None:
        raise Conflict(f"alarm {alarm.id} already has hazard {alarm.hazard_id}")
    evidence = evidence_of(alarm, window, _sensor_limits(db, actor, alarm.sensor_id))
    if actor is not None:
        evidence["requested_by"] = actor.username
    peak = f"，峰值 {alarm.peak:g} {alarm.unit}" if alarm.peak is not None else ""
    description = f"传感器报警 {alarm.tag}：{alarm.reason or alarm.type}{peak}（报警 #{alarm.id}，{alarm.severity}）"
    hazard = hazards.create_draft_from_signal(
        db, area_id=alarm.area_id, description=description[:4000], source=HazardSource.SENSOR_ALARM,
        source_ref=f"alarm:{alarm.id}", evidence=evidence, now=now,
    )  # commits: the draft exists even if linking below fails, and carries source_ref to find it again
    before = audit.snapshot(alarm)
    alarm.hazard_id = hazard.id
    _event(db, alarm, kind="hazard_draft", at=now, actor=actor, data={"hazard_id": hazard.id,
                                                                      "number": hazard.number})
    _audit(db, alarm, actor=actor, action="alarm.to_hazard", before=before)
    db.commit()
    return hazard.id


def to_hazard_draft(db: Session, *, actor: User, alarm_id: int, evidence: ChartWindow | None = None,
                    now: dt.datetime | None = None) -> int:
    """One action: the alarm becomes a hazard DRAFT (source sensor_alarm, source_ref 'alarm:<id>') with
    the chart around it as evidence, linked both ways. Returns the hazard id. A person submits the draft."""
    authz.require(actor, "alarm.act")
    authz.require(actor, "hazard.report")
    alarm = get(db, actor=actor, alarm_id=alarm_id)
    return _draft(db, alarm, actor, evidence, now or utcnow())


def auto_hazard_draft(db: Session, *, alarm_id: int, evidence: ChartWindow | None,
                      now: dt.datetime | None = None) -> int | None:
    """The rule form of ``to_hazard_draft`` (severity.toml [auto_hazard_draft]), run by the system."""
    alarm = db.get(Alarm, alarm_id)
    if alarm is None or alarm.hazard_id is not None or alarm.type not in auto_draft_types():
        return None
    return _draft(db, alarm, None, evidence, now or utcnow())


def is_sensor_fault(alarm_type: str) -> bool:
    return alarm_type.startswith(f"{SENSOR_FAULT_PREFIX}:")


# ---------------------------------------------------------------- labels and calibration (alarms/learning.py)


def judged_alarms(db: Session, *, alarm_type: str, tags: Collection[str] | None = None) -> list[Alarm]:
    """Alarms of one type that a person has judged, oldest first: the labels detector learning reads."""
    query = select(Alarm).where(Alarm.type == alarm_type, Alarm.verdict.is_not(None))
    if tags is not None:
        query = query.where(Alarm.tag.in_(list(tags)))
    return list(db.scalars(query.order_by(Alarm.first_at, Alarm.id)))


def detector_blob(db: Session, name: str) -> str | None:
    """The stored JSON of a detector's carried state or calibration (``DetectorState``), if any."""
    row = db.get(DetectorState, name)
    return None if row is None else row.blob


def store_detector_blob(db: Session, *, name: str, blob: str, now: dt.datetime) -> None:
    """Write a ``DetectorState`` row in the caller's transaction (the caller audits and commits)."""
    row = db.get(DetectorState, name)
    if row is None:
        db.add(DetectorState(name=name, blob=blob, updated_at=now))
    else:
        row.blob, row.updated_at = blob, now


def drop_detector_blob(db: Session, name: str) -> None:
    """Delete a ``DetectorState`` row, if there is one, in the caller's transaction."""
    row = db.get(DetectorState, name)
    if row is not None:
        db.delete(row)
