"""JSON datasets of the cockpit, so reports and NL answers can use the very same definitions."""

from __future__ import annotations

from fastapi import APIRouter, Query

from hazardloop.analytics import metrics
from hazardloop.db import utcnow
from hazardloop.web.deps import Actor, Db

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])


@router.get("/cockpit", response_model=metrics.Cockpit)
def cockpit(actor: Actor, db: Db, days: int = Query(30, ge=1, le=366)) -> metrics.Cockpit:
    """KPIs, area × category distribution, site plan, weekly trend, progress and top areas for the
    caller's areas; rates and durations over the last ``days`` days. Every number carries its drill-down."""
    return metrics.cockpit(db, actor=actor, now=utcnow(), days=days)
