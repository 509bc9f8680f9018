"""HTTP routes of the hazard register: validation and HTTP only, each calls one service function."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from hazardloop.auth import authz
from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.hazards import intelligence, service, workflow
from hazardloop.hazards.models import (
    Hazard,
    HazardCreate,
    HazardEventRead,
    HazardRead,
    HazardSource,
    HazardState,
    ReviewUpdate,
    TransitionRequest,
)
from hazardloop.web.deps import Actor, Db

router = APIRouter(prefix="/api/v1/hazards", tags=["hazards"])


def read(hazard: Hazard, actor: User, now: dt.datetime | None = None) -> HazardRead:
    now = now or utcnow()
    result = HazardRead.model_validate(hazard)
    result.overdue, result.overdue_days = hazard.is_overdue(now), hazard.days_overdue(now)
    result.allowed = workflow.allowed(hazard, actor)
    return result


class HazardPage(BaseModel):
    total: int
    items: list[HazardRead]


class CommentCreate(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


def hazard_filter(
    area_id: int | None = None,
    responsible_person_id: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="the rectifier's user id; your own id gives 'my tasks'")
    ] = None,
    state: HazardState | None = None,
    level: str | None = None,
    major: bool | None = None,
    category: str | None = None,
    source: HazardSource | None = None,
    overdue: bool | None = None,
    open_only: bool = False,
    q: Annotated[str | None, Query(max_length=200)] = None,
    found_from: AwareDatetime | None = None,
    found_to: AwareDatetime | None = None,
    closed_from: AwareDatetime | None = None,
    closed_to: AwareDatetime | None = None,
) -> service.HazardFilter:
    return service.HazardFilter(
        area_id=area_id,
        responsible_person_id=responsible_person_id,
        state=state,
        level=level,
        major=major,
        category=category,
        source=source,
        overdue=overdue,
        open_only=open_only,
        text=q,
        found_from=found_from,
        found_to=found_to,
        closed_from=closed_from,
        closed_to=closed_to,
    )


Filters = Annotated[service.HazardFilter, Depends(hazard_filter)]


@router.get("", response_model=HazardPage)
def list_hazards(
    actor: Actor, db: Db, filters: Filters, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)
) -> HazardPage:
    rows, total = service.list_for_user(db, actor=actor, filters=filters, limit=limit, offset=offset)
    now = utcnow()
    return HazardPage(total=total, items=[read(h, actor, now) for h in rows])


@router.post("", response_model=HazardRead, status_code=201)
def report_hazard(body: HazardCreate, request: Request, actor: Actor, db: Db) -> HazardRead:
    """Report a hazard; the AI suggestion for its text is stored beside it, to be confirmed or changed by a person."""
    ai = intelligence.suggest_for(body.description, data_dir=request.app.state.settings.data_dir).as_ai_fields()
    return read(service.create(db, actor=actor, data=body, ai=ai), actor)


class SuggestRequest(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


@router.post("/suggest", response_model=intelligence.HazardSuggestion)
def suggest(body: SuggestRequest, request: Request, actor: Actor) -> intelligence.HazardSuggestion:
    """AI suggestion for a report as typed: category, GB 6441 accident type, level, each with its reason."""
    authz.require(actor, "hazard.read")
    return intelligence.suggest_for(body.text, data_dir=request.app.state.settings.data_dir)


@router.get("/patterns", response_model=list[intelligence.Pattern])
def patterns(
    actor: Actor, db: Db, days: int = Query(365, ge=7, le=3650), min_size: int = Query(3, ge=2, le=100)
) -> list[intelligence.Pattern]:
    """Recurring hazards (similar text, same area) as named clusters, for the cockpit."""
    return intelligence.recurring_patterns(db, actor=actor, days=days, min_size=min_size)


@router.get("/suggestion-accuracy")
def suggestion_accuracy(
    actor: Actor, db: Db, field: str = Query("category", pattern="^(category|accident_type|level)$")
) -> list[dict]:
    """Share of AI suggestions people kept, month by month and per model version."""
    return intelligence.suggestion_accuracy(db, actor=actor, field=field)


@router.get("/{hazard_id}", response_model=HazardRead)
def get_hazard(hazard_id: int, actor: Actor, db: Db) -> HazardRead:
    return read(service.get(db, actor=actor, hazard_id=hazard_id), actor)


@router.post("/{hazard_id}/transition", response_model=HazardRead)
def transition(hazard_id: int, body: TransitionRequest, actor: Actor, db: Db) -> HazardRead:
    return read(service.transition(db, actor=actor, hazard_id=hazard_id, request=body), actor)


@router.patch("/{hazard_id}/review", response_model=HazardRead)
def review_hazard(hazard_id: int, body: ReviewUpdate, actor: Actor, db: Db) -> HazardRead:
    """复盘 of a closed hazard: root cause, lessons, the earlier hazard it repeats."""
    return read(service.review(db, actor=actor, hazard_id=hazard_id, data=body), actor)


@router.get("/{hazard_id}/timeline", response_model=list[HazardEventRead])
def get_timeline(hazard_id: int, actor: Actor, db: Db) -> list[HazardEventRead]:
    return [HazardEventRead.model_validate(e) for e in service.timeline(db, actor=actor, hazard_id=hazard_id)]


@router.post("/{hazard_id}/comments", response_model=HazardEventRead, status_code=201)
def add_comment(hazard_id: int, body: CommentCreate, actor: Actor, db: Db) -> HazardEventRead:
    return HazardEventRead.model_validate(service.comment(db, actor=actor, hazard_id=hazard_id, text=body.text))
