"""Every cockpit number, defined once (ARCHITECTURE.md §7): the cockpit, the reports and NL answers
read these functions, never their own SQL.

Each metric is a function taking the session, the acting user (numbers are scoped to the areas
the user can see) and the period, and returning a plain model that carries the link to the rows
behind the number (FineBI/Grafana style drill-down). Counting is done by hazards/stats.py and
alarms/stats.py, the two domains' aggregate readers.

Drill-down honesty: a link is ``exact`` only when the target list understands every filter the
metric needs, so that its total equals the number. The hazard list (web/hazard_pages.ListQuery)
understands HAZARD_LIST_FILTERS and the alarm console (web/alarm_filters.ConsoleQuery)
ALARM_LIST_FILTERS; a metric that needs more still sends those parameters — the list ignores
unknown ones and shows a wider set — and says so with ``exact=False``, which the cockpit shows in
the tooltip.

Periods are exact windows [since, until) in whole seconds, so an alarm drill-down can name them in
its URL to the second; ``cockpit(days=…)`` is the shorthand for the window ending now.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from pydantic import BaseModel
from sqlalchemy.orm import Session

from hazardloop.alarms import stats as alarm_stats
from hazardloop.auth.models import User
from hazardloop.hazards import stats as hazard_stats
from hazardloop.hazards.ledger import BEIJING
from hazardloop.hazards.models import HazardState
from hazardloop.hazards.reference import categories
from hazardloop.plant import service as plant

HAZARD_LIST = "/hazards"
HAZARD_LIST_FILTERS = frozenset({"area_id", "state", "level", "category", "source", "overdue", "open", "q",
                                 "found_from", "found_to", "closed_from", "closed_to"})
ALARM_LIST = "/alarms"  # the 报警台 console, which also exports its filtered list as CSV
ALARM_LIST_FILTERS = frozenset({"state", "area_id", "type", "severity", "verdict", "raised_from", "raised_to"})
TREND_WEEKS = 52
TOP_AREAS = 10

# Rectification progress groups the open states as a manager reads them (domain.md §2.2).
PROGRESS_GROUPS: tuple[tuple[str, tuple[HazardState, ...]], ...] = (
    ("triage", (HazardState.DRAFT, HazardState.REPORTED)),
    ("planning", (HazardState.CONFIRMED, HazardState.PLAN_PENDING)),
    (
        "rectifying",
        (HazardState.ASSIGNED, HazardState.RECTIFYING, HazardState.EXTENSION_REQUESTED, HazardState.REOPENED),
    ),
    ("acceptance", (HazardState.PENDING_ACCEPTANCE,)),
)


# ---------------------------------------------------------------- shapes


class Drill(BaseModel):
    """Where a number leads: the list of its rows, and whether that list's total equals it."""

    href: str
    exact: bool


def _drill(base: str, known: frozenset[str], **params: str | int | None) -> Drill:
    values = {k: v for k, v in params.items() if v is not None}
    query = urlencode(values)
    return Drill(href=f"{base}?{query}" if query else base, exact=set(values) <= known)


def hazards_drill(**params: str | int | None) -> Drill:
    return _drill(HAZARD_LIST, HAZARD_LIST_FILTERS, **params)


def alarms_drill(**params: str | int | None) -> Drill:
    return _drill(ALARM_LIST, ALARM_LIST_FILTERS, **params)


def _closed_drill(first_day: str, end_day: str) -> Drill:
    """Hazards closed on plant days [first_day, end_day)."""
    return hazards_drill(state=HazardState.CLOSED.value, closed_from=first_day, closed_to=end_day)


class Kpi(BaseModel):
    key: str  # i18n: metric.<key>
    value: int | float | None  # None: nothing to measure in the period (shown as "—", never as 0)
    unit: Literal["count", "percent", "minutes", "days"]
    numerator: int | None = None
    denominator: int | None = None
    note: int | None = None  # a side count the card shows (fast-path closures, sensor faults)
    drill: Drill


@dataclass(frozen=True)
class Period:
    """[since, until): the window of the rate and duration metrics; ``now`` for the state metrics.

    Both ends are cut to whole seconds, so the alarm console's ``raised_from``/``raised_to`` can
    name the window exactly and its list has as many rows as the metric counted."""

    since: dt.datetime
    until: dt.datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", self.since.replace(microsecond=0))
        object.__setattr__(self, "until", self.until.replace(microsecond=0))

    @classmethod
    def last_days(cls, days: int, now: dt.datetime) -> Period:
        return cls(since=now - dt.timedelta(days=days), until=now)

    @property
    def days(self) -> int:
        """Whole days the window spans, rounded up."""
        return max(1, -(-int((self.until - self.since).total_seconds()) // 86400))

    def plant_days(self) -> Period:
        """The plant days (Beijing midnights) covering the window: what the date-only lists can filter."""
        first = self.since.astimezone(BEIJING).date()
        last = (self.until - dt.timedelta(microseconds=1)).astimezone(BEIJING).date()
        return Period(since=_plant_midnight(first), until=_plant_midnight(last + dt.timedelta(days=1)))


def _plant_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=BEIJING).astimezone(dt.UTC)


def plant_day_start(now: dt.datetime) -> dt.datetime:
    """Midnight of today on site (Beijing time), in UTC: "today" as the control room means it."""
    return _plant_midnight(now.astimezone(BEIJING).date())


def _day(value: dt.datetime) -> str:
    return value.astimezone(BEIJING).date().isoformat()


def _instant(value: dt.datetime) -> str:
    """A moment as the alarm console's raised_from/raised_to take it: plant time, to the second."""
    return value.astimezone(BEIJING).replace(tzinfo=None).isoformat(timespec="seconds")


def _raised_drill(period: Period, **params: str | int | None) -> Drill:
    """Alarms first raised in [since, until), narrowed by ``params``."""
    return alarms_drill(**params, raised_from=_instant(period.since), raised_to=_instant(period.until))


# ---------------------------------------------------------------- KPIs


def open_hazards(db: Session, *, actor: User, now: dt.datetime) -> Kpi:
    """Open hazards (在册未闭环): hazards now in any state of models.OPEN_STATES — every state but
    REJECTED, CLOSED and CANCELLED. Drafts count: an unsubmitted candidate is still unfinished work."""
    value = hazard_stats.counts(db, actor=actor, now=now).open
    return Kpi(key="open_hazards", value=value, unit="count", drill=hazards_drill(open="true"))


def overdue_hazards(db: Session, *, actor: User, now: dt.datetime) -> Kpi:
    """Overdue hazards (超期): deadline < now while the state is ASSIGNED, RECTIFYING,
    EXTENSION_REQUESTED or REOPENED (models.DEADLINE_STATES) — a flag, not a state (domain.md §2.2).
    Exactly the hazard list's ``overdue=true`` filter."""
    value = hazard_stats.counts(db, actor=actor, now=now).overdue
    return Kpi(key="overdue_hazards", value=value, unit="count", drill=hazards_drill(overdue="true"))


def major_open_hazards(db: Session, *, actor: User, now: dt.datetime) -> Kpi:
    """Open 重大事故隐患: open hazards (as open_hazards) whose level maps to the legal level "major"."""
    value = hazard_stats.counts(db, actor=actor, now=now).major_open
    return Kpi(key="major_open", value=value, unit="count", drill=hazards_drill(level="major", open="true"))


def on_time_rectification_rate(db: Session, *, actor: User, period: Period) -> Kpi:
    """On-time rectification rate (按期整改率), in percent: of the hazards CLOSED in the period
    (closed_at in [since, until)) that went through rectification and had a deadline, the share whose
    rectification was completed (completed_at, the submission for acceptance) at or before the
    deadline in force — an approved extension moves the deadline, and an extension approved in time
    is on time by the regulation's own logic.

    立查立改 fast-path closures are excluded from both sides and reported in ``note``: they never had
    a rectification deadline, and counting them as on time would let easy on-the-spot fixes hide late
    rectifications. None when nothing qualifying closed in the period."""
    c = hazard_stats.closures(db, actor=actor, since=period.since, until=period.until)
    value = round(100.0 * c.on_time / c.with_deadline, 1) if c.with_deadline else None
    return Kpi(
        key="on_time_rate",
        value=value,
        unit="percent",
        numerator=c.on_time,
        denominator=c.with_deadline,
        note=c.fast_path,
        drill=_closed_drill(_day(period.since), _day(period.until)),
    )


def mean_days_report_to_close(db: Session, *, actor: User, period: Period) -> Kpi:
    """Mean time from report to close, in days: average of closed_at − found_at over every hazard
    CLOSED in the period (fast-path closures included: it is the time a finding stays unresolved,
    and on-the-spot fixes are part of how quickly findings get resolved)."""
    c = hazard_stats.closures(db, actor=actor, since=period.since, until=period.until)
    value = None if c.mean_days_to_close is None else round(c.mean_days_to_close, 1)
    return Kpi(
        key="mean_days_to_close",
        value=value,
        unit="days",
        denominator=c.closed,
        drill=_closed_drill(_day(period.since), _day(period.until)),
    )


def alarms_today(db: Session, *, actor: User, now: dt.datetime) -> Kpi:
    """Alarms today: alarms first raised since midnight on site (Beijing time). An alarm that stays
    active counts once (it is updated, not duplicated — alarms/models.py)."""
    since = plant_day_start(now)
    r = alarm_stats.raised_between(db, actor=actor, since=since, until=now + dt.timedelta(seconds=1))
    return Kpi(key="alarms_today", value=r.raised, unit="count", drill=alarms_drill(raised_from=_day(since)))


def false_alarm_rate(db: Session, *, actor: User, period: Period) -> Kpi:
    """False-alarm rate, in percent: alarms first raised in the period judged ``false_alarm`` ÷ those
    judged ``true_alarm`` or ``false_alarm``. Unjudged alarms are left out (no verdict, no label), and
    so are ``sensor_fault`` verdicts — an instrument failure is neither a true nor a false process
    alarm and is tracked by sensor health; their count is in ``note``."""
    r = alarm_stats.raised_between(db, actor=actor, since=period.since, until=period.until)
    judged = r.true_alarms + r.false_alarms
    return Kpi(
        key="false_alarm_rate",
        value=round(100.0 * r.false_alarms / judged, 1) if judged else None,
        unit="percent",
        numerator=r.false_alarms,
        denominator=judged,
        note=r.sensor_faults,
        drill=_raised_drill(period, verdict="false_alarm"),
    )


def mean_minutes_to_acknowledge(db: Session, *, actor: User, period: Period) -> Kpi:
    """Mean time from alarm to acknowledgement, in minutes: average of acknowledged_at − first_at over
    alarms first raised in the period that have been acknowledged (a verdict acknowledges too).
    Still-unacknowledged alarms are not in the mean; they are the console's unacknowledged queue."""
    r = alarm_stats.raised_between(db, actor=actor, since=period.since, until=period.until)
    value = None if r.mean_minutes_to_ack is None else round(r.mean_minutes_to_ack, 1)
    return Kpi(
        key="mean_minutes_to_ack",
        value=value,
        unit="minutes",
        denominator=r.acknowledged,
        drill=_raised_drill(period, state="acknowledged"),
    )


# ---------------------------------------------------------------- chart datasets


class AreaRow(BaseModel):
    """One area on the site plan and in the top-areas chart."""

    id: int
    site_id: int
    code: str
    name_zh: str
    name_en: str
    grade: str | None
    polygon: list[list[float]]
    total: int
    open: int
    overdue: int
    major_open: int
    active_alarms: int
    drill_open: Drill
    drill_overdue: Drill
    drill_alarms: Drill


class SitePlan(BaseModel):
    id: int
    code: str
    name_zh: str
    name_en: str
    width: float
    height: float


def areas(db: Session, *, actor: User, now: dt.datetime) -> list[AreaRow]:
    """Every visible area with its open, overdue and open-major hazards (as the KPIs above, per area)
    and its active alarms (not yet cleared), for the four-colour plan and the top-areas chart."""
    counts = {c.area_id: c for c in hazard_stats.per_area(db, actor=actor, now=now)}
    alarms = alarm_stats.active_per_area(db, actor=actor)
    rows = []
    for area in plant.list_areas(db, actor=actor):
        c = counts.get(area.id) or hazard_stats.AreaCounts(area.id, 0, 0, 0, 0)
        rows.append(
            AreaRow(
                id=area.id,
                site_id=area.site_id,
                code=area.code,
                name_zh=area.name_zh,
                name_en=area.name_en,
                grade=area.risk_grade,
                polygon=area.polygon or [],
                total=c.total,
                open=c.open,
                overdue=c.overdue,
                major_open=c.major_open,
                active_alarms=alarms.get(area.id, 0),
                drill_open=hazards_drill(area_id=area.id, open="true"),
                drill_overdue=hazards_drill(area_id=area.id, overdue="true"),
                drill_alarms=alarms_drill(state="active", area_id=area.id),
            )
        )
    return rows


def top_areas(rows: list[AreaRow], limit: int = TOP_AREAS) -> list[AreaRow]:
    """Areas needing attention first: most overdue, then most open, then most active alarms; areas
    with nothing open and no active alarm are left out."""
    busy = [r for r in rows if r.open or r.overdue or r.active_alarms]
    return sorted(busy, key=lambda r: (-r.overdue, -r.open, -r.active_alarms, r.code))[:limit]


class HeatCell(BaseModel):
    area_id: int
    category: str
    count: int
    drill: Drill


class Category(BaseModel):
    code: str
    name_zh: str
    name_en: str


def distribution(db: Session, *, actor: User, window: Period | None = None) -> list[HeatCell]:
    """Hazard distribution by area × category: every registered hazard with a category, any state —
    all time, or found (found_at) on the plant days covering ``window`` (Period.plant_days). That is
    exactly what /hazards?area_id=…&category=…[&found_from=…&found_to=…] lists, so a cell equals its list."""
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    found: dict[str, str] = {}
    if window is not None:
        days = window.plant_days()
        since, until = days.since, days.until
        found = {"found_from": _day(since), "found_to": _day(until)}
    return [
        HeatCell(area_id=a, category=c, count=n, drill=hazards_drill(area_id=a, category=c, **found))
        for a, c, n in hazard_stats.area_category(db, actor=actor, since=since, until=until)
    ]


class Week(BaseModel):
    start: str  # Monday, plant date
    found: int
    closed: int
    drill_found: Drill
    drill_closed: Drill


def weekly_trend(db: Session, *, actor: User, now: dt.datetime, weeks: int = TREND_WEEKS) -> list[Week]:
    """Hazards reported (found_at) and closed (closed_at, state now CLOSED) per plant week, Monday
    00:00 Beijing time, over the last ``weeks`` weeks including the current one."""
    today = now.astimezone(BEIJING).date()
    monday = today - dt.timedelta(days=today.weekday()) - dt.timedelta(weeks=weeks - 1)
    start = dt.datetime.combine(monday, dt.time(0), tzinfo=BEIJING).astimezone(dt.UTC)
    found, closed = hazard_stats.weekly(db, actor=actor, start=start, weeks=weeks)
    result = []
    for i in range(weeks):
        first = monday + dt.timedelta(weeks=i)
        last = (first + dt.timedelta(days=7)).isoformat()
        result.append(
            Week(
                start=first.isoformat(),
                found=found[i],
                closed=closed[i],
                drill_found=hazards_drill(found_from=first.isoformat(), found_to=last),
                drill_closed=_closed_drill(first.isoformat(), last),
            )
        )
    return result


class StateCount(BaseModel):
    group: str  # i18n: cockpit.group.<group>
    state: str
    count: int
    drill: Drill


def rectification_progress(db: Session, *, actor: User) -> list[StateCount]:
    """Open hazards per lifecycle state, grouped as PROGRESS_GROUPS (triage → planning → rectifying →
    acceptance); each state's count equals /hazards?state=<state>. Sums to open_hazards."""
    per_state = hazard_stats.per_state(db, actor=actor)
    return [
        StateCount(group=group, state=s.value, count=per_state.get(s.value, 0), drill=hazards_drill(state=s.value))
        for group, states in PROGRESS_GROUPS
        for s in states
    ]


# ---------------------------------------------------------------- the whole cockpit


class Cockpit(BaseModel):
    generated_at: dt.datetime
    period_days: int
    period_since: dt.datetime
    period_until: dt.datetime
    heatmap_since: dt.datetime  # the plant days the heatmap counts (Period.plant_days of the period)
    heatmap_until: dt.datetime
    kpis: list[Kpi]
    sites: list[SitePlan]
    areas: list[AreaRow]
    top_areas: list[int]  # area ids, most pressing first
    categories: list[Category]
    heatmap: list[HeatCell]
    weeks: list[Week]
    progress: list[StateCount]


def cockpit(db: Session, *, actor: User, now: dt.datetime, days: int = 30, window: Period | None = None,
            trend_weeks: int = TREND_WEEKS) -> Cockpit:
    """Everything the 驾驶舱 shows, for one actor at one moment. Rates, durations and the area ×
    category heatmap cover ``window`` — by default the last ``days`` days — and the weekly trend
    the ``trend_weeks`` weeks up to its end; open, overdue, major, progress and the plan are "now"."""
    period = window or Period.last_days(days, now)
    heat_days = period.plant_days()
    kpis = [
        open_hazards(db, actor=actor, now=now),
        overdue_hazards(db, actor=actor, now=now),
        major_open_hazards(db, actor=actor, now=now),
        on_time_rectification_rate(db, actor=actor, period=period),
        alarms_today(db, actor=actor, now=now),
        false_alarm_rate(db, actor=actor, period=period),
        mean_minutes_to_acknowledge(db, actor=actor, period=period),
        mean_days_report_to_close(db, actor=actor, period=period),
    ]
    area_rows = areas(db, actor=actor, now=now)
    site_ids = {a.site_id for a in area_rows}
    sites = [
        SitePlan(id=s.id, code=s.code, name_zh=s.name_zh, name_en=s.name_en, width=s.plan_width, height=s.plan_height)
        for s in plant.list_sites(db, actor=actor)
        if s.id in site_ids
    ]
    return Cockpit(
        generated_at=now,
        period_days=period.days,
        period_since=period.since,
        period_until=period.until,
        heatmap_since=heat_days.since,
        heatmap_until=heat_days.until,
        kpis=kpis,
        sites=sites,
        areas=area_rows,
        top_areas=[a.id for a in top_areas(area_rows)],
        categories=[Category(code=c.code, name_zh=c.name_zh, name_en=c.name_en) for c in categories().values()],
        heatmap=distribution(db, actor=actor, window=period),
        weeks=weekly_trend(db, actor=actor, now=period.until - dt.timedelta(seconds=1), weeks=trend_weeks),
        progress=rectification_progress(db, actor=actor),
    )
