"""The hazard register. The only code that touches the hazard tables (ledger.py and attachments.py
are parts of this domain and share that right).

Every function takes the acting user; area scopes and the workflow's role rules are checked
here, so the API, the pages, the scheduler and other domains pass the same gate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from hazardloop.auth import audit, authz
from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.errors import Conflict, InvalidInput, NotFound
from hazardloop.hazards import workflow
from hazardloop.hazards.models import (
    DEADLINE_STATES,
    OPEN_STATES,
    Attachment,
    ExtensionRequest,
    Hazard,
    HazardCounter,
    HazardCreate,
    HazardEvent,
    HazardSource,
    HazardState,
    ReviewUpdate,
    TransitionRequest,
)
from hazardloop.hazards.reference import categories, legal_level, policy
from hazardloop.plant import service as plant

SYSTEM_NAME = "system"


# ---------------------------------------------------------------- numbering and timeline


def next_number(db: Session, year: int) -> str:
    """YH-<year>-<seq>, allocated under a row lock so concurrent reports never share a number."""
    counter = db.execute(select(HazardCounter).where(HazardCounter.year == year).with_for_update()).scalar_one_or_none()
    if counter is None:
        counter = HazardCounter(year=year, last=0)
        db.add(counter)
    counter.last += 1
    return f"YH-{year}-{counter.last:05d}"


def add_event(
    db: Session,
    hazard: Hazard,
    *,
    actor: User | None,
    kind: str,
    at: dt.datetime,
    note: str = "",
    from_state: str | None = None,
    to_state: str | None = None,
    data: dict | None = None,
) -> None:
    db.add(
        HazardEvent(
            hazard_id=hazard.id,
            at=at,
            actor_id=actor.id if actor else None,
            actor_name=actor.username if actor else SYSTEM_NAME,
            kind=kind,
            note=note,
            from_state=from_state,
            to_state=to_state,
            data=data,
        )
    )


# ---------------------------------------------------------------- reading


def get(db: Session, *, actor: User, hazard_id: int) -> Hazard:
    authz.require(actor, "hazard.read")
    hazard = db.get(Hazard, hazard_id)
    if hazard is None:
        raise NotFound(f"hazard {hazard_id} not found")
    authz.require_area(actor, hazard.area_id, f"hazard {hazard_id}")
    return hazard


@dataclass(frozen=True)
class HazardFilter:
    area_id: int | None = None
    # whose rectification task it is: "my tasks" is this set to the viewer's own id
    responsible_person_id: int | None = None
    state: HazardState | None = None
    states: tuple[HazardState, ...] | None = None
    level: str | None = None
    major: bool | None = None
    category: str | None = None
    source: HazardSource | None = None
    overdue: bool | None = None
    open_only: bool = False
    text: str | None = None
    found_from: dt.datetime | None = None
    found_to: dt.datetime | None = None
    closed_from: dt.datetime | None = None
    closed_to: dt.datetime | None = None


def _filtered(actor: User, f: HazardFilter, now: dt.datetime) -> Select:
    query = select(Hazard)
    visible = authz.visible_area_ids(actor)
    if visible is not None:
        query = query.where(Hazard.area_id.in_(visible))
    if f.area_id is not None:
        query = query.where(Hazard.area_id == f.area_id)
    if f.responsible_person_id is not None:
        query = query.where(Hazard.responsible_person_id == f.responsible_person_id)
    if f.state is not None:
        query = query.where(Hazard.state == f.state.value)
    if f.states:
        query = query.where(Hazard.state.in_([s.value for s in f.states]))
    if f.open_only:
        query = query.where(Hazard.state.in_([s.value for s in OPEN_STATES]))
    if f.level is not None:
        query = query.where(Hazard.level == f.level)
    if f.major is not None:
        query = query.where(Hazard.is_major == f.major)
    if f.category is not None:
        query = query.where(Hazard.category == f.category)
    if f.source is not None:
        query = query.where(Hazard.source == f.source.value)
    if f.found_from is not None:
        query = query.where(Hazard.found_at >= f.found_from)
    if f.found_to is not None:
        query = query.where(Hazard.found_at < f.found_to)
    if f.closed_from is not None:
        query = query.where(Hazard.closed_at >= f.closed_from)
    if f.closed_to is not None:
        query = query.where(Hazard.closed_at < f.closed_to)
    if f.text:
        pattern = f"%{f.text}%"
        query = query.where(
            or_(Hazard.description.ilike(pattern), Hazard.number.ilike(pattern), Hazard.location.ilike(pattern))
        )
    if f.overdue is not None:
        overdue = (
            Hazard.deadline.is_not(None)
            & (Hazard.deadline < now)
            & Hazard.state.in_([s.value for s in DEADLINE_STATES])
        )
        query = query.where(overdue if f.overdue else ~overdue)
    return query


def list_for_user(
    db: Session,
    *,
    actor: User,
    filters: HazardFilter | None = None,
    limit: int | None = 100,
    offset: int = 0,
    now: dt.datetime | None = None,
) -> tuple[list[Hazard], int]:
    """The hazards this actor may see that match the filters, newest first, and their total count."""
    authz.require(actor, "hazard.read")
    query = _filtered(actor, filters or HazardFilter(), now or utcnow())
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    query = query.order_by(Hazard.found_at.desc(), Hazard.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(db.scalars(query)), total


def timeline(db: Session, *, actor: User, hazard_id: int) -> list[HazardEvent]:
    get(db, actor=actor, hazard_id=hazard_id)
    return list(
        db.scalars(
            select(HazardEvent).where(HazardEvent.hazard_id == hazard_id).order_by(HazardEvent.at, HazardEvent.id)
        )
    )


def attachment_phases(db: Session, hazard_id: int) -> set[str]:
    return set(db.scalars(select(Attachment.phase).where(Attachment.hazard_id == hazard_id).distinct()))


# ---------------------------------------------------------------- creating


def _validate_classification(category: str | None, level: str | None) -> None:
    if category is not None and category not in categories():
        raise InvalidInput("category", f"unknown category '{category}'")
    if level is not None and level not in policy().levels:
        raise InvalidInput("level", f"unknown level '{level}'")


def create(
    db: Session,
    *,
    actor: User | None,
    data: HazardCreate,
    now: dt.datetime | None = None,
    ai: dict[str, Any] | None = None,
) -> Hazard:
    """Register a hazard: REPORTED (or DRAFT). actor=None is the system itself (an AI/alarm candidate),
    which may only create drafts: a named person must submit it."""
    now = now or utcnow()
    if actor is not None:
        authz.require(actor, "hazard.report")
        plant.get_area(db, actor=actor, area_id=data.area_id)
    elif data.submit:
        raise InvalidInput("submit", "the system may only create drafts; a person submits them")
    if data.equipment_id is not None and actor is not None:
        equipment = plant.get_equipment(db, actor=actor, equipment_id=data.equipment_id)
        if equipment.area_id != data.area_id:
            raise InvalidInput("equipment_id", "the equipment is not in this area")
    _validate_classification(data.category, data.level)
    found_at = data.found_at or now
    if found_at > now + dt.timedelta(minutes=5):
        raise InvalidInput("found_at", "lies in the future")
    state = HazardState.REPORTED if data.submit else HazardState.DRAFT
    hazard = Hazard(
        number=next_number(db, found_at.year),
        state=state.value,
        area_id=data.area_id,
        equipment_id=data.equipment_id,
        location=data.location,
        source=data.source.value,
        source_ref=data.source_ref,
        description=data.description,
        found_at=found_at,
        reporter_id=actor.id if actor else None,
        reporter_name=actor.display_name if actor else SYSTEM_NAME,
        created_at=now,
        updated_at=now,
        category=data.category,
        level=data.level,
        is_major=legal_level(data.level) == "major",
    )
    if ai:
        hazard.ai_model, hazard.ai_model_version = ai.get("model"), ai.get("version")
        hazard.ai_suggestion, hazard.ai_confidence = ai.get("suggestion"), ai.get("confidence")
    db.add(hazard)
    db.flush()
    if state is HazardState.REPORTED:
        flag_possible_duplicate(db, hazard)
    add_event(db, hazard, actor=actor, kind="transition", at=now, to_state=state.value, note="created")
    audit.record(
        db, actor=actor, action="hazard.create", target_type="hazard", target_id=hazard.id, after=audit.snapshot(hazard)
    )
    db.commit()
    return hazard


def create_draft_from_signal(
    db: Session,
    *,
    area_id: int,
    description: str,
    source: HazardSource,
    source_ref: str,
    evidence: dict[str, Any] | None = None,
    ai: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> Hazard:
    """What the alarm console and camera pipeline call: a DRAFT with its evidence, for a person to submit."""
    data = HazardCreate(area_id=area_id, description=description, source=source, source_ref=source_ref, submit=False)
    hazard = create(db, actor=None, data=data, now=now, ai={**(ai or {}), "evidence": evidence} if evidence else ai)
    if evidence:
        add_event(db, hazard, actor=None, kind="evidence", at=now or utcnow(), data=evidence)
        db.commit()
    return hazard


# ---------------------------------------------------------------- duplicate guard


def _open_in_area(db: Session, hazard: Hazard) -> list[Hazard]:
    return list(
        db.scalars(
            select(Hazard).where(
                Hazard.area_id == hazard.area_id,
                Hazard.id != hazard.id,
                Hazard.state.in_([s.value for s in OPEN_STATES if s is not HazardState.DRAFT]),
            )
        )
    )


def flag_possible_duplicate(db: Session, hazard: Hazard) -> Hazard | None:
    """Mark the most similar open hazard at the same place, for the person who triages the report.

    Only a flag: a person decides (reject as duplicate, or keep both).
    """
    from hazardloop.hazards.duplicates import most_similar

    match = most_similar(hazard, _open_in_area(db, hazard))
    hazard.possible_duplicate_of_id = match.id if match else None
    return match


# ---------------------------------------------------------------- moving along the lifecycle


def transition(
    db: Session, *, actor: User, hazard_id: int, request: TransitionRequest, now: dt.datetime | None = None
) -> Hazard:
    """Move a hazard along its lifecycle, or explain why the actor may not (workflow.TransitionRefused)."""
    now = now or utcnow()
    hazard = get(db, actor=actor, hazard_id=hazard_id)
    context = workflow.Context(now=now, actor_role=actor.role_enum, attachment_phases=attachment_phases(db, hazard.id))
    workflow.check(hazard, request, actor, context)
    before = audit.snapshot(hazard)
    source = HazardState(hazard.state)
    _apply_effects(db, hazard, source, request, actor, now)
    hazard.state = request.to.value
    hazard.updated_at = now
    add_event(
        db,
        hazard,
        actor=actor,
        kind="transition",
        at=now,
        from_state=source.value,
        to_state=request.to.value,
        note=request.note,
    )
    audit.record(
        db,
        actor=actor,
        action="hazard.transition",
        target_type="hazard",
        target_id=hazard.id,
        before=before,
        after=audit.snapshot(hazard),
        note=f"{source} → {request.to}: {request.note}",
    )
    db.commit()
    return hazard


def _classify(hazard: Hazard, request: TransitionRequest, actor: User, now: dt.datetime) -> None:
    hazard.level = request.level or hazard.level
    hazard.is_major = legal_level(hazard.level) == "major"
    hazard.category = request.category or hazard.category
    hazard.accident_type = request.accident_type or hazard.accident_type
    hazard.judgement_basis = request.judgement_basis or hazard.judgement_basis
    hazard.confirmed_by_id, hazard.confirmed_at = actor.id, now
    # the human verdict on an AI suggestion is the label that retrains the text models
    hazard.human_confirmed = {
        "category": hazard.category,
        "level": hazard.level,
        "accident_type": hazard.accident_type,
        "by": actor.username,
        "at": now.isoformat(),
    }


def _assign(db: Session, hazard: Hazard, request: TransitionRequest, now: dt.datetime) -> None:
    person_id = request.responsible_person_id or hazard.responsible_person_id
    person = db.get(User, person_id)
    if person is None or not person.is_active or person.is_machine:
        raise InvalidInput("responsible_person_id", f"no active person with id {person_id}")
    if not authz.can_see_area(person, hazard.area_id):
        raise InvalidInput(
            "responsible_person_id", f"{person.username} has no access to this hazard's area; grant the area first"
        )
    hazard.responsible_person_id = person.id
    hazard.responsible_department = request.responsible_department or hazard.responsible_department or person.department
    hazard.measures = request.measures or hazard.measures
    hazard.interim_measures = request.interim_measures or hazard.interim_measures
    hazard.funds_budget = request.funds_budget if request.funds_budget is not None else hazard.funds_budget
    deadline = request.deadline or workflow.default_deadline(hazard, request, now)
    if deadline <= now:
        raise InvalidInput("deadline", "the deadline must lie in the future")
    hazard.deadline = deadline


def _apply_effects(
    db: Session, hazard: Hazard, source: HazardState, request: TransitionRequest, actor: User, now: dt.datetime
) -> None:
    target = request.to
    if target is HazardState.REPORTED:
        flag_possible_duplicate(db, hazard)
    elif target is HazardState.CONFIRMED:
        _classify(hazard, request, actor, now)
    elif target is HazardState.REJECTED:
        if request.duplicate_of is not None:
            master = get(db, actor=actor, hazard_id=request.duplicate_of)
            if master.id == hazard.id:
                raise InvalidInput("duplicate_of", "a hazard cannot duplicate itself")
            hazard.duplicate_of_id = master.id
        hazard.rejected_reason = request.note or f"duplicate of {hazard.duplicate_of_id}"
    elif target is HazardState.PLAN_PENDING:
        hazard.treatment_plan = request.treatment_plan or hazard.treatment_plan
        hazard.five_implementations = request.five_implementations or hazard.five_implementations
        if request.production_suspended is not None:
            hazard.production_suspended = request.production_suspended
    elif target is HazardState.ASSIGNED:
        _assign(db, hazard, request, now)
        if source is HazardState.PLAN_PENDING:
            hazard.plan_approved_by_id, hazard.plan_approved_at = actor.id, now
    elif target is HazardState.EXTENSION_REQUESTED:
        db.add(
            ExtensionRequest(
                hazard_id=hazard.id,
                requested_by_id=actor.id,
                requested_at=now,
                reason=request.note,
                interim_measures=request.interim_measures or "",
                old_deadline=hazard.deadline,
                new_deadline=request.deadline,
            )
        )
        hazard.interim_measures = request.interim_measures
    elif target is HazardState.RECTIFYING and source is HazardState.EXTENSION_REQUESTED:
        _decide_extension(db, hazard, request, actor, now)
    elif target is HazardState.RECTIFYING and source is HazardState.PENDING_ACCEPTANCE:
        hazard.acceptance_opinion = request.note
    elif target is HazardState.PENDING_ACCEPTANCE:
        hazard.completed_at, hazard.completion_note = now, request.note
        if request.funds_actual is not None:
            hazard.funds_actual = request.funds_actual
    elif target is HazardState.CLOSED:
        if source is HazardState.REPORTED:  # 立查立改: found and fixed on the spot
            _classify(hazard, request, actor, now)
            hazard.fast_path = True
            hazard.completed_at = now
        hazard.accepted_by_id, hazard.accepted_at = actor.id, now
        hazard.acceptance_opinion = request.note or hazard.acceptance_opinion
        hazard.closed_at = now
    elif target is HazardState.REOPENED:
        hazard.reopen_count += 1
        hazard.closed_at = None
        hazard.accepted_at = hazard.accepted_by_id = None


def _decide_extension(db: Session, hazard: Hazard, request: TransitionRequest, actor: User, now: dt.datetime) -> None:
    pending = db.scalar(
        select(ExtensionRequest)
        .where(ExtensionRequest.hazard_id == hazard.id, ExtensionRequest.decided_at.is_(None))
        .order_by(ExtensionRequest.id.desc())
    )
    if pending is None:
        raise InvalidInput("approved", "no pending extension request")
    pending.decided_by_id, pending.decided_at = actor.id, now
    pending.approved, pending.decision_note = request.approved, request.note
    if request.approved:
        hazard.deadline = pending.new_deadline


def review(db: Session, *, actor: User, hazard_id: int, data: ReviewUpdate, now: dt.datetime | None = None) -> Hazard:
    """Record the 复盘 of a closed hazard: root cause, lessons, and the earlier hazard it repeats."""
    authz.require(actor, "hazard.review")
    hazard = get(db, actor=actor, hazard_id=hazard_id)
    if HazardState(hazard.state) is not HazardState.CLOSED:
        raise Conflict(f"a review (复盘) follows the close; this hazard is {hazard.state}")
    changes = data.model_dump(exclude_unset=True)
    if changes.get("repeat_of_id") is not None:
        earlier = get(db, actor=actor, hazard_id=changes["repeat_of_id"])
        if earlier.id == hazard.id:
            raise InvalidInput("repeat_of_id", "a hazard cannot repeat itself")
    before = audit.snapshot(hazard)
    for key, value in changes.items():
        setattr(hazard, key, value)
    now = now or utcnow()
    hazard.updated_at = now
    add_event(db, hazard, actor=actor, kind="review", at=now, note=(data.root_cause or "")[:200])
    audit.record(
        db,
        actor=actor,
        action="hazard.review",
        target_type="hazard",
        target_id=hazard.id,
        before=before,
        after=audit.snapshot(hazard),
    )
    db.commit()
    return hazard


def comment(db: Session, *, actor: User, hazard_id: int, text: str, now: dt.datetime | None = None) -> HazardEvent:
    authz.require(actor, "hazard.comment")
    hazard = get(db, actor=actor, hazard_id=hazard_id)
    if not text.strip():
        raise InvalidInput("text", "a comment cannot be empty")
    now = now or utcnow()
    add_event(db, hazard, actor=actor, kind="comment", at=now, note=text.strip()[:4000])
    audit.record(
        db, actor=actor, action="hazard.comment", target_type="hazard", target_id=hazard.id, note=text.strip()[:4000]
    )
    db.commit()
    return db.scalars(
        select(HazardEvent).where(HazardEvent.hazard_id == hazard.id).order_by(HazardEvent.id.desc())
    ).first()
