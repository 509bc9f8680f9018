"""Aggregate reads of the alarm table for analytics/ (cockpit KPIs, reports).

Part of the alarms domain, scoped by the actor's areas like service.list_for_user. Counting is
done in SQL (SUM(CASE ...), GROUP BY) so a year of alarms costs one small result row; the only
dialect-specific piece is turning a timestamp into days (db.as_days), for SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Float, Select, and_, case, cast, func, select
from sqlalchemy.orm import Session

from hazardloop.alarms.models import Alarm, Verdict
from hazardloop.auth import authz
from hazardloop.auth.models import User
from hazardloop.db import as_days, count_if


def _scoped(actor: User, *columns: ColumnElement) -> Select:
    authz.require(actor, "alarm.read")
    query = select(*columns).select_from(Alarm)
    visible = authz.visible_area_ids(actor)
    if visible is not None:
        query = query.where(Alarm.area_id.in_(visible))
    return query


@dataclass(frozen=True)
class Raised:
    """Alarms first raised in a period, with the people's verdicts and acknowledgement times."""

    raised: int
    true_alarms: int
    false_alarms: int
    sensor_faults: int
    acknowledged: int
    mean_minutes_to_ack: float | None


def raised_between(db: Session, *, actor: User, since: dt.datetime, until: dt.datetime) -> Raised:
    """Alarms whose first_at lies in [since, until): counts by verdict and the mean first_at → acknowledged_at."""
    ack_minutes = (as_days(db, Alarm.acknowledged_at) - as_days(db, Alarm.first_at)) * 1440.0
    row = db.execute(
        _scoped(
            actor,
            func.count(),
            count_if(Alarm.verdict == Verdict.TRUE_ALARM.value),
            count_if(Alarm.verdict == Verdict.FALSE_ALARM.value),
            count_if(Alarm.verdict == Verdict.SENSOR_FAULT.value),
            count_if(Alarm.acknowledged_at.is_not(None)),
            func.avg(case((Alarm.acknowledged_at.is_not(None), cast(ack_minutes, Float)), else_=None)),
        ).where(Alarm.first_at >= since, Alarm.first_at < until)
    ).one()
    return Raised(
        raised=int(row[0]),
        true_alarms=int(row[1]),
        false_alarms=int(row[2]),
        sensor_faults=int(row[3]),
        acknowledged=int(row[4]),
        mean_minutes_to_ack=None if row[5] is None else float(row[5]),
    )


def active_per_area(db: Session, *, actor: User) -> dict[int, int]:
    """Active (not yet cleared) alarms per area: what the console /alarms?state=active&area_id=… lists
    (the cockpit's per-area drill-down), and /api/v1/alarms?active=true&area_id=… answers."""
    rows = db.execute(
        _scoped(actor, Alarm.area_id, func.count()).where(and_(Alarm.active.is_(True))).group_by(Alarm.area_id)
    ).all()
    return {int(r[0]): int(r[1]) for r in rows}
