"""JSON datasets of the cockpit, so reports and NL answers can use the very same definitions."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Query

from hazardloop.analytics import metrics
from hazardloop.db import utcnow
from hazardloop.web.deps import Actor, Db

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

MAX_WINDOW = dt.timedelta(days=366 * 5)


def _window(since: dt.datetime | None, until: dt.datetime | None, now: dt.datetime) -> metrics.Period | None:
    """An exact [since, until) from the query, or None for the last ``days`` days; times need a zone."""
    if since is None and until is None:
        return None
    if since is None:
        raise HTTPException(422, detail={"field": "since", "error": "required when until is given"})
    until = until or now
    for name, value in (("since", since), ("until", until)):
        if value.tzinfo is None:
            raise HTTPException(422, detail={"field": name, "error": "give a time zone, e.g. +08:00 or Z"})
    if until <= since:
        raise HTTPException(422, detail={"field": "until", "error": "must be after since"})
    if until - since > MAX_WINDOW:
        raise HTTPException(422, detail={"field": "since", "error": "the window may span at most 5 years"})
    return metrics.Period(since=since.astimezone(dt.UTC), until=until.astimezone(dt.UTC))


@router.get("/cockpit", response_model=metrics.Cockpit)
def cockpit(actor: Actor, db: Db, days: int = Query(30, ge=1, le=366), since: dt.datetime | None = None,
            until: dt.datetime | None = None) -> metrics.Cockpit:
    """KPIs, area × category distribution, site plan, weekly trend, progress and top areas for the
    caller's areas; rates, durations and the distribution over [since, until) when given (until
    defaults to now), else over the last ``days`` days. Every number carries its drill-down."""
    now = utcnow()
    return metrics.cockpit(db, actor=actor, now=now, days=days, window=_window(since, until, now))
