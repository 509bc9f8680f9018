"""The 驾驶舱 (safety cockpit) page: the numbers of analytics/metrics.py drawn with ECharts.

The page computes the cockpit once through the same function as /api/v1/analytics/cockpit and
embeds it, so what a manager sees, what a report prints and what the API answers are one
definition. KPI cards are plain links rendered here (they work without JavaScript); the charts
are drawn by static/cockpit.js from the embedded data.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hazardloop.analytics import metrics
from hazardloop.db import utcnow
from hazardloop.web.deps import Db
from hazardloop.web.pages import MaybeUser, render, to_login

router = APIRouter(include_in_schema=False)

CHART_LABEL_KEYS = (
    "cockpit.empty",
    "cockpit.found",
    "cockpit.closed",
    "cockpit.open",
    "cockpit.overdue",
    "cockpit.major_open",
    "cockpit.active_alarms",
    "cockpit.hazards",
    "cockpit.click_hint",
    "cockpit.inexact",
    "cockpit.week_of",
    "grade.red",
    "grade.orange",
    "grade.yellow",
    "grade.blue",
    "grade.none",
)
STATE_GROUPS = tuple(group for group, _ in metrics.PROGRESS_GROUPS)


@router.get("/cockpit")
def cockpit_page(request: Request, user: MaybeUser, db: Db) -> Response:
    if user is None:
        return to_login(request)
    data = metrics.cockpit(db, actor=user, now=utcnow())
    states = sorted({p.state for p in data.progress}, key=[p.state for p in data.progress].index)
    return render(
        request,
        "cockpit.html",
        user,
        data=data,
        chart_keys=CHART_LABEL_KEYS,
        states=states,
        groups=STATE_GROUPS,
    )
