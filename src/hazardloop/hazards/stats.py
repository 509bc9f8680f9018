"""Aggregate reads of the hazard register for analytics/ (the cockpit, reports, NL answers).

Part of the hazards domain, so it may touch the hazard table; every query is scoped by the
actor's areas exactly as service.list_for_user is, and the overdue condition is the same
expression as the list's ``overdue`` filter, so a number here equals the list it drills into.
Counting happens in SQL (GROUP BY, SUM(CASE ...)): the cockpit must stay fast on years of
history, and a Python loop over every row would not. Written to run unchanged on SQLite and
PostgreSQL; the only dialect-specific piece is turning a timestamp into days (db.as_days).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, cast, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.types import Float, Integer

from hazardloop.auth import authz
from hazardloop.auth.models import User
from hazardloop.db import as_days, count_if
from hazardloop.hazards.models import DEADLINE_STATES, OPEN_STATES, Hazard, HazardState

_OPEN = [s.value for s in OPEN_STATES]


def _scoped(actor: User, *columns: ColumnElement) -> Select:
    """SELECT columns FROM hazards, limited to the actor's areas (the gate of service._filtered)."""
    authz.require(actor, "hazard.read")
    query = select(*columns).select_from(Hazard)
    visible = authz.visible_area_ids(actor)
    if visible is not None:
        query = query.where(Hazard.area_id.in_(visible))
    return query


def overdue_condition(now: dt.datetime) -> ColumnElement[bool]:
    """OVERDUE as a flag (domain.md §2.2): a deadline has passed while the work is still with the rectifier.

    Same expression as service._filtered(overdue=True), so the count equals /hazards?overdue=true."""
    return and_(
        Hazard.deadline.is_not(None),
        Hazard.deadline < now,
        Hazard.state.in_([s.value for s in DEADLINE_STATES]),
    )


@dataclass(frozen=True)
class Counts:
    open: int
    overdue: int
    major_open: int


def counts(db: Session, *, actor: User, now: dt.datetime) -> Counts:
    """Open, overdue and open major hazards the actor can see, in one pass over the table."""
    is_open = Hazard.state.in_(_OPEN)
    row = db.execute(
        _scoped(
            actor,
            count_if(is_open),
            count_if(overdue_condition(now)),
            count_if(and_(is_open, Hazard.is_major.is_(True))),
        )
    ).one()
    return Counts(open=int(row[0]), overdue=int(row[1]), major_open=int(row[2]))


@dataclass(frozen=True)
class Closures:
    """Hazards closed in a period, split the way the on-time rate needs them."""

    closed: int  # all closures in the period
    fast_path: int  # 立查立改: closed on the spot, never had a rectification deadline
    with_deadline: int  # non-fast-path closures that had a deadline
    on_time: int  # of those, completed at or before the deadline
    mean_days_to_close: float | None  # found_at -> closed_at over all closures in the period


def closures(db: Session, *, actor: User, since: dt.datetime, until: dt.datetime) -> Closures:
    """Hazards now CLOSED whose closed_at lies in [since, until).

    A reopened hazard has closed_at cleared (service._apply_effects), so it counts again only
    when it is closed again. completed_at falls back to closed_at for rows imported without it."""
    completed = func.coalesce(Hazard.completed_at, Hazard.closed_at)
    regular = Hazard.fast_path.is_(False)
    has_deadline = and_(regular, Hazard.deadline.is_not(None))
    duration = as_days(db, Hazard.closed_at) - as_days(db, Hazard.found_at)
    row = db.execute(
        _scoped(
            actor,
            func.count(),
            count_if(Hazard.fast_path.is_(True)),
            count_if(has_deadline),
            count_if(and_(has_deadline, completed <= Hazard.deadline)),
            func.avg(cast(duration, Float)),
        ).where(
            Hazard.state == HazardState.CLOSED.value,
            Hazard.closed_at >= since,
            Hazard.closed_at < until,
        )
    ).one()
    return Closures(
        closed=int(row[0]),
        fast_path=int(row[1]),
        with_deadline=int(row[2]),
        on_time=int(row[3]),
        mean_days_to_close=None if row[4] is None else float(row[4]),
    )


@dataclass(frozen=True)
class AreaCounts:
    area_id: int
    total: int
    open: int
    overdue: int
    major_open: int


def per_area(db: Session, *, actor: User, now: dt.datetime) -> list[AreaCounts]:
    """Per visible area that has any hazard: all registered, open, overdue and open major."""
    is_open = Hazard.state.in_(_OPEN)
    rows = db.execute(
        _scoped(
            actor,
            Hazard.area_id,
            func.count(),
            count_if(is_open),
            count_if(overdue_condition(now)),
            count_if(and_(is_open, Hazard.is_major.is_(True))),
        ).group_by(Hazard.area_id)
    ).all()
    return [AreaCounts(int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


def area_category(
    db: Session, *, actor: User, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> list[tuple[int, str, int]]:
    """(area_id, category, count) of every registered hazard with a category, any state; with
    ``since``/``until``, only those found (found_at) in [since, until).

    Any state on purpose: that is exactly what /hazards?area_id=&category=[&found_from=&found_to=]
    lists, so each heatmap cell equals the list it opens. Unclassified reports (no category yet)
    have no cell; they appear in the state progress instead."""
    query = _scoped(actor, Hazard.area_id, Hazard.category, func.count()).where(Hazard.category.is_not(None))
    if since is not None:
        query = query.where(Hazard.found_at >= since)
    if until is not None:
        query = query.where(Hazard.found_at < until)
    rows = db.execute(query.group_by(Hazard.area_id, Hazard.category)).all()
    return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]


def per_state(db: Session, *, actor: User) -> dict[str, int]:
    """Count per lifecycle state (every state present in the actor's areas)."""
    rows = db.execute(_scoped(actor, Hazard.state, func.count()).group_by(Hazard.state)).all()
    return {str(r[0]): int(r[1]) for r in rows}


def weekly(
    db: Session, *, actor: User, start: dt.datetime, weeks: int
) -> tuple[list[int], list[int]]:
    """Hazards found and hazards closed per 7-day bucket from ``start`` (bucket i = [start+7i, start+7i+7)).

    The bucket index is computed in SQL from the day scale of _days, so only ``weeks`` rows per
    series come back whatever the history's length."""
    end = start + dt.timedelta(weeks=weeks)
    found, closed = [0] * weeks, [0] * weeks
    for column, target, extra in (
        (Hazard.found_at, found, None),
        (Hazard.closed_at, closed, Hazard.state == HazardState.CLOSED.value),
    ):
        bucket = cast(func.floor((as_days(db, column) - as_days(db, _literal_time(start))) / 7.0), Integer)
        query = _scoped(actor, bucket, func.count()).where(column >= start, column < end)
        if extra is not None:
            query = query.where(extra)
        for index, count in db.execute(query.group_by(bucket)).all():
            if index is not None and 0 <= int(index) < weeks:
                target[int(index)] = int(count)
    return found, closed


def _literal_time(value: dt.datetime) -> ColumnElement:
    """A bound timestamp typed like the table's columns, so both dialects store and compare it alike."""
    return literal(value, type_=Hazard.found_at.type)
