"""HTTP routes of the alarm console: validation and HTTP only, each calls one service function."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from hazardloop.alarms import service
from hazardloop.alarms.models import (
    AcknowledgeRequest,
    Alarm,
    AlarmDetail,
    AlarmEventRead,
    AlarmRead,
    ChartWindow,
    Severity,
    ShelveRequest,
    VerdictRequest,
)
from hazardloop.web.deps import Actor, Db

router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])


class AlarmPage(BaseModel):
    total: int
    items: list[AlarmRead]


class HazardLink(BaseModel):
    alarm: AlarmRead
    hazard_id: int


def _one_of(values: tuple[str, ...]) -> str:
    """A query pattern accepting exactly these words, so a typo is a 422 naming the parameter."""
    return f"^({'|'.join(values)})$"


def alarm_filter(
    active: bool | None = None,
    acknowledged: bool | None = None,
    area_id: int | None = None,
    severity: Severity | None = None,
    sensor_id: int | None = None,
    type: Annotated[str | None, Query(max_length=48, description="one exact alarm type, e.g. limit_hh")] = None,
    shelved: bool | None = None,
    verdict: Annotated[str | None, Query(pattern=_one_of(service.VERDICT_FILTERS),
                                         description="a person's verdict; 'none' = not judged yet")] = None,
    type_family: Annotated[str | None, Query(pattern=_one_of(service.TYPE_FAMILIES),
                                             description="sensor_fault includes 'silent'")] = None,
    raised_from: Annotated[AwareDatetime | None, Query(description="first raised at or after (with zone)")] = None,
    raised_to: Annotated[AwareDatetime | None, Query(description="first raised before (with zone)")] = None,
) -> service.AlarmFilter:
    return service.AlarmFilter(active=active, acknowledged=acknowledged, area_id=area_id, severity=severity,
                               sensor_id=sensor_id, type=type, shelved=shelved, verdict=verdict,
                               type_family=type_family, raised_from=raised_from, raised_to=raised_to)


Filters = Annotated[service.AlarmFilter, Depends(alarm_filter)]


def _read(alarm: Alarm) -> AlarmRead:
    return AlarmRead.model_validate(alarm)


@router.get("", response_model=AlarmPage)
def list_alarms(actor: Actor, db: Db, filters: Filters, limit: int = Query(50, ge=1, le=500),
                offset: int = Query(0, ge=0)) -> AlarmPage:
    """The console list: active first, then newest; ``acknowledged=false`` is the unacknowledged queue.

    The same filters as the 报警台 (/alarms) and its CSV export, all combined with AND:

    - ``verdict``: ``true_alarm``, ``false_alarm``, ``sensor_fault``, or ``none`` for alarms nobody has judged;
    - ``type_family``: ``limit`` (limit_hh/h/l/ll), ``statistical``, or ``sensor_fault`` (every
      ``sensor_fault:<kind>`` and ``silent``); ``type`` still picks one exact type;
    - ``raised_from`` / ``raised_to``: ISO 8601 times with a zone (``2026-11-28T00:00:00+08:00``, the ``+``
      sent as ``%2B``, or ``...Z``) bounding when the alarm was first raised, as [raised_from, raised_to).
      The cockpit's alarm numbers count over such a window.
    """
    rows, total = service.list_for_user(db, actor=actor, filters=filters, limit=limit, offset=offset)
    return AlarmPage(total=total, items=[_read(a) for a in rows])


@router.post("/recalibrate")
def recalibrate(actor: Actor, db: Db, request: Request) -> list[dict]:
    """Learn from people's verdicts: recompute each judged sensor's statistical limit (bounded; the
    configured L/LL/H/HH limits never move). Returns every judged sensor, changed or not. The running
    live detection applies the new limits from its next batch."""
    from dataclasses import asdict

    from hazardloop.alarms import learning
    from hazardloop.db import utcnow

    results = learning.recalibrate(db, now=utcnow(), actor=actor)
    feed = getattr(request.app.state, "live_feed", None)
    if feed is not None:
        feed.reload_calibration()
    return [asdict(c) | {"changed": c.changed} for c in results]


class RelearnRequest(BaseModel):
    hours: float = Field(24.0, description="Hours of stored readings before now to learn normal from (1-720)")


@router.post("/relearn", status_code=202)
def relearn(body: RelearnRequest, actor: Actor, db: Db, request: Request) -> dict:
    """Learn each sensor's normal afresh from the last ``hours`` of readings, after a process change
    (turnaround, new recipe). Stored and audited; the process running live detection applies it within a
    minute. Verdict-learned and configured limits stay. Needs ``sensor.write``."""
    from hazardloop.alarms import learning
    from hazardloop.db import utcnow

    learning.request_relearn(db, actor=actor, hours=body.hours, now=utcnow())
    feed = getattr(request.app.state, "live_feed", None)
    if feed is not None:
        feed.reload_calibration()  # wakes its housekeeping, which picks the request up
    return {"requested": True, "hours": body.hours}


@router.get("/{alarm_id}", response_model=AlarmDetail)
def get_alarm(alarm_id: int, actor: Actor, db: Db) -> AlarmDetail:
    alarm = service.get(db, actor=actor, alarm_id=alarm_id)
    events = [AlarmEventRead.model_validate(e) for e in service.timeline(db, actor=actor, alarm_id=alarm_id)]
    return AlarmDetail(**_read(alarm).model_dump(), events=events)


@router.post("/{alarm_id}/acknowledge", response_model=AlarmRead)
def acknowledge(alarm_id: int, body: AcknowledgeRequest, actor: Actor, db: Db) -> AlarmRead:
    return _read(service.acknowledge(db, actor=actor, alarm_id=alarm_id, note=body.note))


@router.post("/{alarm_id}/verdict", response_model=AlarmRead)
def verdict(alarm_id: int, body: VerdictRequest, actor: Actor, db: Db) -> AlarmRead:
    return _read(service.give_verdict(db, actor=actor, alarm_id=alarm_id, verdict=body.verdict,
                                      comment=body.comment))


@router.post("/{alarm_id}/shelve", response_model=AlarmRead)
def shelve(alarm_id: int, body: ShelveRequest, actor: Actor, db: Db) -> AlarmRead:
    return _read(service.shelve(db, actor=actor, alarm_id=alarm_id, until=body.until, reason=body.reason))


@router.post("/{alarm_id}/unshelve", response_model=AlarmRead)
def unshelve(alarm_id: int, actor: Actor, db: Db) -> AlarmRead:
    return _read(service.unshelve(db, actor=actor, alarm_id=alarm_id))


@router.post("/{alarm_id}/to-hazard", response_model=HazardLink, status_code=201)
def to_hazard(alarm_id: int, actor: Actor, db: Db, body: ChartWindow | None = None) -> HazardLink:
    """Turn the alarm into a hazard DRAFT with the chart around it (the readings the console shows) as evidence."""
    hazard_id = service.to_hazard_draft(db, actor=actor, alarm_id=alarm_id, evidence=body)
    alarm = service.get(db, actor=actor, alarm_id=alarm_id)
    return HazardLink(alarm=_read(alarm), hazard_id=hazard_id)
