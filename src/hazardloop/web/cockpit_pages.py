"""The 驾驶舱 (safety cockpit) page: the numbers of analytics/metrics.py drawn with ECharts.

The page computes the cockpit through the same function as /api/v1/analytics/cockpit and embeds
it, so what a manager sees, what a report prints and what the API answers are one definition. KPI
cards are plain links rendered here (they work without JavaScript); the charts are drawn by
static/cockpit.js from the embedded data.

A period picker chooses the window of the rate and duration KPIs, of the area × category heatmap
and of the weekly trend: the last 7 / 30 / 90 days, this year, or custom dates (plant days, Beijing
time); metrics.cockpit takes that exact window. State KPIs (open, overdue, major), the progress and
the four-colour plan are always "now": the plan is coloured by each area's risk grade, which no
period changes, and the page says so.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from hazardloop.analytics import metrics
from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.hazards.ledger import BEIJING
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
PRESET_DAYS = {"7": 7, "30": 30, "90": 90}
PERIOD_CHOICES = ("7", "30", "90", "year", "custom")
DEFAULT_PERIOD = "30"
MAX_TREND_WEEKS = metrics.TREND_WEEKS


@dataclass(frozen=True)
class ChosenPeriod:
    key: str  # one of PERIOD_CHOICES
    period: metrics.Period
    first_day: dt.date  # plant dates, as the picker shows them
    last_day: dt.date
    invalid: bool = False  # the custom dates were refused and the default is shown instead

    @property
    def trend_weeks(self) -> int:
        """The weekly trend spans the window and the week before it, 2 to 52 weeks."""
        return max(2, min(MAX_TREND_WEEKS, math.ceil(self.period.days / 7) + 1))


def _plant_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=BEIJING).astimezone(dt.UTC)


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def choose_period(key: str | None, start: str | None, end: str | None, now: dt.datetime) -> ChosenPeriod:
    """The window a picker choice means at `now`; bad custom dates fall back to the default, flagged."""
    today = now.astimezone(BEIJING).date()
    key = key if key in PERIOD_CHOICES else DEFAULT_PERIOD
    if key == "year":
        first = today.replace(month=1, day=1)
        return ChosenPeriod(key, metrics.Period(since=_plant_midnight(first), until=now), first, today)
    if key == "custom":
        first, last = _date(start), _date(end) or today
        if first is not None and first <= last and first <= today and (last - first).days <= 366 * 5:
            until = min(_plant_midnight(last + dt.timedelta(days=1)), now)
            return ChosenPeriod(key, metrics.Period(since=_plant_midnight(first), until=until), first, last)
        chosen = choose_period(DEFAULT_PERIOD, None, None, now)
        return ChosenPeriod(chosen.key, chosen.period, chosen.first_day, chosen.last_day, invalid=True)
    period = metrics.Period.last_days(PRESET_DAYS[key], now)
    return ChosenPeriod(key, period, period.since.astimezone(BEIJING).date(), today)


def cockpit_for(db: Session, user: User, now: dt.datetime, chosen: ChosenPeriod) -> metrics.Cockpit:
    """metrics.cockpit on exactly the chosen window, its trend up to the window's end."""
    return metrics.cockpit(db, actor=user, now=now, window=chosen.period, trend_weeks=chosen.trend_weeks)


@router.get("/cockpit")
def cockpit_page(request: Request, user: MaybeUser, db: Db, period: str | None = None,
                 start: str | None = None, end: str | None = None, site: int | None = None) -> Response:
    if user is None:
        return to_login(request)
    now = utcnow()
    chosen = choose_period(period, start, end, now)
    data = cockpit_for(db, user, now, chosen)
    states = sorted({p.state for p in data.progress}, key=[p.state for p in data.progress].index)
    site_ids = [s.id for s in data.sites]
    return render(
        request,
        "cockpit.html",
        user,
        data=data,
        chosen=chosen,
        choices=PERIOD_CHOICES,
        site_id=site if site in site_ids else (site_ids[0] if site_ids else None),
        chart_keys=CHART_LABEL_KEYS,
        states=states,
        groups=STATE_GROUPS,
    )
