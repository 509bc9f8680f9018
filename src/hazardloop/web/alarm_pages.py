"""The 报警台 (alarm console) pages: the live list an operator watches, and one alarm with its chart.

The pages call alarms.service, the same functions as /api/v1/alarms, so the role rules
(alarm.read / alarm.act / hazard.report) and the area scopes hold here exactly as there. The list
refreshes itself every 5 s by HTMX polling of its table; each action (acknowledge, verdict, to hazard
draft) is a plain form post that works without JavaScript, and with HTMX re-renders only its row.
A refusal is answered with its status (403, 409, 422) and the reason shown beside the row.

The list takes filters in its URL (web/alarm_filters.ConsoleQuery: state, area, type, severity,
verdict, raise window), so a cockpit number links to exactly its alarms, the polling keeps them,
and /alarms/export.csv and /alarms/export.xlsx hand over the same filtered list.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from hazardloop.alarms import service
from hazardloop.alarms.models import SENSOR_FAULT_PREFIX, Alarm, AlarmType, ChartWindow, Severity, Verdict
from hazardloop.auth import authz
from hazardloop.auth import service as auth_service
from hazardloop.auth.authz import OutOfScope, PermissionDenied
from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.errors import Conflict, InvalidInput, NotFound
from hazardloop.hazards.ledger import BEIJING
from hazardloop.plant import service as plant
from hazardloop.readings.views import store_for
from hazardloop.web.alarm_filters import (
    STATES,
    TYPE_FAMILIES,
    VERDICTS,
    ConsoleQuery,
    export_csv,
    export_xlsx,
    list_alarms,
)
from hazardloop.web.deps import Db
from hazardloop.web.hazard_pages import _name, local_time
from hazardloop.web.i18n import translate
from hazardloop.web.pages import MaybeUser, language_of, render, to_login

router = APIRouter(include_in_schema=False)

LIST_LIMIT = 100  # active alarms first, then the most recent cleared ones
BEFORE = dt.timedelta(minutes=30)  # chart context before the alarm was raised
AFTER = dt.timedelta(minutes=30)  # and after it cleared (or was last updated)
ACTIVE_SPAN = dt.timedelta(hours=24)  # an alarm still active is drawn up to now, at most this far from its raise
MAX_SPAN = dt.timedelta(days=7)
RAW_SPAN = dt.timedelta(hours=3)  # up to this span every reading is drawn; beyond it, bucket averages
CHART_POINTS = 1500
MAX_COMMENT = 4000

CHART_LABEL_KEYS = ("alarm.chart.period", "alarm.chart.value", "alarm.chart.empty")
LIMIT_NAMES = ("LL", "L", "H", "HH")


# ---------------------------------------------------------------- shared pieces


def type_label(alarm_type: str, t: Any) -> str:  # noqa: ANN401 - the template's t()
    """'limit_hh' → 高高限; 'sensor_fault:stuck' → 仪表故障 · stuck."""
    if alarm_type.startswith(f"{SENSOR_FAULT_PREFIX}:"):
        return f"{t('alarm.type.sensor_fault')} · {alarm_type.split(':', 1)[1]}"
    if alarm_type in {a.value for a in AlarmType}:
        return t(f"alarm.type.{alarm_type}")
    return alarm_type


SHELVE_CHOICES_H = (1, 2, 4, 8, 12, 24, 48, 72)  # offered durations, cut to escalation.toml's max_hours


def shelve_hours() -> list[int]:
    limit = service.escalation_policy().max_shelve.total_seconds() / 3600
    return [h for h in SHELVE_CHOICES_H if h <= limit]


def _abilities(user: User) -> dict[str, bool]:
    can_act = authz.has_permission(user, "alarm.act")
    return {
        "can_act": can_act,
        "can_draft": can_act and authz.has_permission(user, "hazard.report"),
        "can_shelve": authz.has_permission(user, "alarm.shelve"),
    }


def _common(db: Session, user: User) -> dict[str, Any]:
    return {
        "areas": {a.id: a for a in plant.list_areas(db, actor=user)},
        "verdicts": list(Verdict),
        "local_time": local_time,
        "named": _name,
        "type_label": type_label,
        "max_comment": MAX_COMMENT,
        "shelve_hours": shelve_hours(),
        **_abilities(user),
    }


def _not_found(request: Request, user: User) -> Response:
    """An alarm outside the user's areas answers like a missing one."""
    return render(request, "alarms/message.html", user, status_code=404, message="alarm.not_found")


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request")) and not request.headers.get("hx-history-restore-request")


# ---------------------------------------------------------------- the console list


CSV_HEADER_KEYS = ("id", "tag", "area", "type", "severity", "reason", "first", "last", "cleared", "count", "value",
                   "peak", "unit", "acknowledged", "acknowledged_at", "verdict", "verdict_comment", "shelved_until")


def _list(db: Session, user: User, query: ConsoleQuery, now: dt.datetime) -> tuple[list[Alarm], int, int]:
    rows, total = list_alarms(db, actor=user, query=query, now=now, limit=LIST_LIMIT)
    _, active = service.list_for_user(db, actor=user, filters=service.AlarmFilter(active=True), limit=1, now=now)
    return rows, total, active


def _render_list(request: Request, db: Session, user: User, *, partial: bool, status_code: int = 200,
                 errors: dict[int, str] | None = None, query: ConsoleQuery | None = None) -> Response:
    query = query or ConsoleQuery()
    now = utcnow()
    rows, total, active = _list(db, user, query, now)
    return render(
        request,
        "alarms/_table.html" if partial else "alarms/list.html",
        user,
        status_code=status_code,
        rows=rows,
        total=total,
        active_total=active,
        errors=errors or {},
        now=now,
        query=query,
        states=STATES,
        type_families=TYPE_FAMILIES,
        severities=[s.value for s in Severity],
        verdict_choices=VERDICTS,
        **_common(db, user),
    )


@router.get("/alarms")
def alarm_list(request: Request, user: MaybeUser, db: Db) -> Response:
    """The console, filtered by its URL. The page polls itself (HTMX, every 5 s) and then gets only the table."""
    if user is None:
        return to_login(request)
    return _render_list(request, db, user, partial=_is_htmx(request), query=ConsoleQuery.parse(request.query_params))


def _export_inputs(request: Request, db: Session, user: User) -> tuple[str, dict[str, Any]]:
    """The page language, and what both exports take: the filters, the time, area names, translated headers."""
    language = language_of(request, user)
    names = {a.id: f"{a.code} · {_name(a, language)}" for a in plant.list_areas(db, actor=user)}
    headers = [translate(f"alarm.csv.{k}", language) for k in CSV_HEADER_KEYS]
    return language, {"actor": user, "query": ConsoleQuery.parse(request.query_params), "now": utcnow(),
                      "headers": headers, "area_names": names}


def _attachment(body: bytes, media_type: str, now: dt.datetime, suffix: str) -> Response:
    stamp = now.astimezone(BEIJING).strftime("%Y%m%d-%H%M")
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="alarms-{stamp}.{suffix}"'})


@router.get("/alarms/export.csv")
def alarm_export(request: Request, user: MaybeUser, db: Db) -> Response:
    """The console's filtered list as a CSV file, headers in the page language."""
    if user is None:
        return to_login(request)
    _, inputs = _export_inputs(request, db, user)
    return _attachment(export_csv(db, **inputs), "text/csv; charset=utf-8", inputs["now"], "csv")


@router.get("/alarms/export.xlsx")
def alarm_export_xlsx(request: Request, user: MaybeUser, db: Db) -> Response:
    """The same list as an Excel workbook (报警台账), headers and title in the page language."""
    if user is None:
        return to_login(request)
    language, inputs = _export_inputs(request, db, user)
    yes_no = (translate("alarm.xlsx.yes", language), translate("alarm.xlsx.no", language))
    body = export_xlsx(db, **inputs, title=translate("alarm.xlsx.title", language), yes_no=yes_no)
    return _attachment(body, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", inputs["now"],
                       "xlsx")


# ---------------------------------------------------------------- one alarm


def chart_span(alarm: Alarm, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The time range drawn around an alarm: some context before its raise and after its end; an
    active alarm runs up to now (at most ACTIVE_SPAN from its raise), and no chart spans more than MAX_SPAN."""
    start = alarm.first_at - BEFORE
    end = (alarm.cleared_at or alarm.last_at or alarm.first_at) + AFTER
    if alarm.active:
        end = max(end, min(now, alarm.first_at + ACTIVE_SPAN))
    return start, min(end, start + MAX_SPAN)


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def chart_points(request: Request, alarm: Alarm, start: dt.datetime, end: dt.datetime) -> list[list[float]]:
    """[[epoch ms, value], …] of the alarm's sensor from the reading store: every reading over a short
    span, bucket averages (about CHART_POINTS) over a long one."""
    if alarm.sensor_id is None:
        return []
    store = store_for(request.app.state)
    lo, hi = _ms(start), _ms(end)
    if end - start <= RAW_SPAN:
        window = store.window([alarm.sensor_id], lo, hi)
        points = zip(window.ts.tolist(), window.value.tolist(), strict=True)
    else:
        frame = store.downsample(alarm.sensor_id, lo, hi, max(1000, -(-(hi - lo) // CHART_POINTS)))
        points = zip(frame["bucket"].tolist(), frame["avg"].tolist(), strict=True)
    return [[int(ts), float(v)] for ts, v in points if v is not None and math.isfinite(v)]


def _limits(db: Session, user: User, alarm: Alarm) -> dict[str, float]:
    if alarm.sensor_id is None:
        return {}
    try:
        sensor = plant.get_sensor(db, actor=user, sensor_id=alarm.sensor_id)
    except (NotFound, OutOfScope, PermissionDenied):
        return {}
    values = {"LL": sensor.ll, "L": sensor.l, "H": sensor.h, "HH": sensor.hh}
    return {name: float(v) for name, v in values.items() if v is not None}


def chart_data(request: Request, db: Session, user: User, alarm: Alarm, now: dt.datetime) -> dict[str, Any]:
    start, end = chart_span(alarm, now)
    return {
        "tag": alarm.tag,
        "unit": alarm.unit,
        "title": alarm.reason or alarm.type,
        "start": _ms(start),
        "end": _ms(end),
        "period": [_ms(alarm.first_at), _ms(alarm.cleared_at or end)],
        "active": alarm.active,
        "limits": _limits(db, user, alarm),
        "points": chart_points(request, alarm, start, end),
    }


def _render_detail(request: Request, db: Session, user: User, alarm_id: int, *, status_code: int = 200,
                   error: str | None = None, done: str | None = None) -> Response:
    try:
        alarm = service.get(db, actor=user, alarm_id=alarm_id)
        events = service.timeline(db, actor=user, alarm_id=alarm_id)
    except (NotFound, OutOfScope):
        return _not_found(request, user)
    now = utcnow()
    people = auth_service.people_by_id(db, {alarm.acknowledged_by_id, alarm.verdict_by_id, alarm.shelved_by_id})
    return render(
        request,
        "alarms/detail.html",
        user,
        status_code=status_code,
        alarm=alarm,
        events=events,
        people=people,
        chart=chart_data(request, db, user, alarm, now),
        chart_keys=CHART_LABEL_KEYS,
        limit_names=LIMIT_NAMES,
        error=error,
        done=done,
        now=now,
        **_common(db, user),
    )


@router.get("/alarms/{alarm_id:int}")
def alarm_detail(request: Request, alarm_id: int, user: MaybeUser, db: Db, done: str | None = None) -> Response:
    if user is None:
        return to_login(request)
    shown = done if done in {"acknowledged", "verdict", "hazard", "shelved", "unshelved"} else None
    return _render_detail(request, db, user, alarm_id, done=shown)


# ---------------------------------------------------------------- actions


def _refusal(exc: Exception, t_key: str) -> str:
    return f"{t_key}|{exc}"


def _act(request: Request, db: Session, user: User | None, alarm_id: int, back: str, done: str,
         action: Any) -> Response:  # noqa: ANN401 - a callable taking no arguments
    """Run one service action and answer as the form's page expects: the row (HTMX), the detail page,
    or the list; success redirects a plain form post, a refusal re-renders with the reason."""
    if user is None:
        return to_login(request)
    error: str | None = None
    status_code = 200
    try:
        action()
    except (NotFound, OutOfScope):
        db.rollback()
        return _not_found(request, user)
    except PermissionDenied as exc:
        db.rollback()
        error, status_code = _refusal(exc, "alarm.refused.forbidden"), 403
    except Conflict as exc:
        db.rollback()
        error, status_code = _refusal(exc, "alarm.refused.conflict"), 409
    except InvalidInput as exc:
        db.rollback()
        error, status_code = _refusal(exc, "alarm.refused.invalid"), 422
    detail = back == "detail"
    if _is_htmx(request) and not detail:
        return _render_row(request, db, user, alarm_id, status_code=status_code, error=error)
    query = _console_query_of_referer(request)
    if error is None:
        shown = f"/alarms?{query.params()}" if query.any else "/alarms"
        target = f"/alarms/{alarm_id}?done={done}" if detail else f"{shown}#alarm-{alarm_id}"
        return RedirectResponse(target, status_code=303)
    if detail:
        return _render_detail(request, db, user, alarm_id, status_code=status_code, error=error)
    return _render_list(request, db, user, partial=False, status_code=status_code, errors={alarm_id: error},
                        query=query)


def _console_query_of_referer(request: Request) -> ConsoleQuery:
    """The filters of the console page a plain form was posted from, so the operator lands back on
    the same filtered list; re-read through ConsoleQuery, never echoed, so no other URL can come back."""
    referer = urlsplit(request.headers.get("referer") or "")
    if referer.path != "/alarms":
        return ConsoleQuery()
    return ConsoleQuery.parse({k: v[-1] for k, v in parse_qs(referer.query).items()})


def _render_row(request: Request, db: Session, user: User, alarm_id: int, *, status_code: int,
                error: str | None) -> Response:
    try:
        alarm = service.get(db, actor=user, alarm_id=alarm_id)
    except (NotFound, OutOfScope):
        return _not_found(request, user)
    except PermissionDenied:
        alarm = None
    return render(request, "alarms/_row.html", user, status_code=status_code, alarm=alarm, alarm_id=alarm_id,
                  errors={alarm_id: error} if error else {}, now=utcnow(), **_common(db, user))


@router.post("/alarms/{alarm_id:int}/acknowledge")
def alarm_acknowledge(request: Request, alarm_id: int, user: MaybeUser, db: Db,
                      back: Annotated[str, Form()] = "") -> Response:
    def action() -> None:
        service.acknowledge(db, actor=user, alarm_id=alarm_id)

    return _act(request, db, user, alarm_id, back, "acknowledged", action)


@router.post("/alarms/{alarm_id:int}/verdict")
def alarm_verdict(request: Request, alarm_id: int, user: MaybeUser, db: Db,
                  verdict: Annotated[str, Form()] = "", comment: Annotated[str, Form()] = "",
                  back: Annotated[str, Form()] = "") -> Response:
    def action() -> None:
        if verdict not in {v.value for v in Verdict}:
            raise InvalidInput("verdict", "choose true alarm, false alarm or sensor fault")
        if len(comment) > MAX_COMMENT:
            raise InvalidInput("comment", f"at most {MAX_COMMENT} characters")
        service.give_verdict(db, actor=user, alarm_id=alarm_id, verdict=Verdict(verdict), comment=comment.strip())

    return _act(request, db, user, alarm_id, back, "verdict", action)


@router.post("/alarms/{alarm_id:int}/to-hazard")
def alarm_to_hazard(request: Request, alarm_id: int, user: MaybeUser, db: Db,
                    back: Annotated[str, Form()] = "") -> Response:
    """The alarm becomes a hazard DRAFT, with the readings the detail chart shows as its evidence."""

    def action() -> None:
        alarm = service.get(db, actor=user, alarm_id=alarm_id)
        evidence = None
        start, end = chart_span(alarm, utcnow())
        points = chart_points(request, alarm, start, end)[:20000]
        if points:
            evidence = ChartWindow(
                timestamps=[dt.datetime.fromtimestamp(ts / 1000, dt.UTC) for ts, _ in points],
                values=[v for _, v in points],
            )
        service.to_hazard_draft(db, actor=user, alarm_id=alarm_id, evidence=evidence)

    return _act(request, db, user, alarm_id, back, "hazard", action)



@router.post("/alarms/{alarm_id:int}/shelve")
def alarm_shelve(request: Request, alarm_id: int, user: MaybeUser, db: Db,
                 hours: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                 back: Annotated[str, Form()] = "") -> Response:
    """Shelve during maintenance: recorded, never notified, for at most escalation.toml's max_hours."""

    def action() -> None:
        if not hours.isdigit() or int(hours) not in shelve_hours():
            raise InvalidInput("hours", f"choose one of {', '.join(map(str, shelve_hours()))} hours")
        if len(reason) > MAX_COMMENT:
            raise InvalidInput("reason", f"at most {MAX_COMMENT} characters")
        now = utcnow()
        service.shelve(db, actor=user, alarm_id=alarm_id, until=now + dt.timedelta(hours=int(hours)),
                       reason=reason, now=now)

    return _act(request, db, user, alarm_id, back, "shelved", action)


@router.post("/alarms/{alarm_id:int}/unshelve")
def alarm_unshelve(request: Request, alarm_id: int, user: MaybeUser, db: Db,
                   back: Annotated[str, Form()] = "") -> Response:
    def action() -> None:
        service.unshelve(db, actor=user, alarm_id=alarm_id)

    return _act(request, db, user, alarm_id, back, "unshelved", action)
