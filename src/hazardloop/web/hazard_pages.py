"""Hazard screens: the register as a filterable list, one hazard with the moves open to the viewer,
and the quick report form an inspector fills in on a phone.

The pages call the same services as the API (hazards.service, workflow, attachments), so area
scopes and the workflow's role rules hold here exactly as there. This module only turns forms
into service calls and service errors into messages a person can act on, next to the form
that caused them. Which fields a move's form shows follows from the guards of its rule in
workflow.toml, so an enterprise that edits its workflow gets matching forms without code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from hazardloop.auth import authz
from hazardloop.auth import service as auth_service
from hazardloop.auth.authz import OutOfScope, PermissionDenied
from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.errors import InvalidInput, NotFound
from hazardloop.hazards import attachments, intelligence, service, workflow
from hazardloop.hazards.ledger import BEIJING
from hazardloop.hazards.models import (
    DEADLINE_STATES,
    AttachmentPhase,
    Hazard,
    HazardCreate,
    HazardSource,
    HazardState,
    TransitionRequest,
)
from hazardloop.hazards.reference import accident_types, categories, legal_level, policy
from hazardloop.plant import service as plant
from hazardloop.text.suggest import suggest as raw_suggest
from hazardloop.web.deps import Db
from hazardloop.web.i18n import catalogue, translate
from hazardloop.web.pages import MaybeUser, _language, render, task_roles, to_login

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
# Plants in China work on Beijing time; times are stored in UTC and shown (and entered) in UTC+8.
DISPLAY_TZ = BEIJING
MIN_SUGGEST_CHARS = 4  # fewer characters than this match nothing useful; don't flash an empty box

# Form sections a rule's guards call for (workflow.py GUARDS). Guards that only look at the actor
# or at stored data (major_needs_manager, has_description) need nothing from the form.
GUARD_FIELDS: dict[str, tuple[str, ...]] = {
    "has_level": ("grading",),
    "has_category": ("grading",),
    "has_accident_type": ("grading",),
    "is_general": ("grading",),
    "major_has_basis": ("grading", "basis"),
    "has_before_photo": ("photo:before",),
    "has_after_photo": ("photo:after",),
    "major_has_acceptance_report": ("photo:acceptance",),
    "has_responsible_person": ("assignee",),
    "has_measures": ("measures",),
    "has_treatment_plan": ("plan",),
    "has_five_implementations": ("five",),
    "has_note": ("note_required",),
    "has_reason_or_duplicate": ("reason",),
    "has_later_deadline": ("new_deadline",),
    "has_interim_measures": ("interim",),
    "has_decision": ("decision",),
}
# Guards that check nothing unless the hazard is a major one. Their form sections are left out
# of a general hazard's form: a required "acceptance report" upload there would block the
# officer's Accept button (browser validation) for a document the workflow does not ask for.
MAJOR_ONLY_GUARDS = frozenset({"major_has_acceptance_report"})
EVENT_KINDS = ("attachment", "comment", "escalation", "evidence", "import", "reminder", "transition")
TEXT_FIELDS = (
    "level",
    "category",
    "accident_type",
    "judgement_basis",
    "responsible_department",
    "measures",
    "interim_measures",
)


# ---------------------------------------------------------------- small shared pieces


def local_time(value: dt.datetime | None, with_time: bool = True) -> str:
    """A stored UTC time as a plant person reads it (Beijing time), or an em dash."""
    if value is None:
        return "—"
    shown = value.astimezone(DISPLAY_TZ)
    return shown.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def _end_of_day(text: str, field_name: str) -> dt.datetime | None:
    """A deadline typed as a date means the end of that day on site (23:59 Beijing time)."""
    if not text.strip():
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError as exc:
        raise FormInvalid(field_name, "not_a_date", "not a date (YYYY-MM-DD)") from exc
    return dt.datetime.combine(day, dt.time(23, 59), tzinfo=DISPLAY_TZ).astimezone(dt.UTC)


def _name(item: Any, lang: str) -> str:  # noqa: ANN401 - any reference row with name_zh / name_en
    if item is None:
        return "—"
    return item.name_zh if lang == "zh-CN" else (item.name_en or item.name_zh)


def _people(db: Session, ids: set[int | None]) -> dict[int, User]:
    return auth_service.people_by_id(db, ids)


def _assignable(db: Session, area_id: int) -> list[User]:
    """The people the assign form offers. service.transition to ASSIGNED accepts any active
    person (not a machine account) who can see the hazard's area, and refuses anyone else with
    the field named; the list narrows that to the roles workflow.toml lets make the next move
    (ASSIGNED → RECTIFYING), so whoever is chosen can actually start the rectification."""
    return sorted(auth_service.users_for(db, roles=sorted(task_roles()), area_id=area_id), key=lambda u: u.display_name)


def _not_found(request: Request, user: User) -> Response:
    """A hazard outside the user's areas answers like a missing one: whether it exists is not told."""
    return render(request, "hazards/message.html", user, status_code=404, message="hazard.not_found")


# ---------------------------------------------------------------- errors a person reads


class FormInvalid(InvalidInput):
    """A form value this module refuses itself, with the catalogue key (hazard.error.<key>) that
    says why in the page's language. The English message keeps InvalidInput's meaning for logs."""

    def __init__(self, field: str, key: str, message: str, **values: object):
        super().__init__(field, message)
        self.key, self.values = key, values


# The services explain a refusal in English (the API's language). Each field below has one thing a
# form can get wrong about it that the service refuses, so the field names the catalogue entry;
# anything else is shown as hazard.error.invalid, with the service's own words as the tooltip.
SERVICE_FIELD_ERRORS = {
    "deadline": "deadline_future",
    "responsible_person_id": "responsible_unavailable",
    "duplicate_of": "duplicate_self",
    "approved": "no_pending_extension",
    "text": "comment_empty",
    "file": "file_refused",  # attachments: empty, not a photo or PDF, too large, damaged
}
# Pydantic's error types for the length and presence checks of HazardCreate / TransitionRequest.
VALIDATION_ERRORS = {"string_too_short": "too_short", "string_too_long": "too_long", "missing": "required"}
# Form fields whose label is a hazard.field.* entry under another name.
FIELD_LABELS = {"responsible_person_id": "responsible_person", "area_id": "area", "text": "comment"}


def field_label(field_name: str | None, lang: str) -> str:
    """The field's label in the page's language, or "" for a name the catalogue does not know."""
    key = f"hazard.field.{FIELD_LABELS.get(field_name or '', field_name)}"
    return translate(key, lang) if field_name and key in catalogue(lang) else ""


def form_error(exc: Exception, lang: str, target: str | None = None) -> dict[str, Any]:
    """What the page says about a refused form: its field, a catalogue message in the page's
    language, and the service's own (English) words as `detail`, the banner's tooltip, which is
    what support and the API logs quote."""
    key, values, field_name, detail = "invalid", {}, None, str(exc)
    if isinstance(exc, FormInvalid):
        key, values, field_name, detail = exc.key, exc.values, exc.field, exc.message
    elif isinstance(exc, InvalidInput):
        key, field_name, detail = SERVICE_FIELD_ERRORS.get(exc.field, "invalid"), exc.field, exc.message
    elif isinstance(exc, ValidationError):
        error = exc.errors()[0]
        field_name = str(error["loc"][0]) if error.get("loc") else None
        key, detail = VALIDATION_ERRORS.get(error.get("type", ""), "invalid"), error.get("msg", "")
        context = error.get("ctx") or {}
        values = {"min": context.get("min_length", ""), "max": context.get("max_length", "")}
    elif isinstance(exc, PermissionDenied):
        key = "forbidden"
    elif isinstance(exc, (NotFound, OutOfScope)):  # a form reaches these through its area only
        key, field_name = "area_not_visible", "area_id"
    return {
        "target": target,
        "field": field_name,
        "label": field_label(field_name, lang),
        "message": translate(f"hazard.error.{key}", lang, **values),
        "detail": detail,
    }


# ---------------------------------------------------------------- the list


def _day(value: str | None) -> dt.date | None:
    """A plant day from the URL (YYYY-MM-DD); anything else is dropped like other stale filters."""
    try:
        return dt.date.fromisoformat((value or "").strip()) if value else None
    except ValueError:
        return None


def _plant_midnight(day: dt.date | None) -> dt.datetime | None:
    """Days are plant days (Beijing time), as the cockpit counts them."""
    return None if day is None else dt.datetime.combine(day, dt.time(), tzinfo=BEIJING).astimezone(dt.UTC)


@dataclass(frozen=True)
class ListQuery:
    """The list's filters as they travel in the URL (the API's parameter names, so the export
    links carry them unchanged). Unknown values are dropped, not refused: a shared link that has
    gone stale still opens.

    "My tasks" travels as mine=true rather than as a user id, so the one link (in the navigation,
    or sent round a team) shows each person their own tasks; `me` is the viewer it was parsed for.
    """

    area_id: int | None = None
    mine: bool = False
    me: int | None = None
    state: HazardState | None = None
    level: str | None = None
    category: str | None = None
    source: HazardSource | None = None
    overdue: bool | None = None
    open: bool = False
    found_from: dt.date | None = None
    found_to: dt.date | None = None
    closed_from: dt.date | None = None
    closed_to: dt.date | None = None
    q: str = ""
    page: int = 1

    @classmethod
    def parse(cls, params: Any, me: int | None = None) -> ListQuery:  # noqa: ANN401 - Starlette QueryParams
        def pick(name: str, allowed: Any) -> str | None:  # noqa: ANN401
            value = (params.get(name) or "").strip()
            return value if value and value in allowed else None

        area = (params.get("area_id") or "").strip()
        page = (params.get("page") or "").strip()
        state = pick("state", {s.value for s in HazardState})
        source = pick("source", {s.value for s in HazardSource})
        overdue = pick("overdue", {"true", "false"})
        return cls(
            area_id=int(area) if area.isdigit() and len(area) < 10 else None,
            mine=me is not None and (params.get("mine") or "").strip() == "true",
            me=me,
            state=HazardState(state) if state else None,
            level=pick("level", policy().levels),
            category=pick("category", categories()),
            source=HazardSource(source) if source else None,
            overdue=None if overdue is None else overdue == "true",
            open=(params.get("open") or "").strip() == "true",
            found_from=_day(params.get("found_from")),
            found_to=_day(params.get("found_to")),
            closed_from=_day(params.get("closed_from")),
            closed_to=_day(params.get("closed_to")),
            q=(params.get("q") or "").strip()[:200],
            page=max(1, min(int(page), 100_000)) if page.isdigit() and len(page) < 7 else 1,
        )

    def filters(self) -> service.HazardFilter:
        return service.HazardFilter(
            area_id=self.area_id,
            responsible_person_id=self.me if self.mine else None,
            state=self.state,
            level=self.level,
            category=self.category,
            source=self.source,
            overdue=self.overdue,
            open_only=self.open,
            found_from=_plant_midnight(self.found_from),
            found_to=_plant_midnight(self.found_to),
            closed_from=_plant_midnight(self.closed_from),
            closed_to=_plant_midnight(self.closed_to),
            text=self.q or None,
        )

    def api_params(self) -> str:
        """The same filters in the REST API's terms (open_only, zone-qualified times), for the export links."""
        f = self.filters()
        values = {
            "area_id": f.area_id,
            "responsible_person_id": f.responsible_person_id,
            "state": f.state.value if f.state else None,
            "level": f.level,
            "category": f.category,
            "source": f.source.value if f.source else None,
            "overdue": None if f.overdue is None else str(f.overdue).lower(),
            "open_only": "true" if f.open_only else None,
            "q": f.text,
            **{
                name: getattr(f, name).isoformat()
                for name in ("found_from", "found_to", "closed_from", "closed_to")
                if getattr(f, name) is not None
            },
        }
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    def chips(self) -> list[tuple[str, dict[str, str], str]]:
        """The filters a cockpit number links with that the filter bar has no control for, as
        (catalogue key under hazard.filter., its values, this list's query without them): the
        page shows each one, with a link that removes it, so a narrowed total never looks like
        the whole register. The *_to days are exclusive in the URL and shown as the last day."""
        def span(first: dt.date | None, end: dt.date | None) -> dict[str, str]:
            last = end - dt.timedelta(days=1) if end else None
            return {"first": first.isoformat() if first else "…", "last": last.isoformat() if last else "…"}

        chips = []
        if self.open:
            chips.append(("open_only", {}, self.params(open=None, page=None)))
        if self.found_from or self.found_to:
            chips.append(("found_between", span(self.found_from, self.found_to),
                          self.params(found_from=None, found_to=None, page=None)))
        if self.closed_from or self.closed_to:
            chips.append(("closed_between", span(self.closed_from, self.closed_to),
                          self.params(closed_from=None, closed_to=None, page=None)))
        return chips

    def params(self, **changes: Any) -> str:  # noqa: ANN401
        """The query string of these filters (without empty ones), page included unless it is 1."""
        values = {
            "area_id": self.area_id,
            "mine": "true" if self.mine else None,
            "state": self.state.value if self.state else None,
            "level": self.level,
            "category": self.category,
            "source": self.source.value if self.source else None,
            "overdue": None if self.overdue is None else str(self.overdue).lower(),
            "open": "true" if self.open else None,
            "found_from": self.found_from.isoformat() if self.found_from else None,
            "found_to": self.found_to.isoformat() if self.found_to else None,
            "closed_from": self.closed_from.isoformat() if self.closed_from else None,
            "closed_to": self.closed_to.isoformat() if self.closed_to else None,
            "q": self.q or None,
            "page": self.page if self.page > 1 else None,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})


def _list_context(db: Session, user: User, query: ListQuery, now: dt.datetime) -> dict[str, Any]:
    offset = (query.page - 1) * PAGE_SIZE
    rows, total = service.list_for_user(
        db, actor=user, filters=query.filters(), limit=PAGE_SIZE, offset=offset, now=now
    )
    overdue_total = total
    if query.overdue is not True:
        overdue_filter = service.HazardFilter(**{**query.filters().__dict__, "overdue": True})
        _, overdue_total = service.list_for_user(db, actor=user, filters=overdue_filter, limit=1, now=now)
    pages = max(1, -(-total // PAGE_SIZE))
    return {
        "rows": rows,
        # who rectifies each row, so a rectifier picks out their own tasks in an area's register
        "responsible": _people(db, {r.responsible_person_id for r in rows}),
        "total": total,
        "overdue_total": overdue_total,
        "query": query,
        "pages": pages,
        "first": offset + 1 if rows else 0,
        "last": offset + len(rows),
        "export": query.api_params(),
        "now": now,
    }


@router.get("/hazards")
def hazard_list(request: Request, user: MaybeUser, db: Db) -> Response:
    """The register. An HTMX filter change gets only the results block; a full load (shared
    link, reload, history restore) gets the whole page with the same results."""
    if user is None:
        return to_login(request)
    query = ListQuery.parse(request.query_params, me=user.id)
    context = _list_context(db, user, query, utcnow())
    areas = {a.id: a for a in plant.list_areas(db, actor=user)}
    partial = request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request")
    return render(
        request,
        "hazards/_results.html" if partial else "hazards/list.html",
        user,
        areas=areas,
        states=list(HazardState),
        levels=policy().levels,
        categories=categories(),
        sources=list(HazardSource),
        local_time=local_time,
        named=_name,
        can_report=authz.has_permission(user, "hazard.report"),
        can_export=authz.has_permission(user, "hazard.export"),
        **context,
    )


# ---------------------------------------------------------------- one hazard


@dataclass
class Move:
    """One move the viewer may make now, with the form sections its rule's guards ask for."""

    target: HazardState
    name: str
    sections: set[str] = field(default_factory=set)
    photo_phases: list[str] = field(default_factory=list)


def moves_for(hazard: Hazard, user: User, lang: str) -> list[Move]:
    """Exactly the moves workflow.allowed() grants this user now, in the workflow's order."""
    state = HazardState(hazard.state)
    legal = legal_level(hazard.level)
    moves = []
    for target in workflow.allowed(hazard, user):
        rules = [
            r
            for r in workflow.rules()
            if r.source is state and r.target is target and (r.legal is None or legal is None or r.legal == legal)
        ]
        move = Move(target=target, name=(rules[0].name_zh if lang == "zh-CN" else rules[0].name_en) if rules else "")
        for rule in rules:
            for guard in rule.guards:
                if guard in MAJOR_ONLY_GUARDS and not hazard.is_major:
                    continue
                move.sections.update(GUARD_FIELDS.get(guard, ()))
        move.photo_phases = sorted(s.split(":", 1)[1] for s in move.sections if s.startswith("photo:"))
        moves.append(move)
    return moves


def _ai_rows(hazard: Hazard, lang: str) -> list[dict[str, str]]:
    """What the model suggested next to what a person confirmed, per field (domain.md §2.5, AI/feedback)."""
    suggestion = hazard.ai_suggestion if isinstance(hazard.ai_suggestion, dict) else {}
    confirmed = hazard.human_confirmed if isinstance(hazard.human_confirmed, dict) else {}
    lookups = {"category": categories(), "accident_type": accident_types(), "level": policy().levels}
    rows = []
    for key, names in lookups.items():
        ai_value = suggestion.get(key)
        ai_code = ai_value.get("code") if isinstance(ai_value, dict) else None
        human_code = confirmed.get(key)
        if ai_code is None and human_code is None:
            continue
        rows.append(
            {
                "field": key,
                "ai": _name(names.get(ai_code), lang) if ai_code else "—",
                "human": _name(names.get(human_code), lang) if human_code else "—",
                "agree": "" if not (ai_code and human_code) else ("yes" if ai_code == human_code else "no"),
            }
        )
    return rows


def _detail_context(db: Session, user: User, hazard: Hazard, lang: str) -> dict[str, Any]:
    now = utcnow()
    photos: dict[str, list] = {}
    for item in attachments.list_attachments(db, actor=user, hazard_id=hazard.id):
        photos.setdefault(item.phase, []).append(item)
    events = service.timeline(db, actor=user, hazard_id=hazard.id)
    people = _people(
        db,
        {
            hazard.responsible_person_id,
            hazard.confirmed_by_id,
            hazard.accepted_by_id,
            hazard.plan_approved_by_id,
            # the timeline names people as the rest of the page does, not by their login name
            *(e.actor_id for e in events),
        },
    )
    duplicate = None
    duplicate_id = hazard.duplicate_of_id or hazard.possible_duplicate_of_id
    if duplicate_id:
        try:
            duplicate = service.get(db, actor=user, hazard_id=duplicate_id)
        except (NotFound, OutOfScope):
            duplicate = None
    rule_names = {
        (r.source.value, r.target.value): (r.name_zh if lang == "zh-CN" else r.name_en) for r in workflow.rules()
    }
    moves = moves_for(hazard, user, lang)
    needs_people = any("assignee" in m.sections for m in moves)
    return {
        "hazard": hazard,
        "area": plant.get_area(db, actor=user, area_id=hazard.area_id),
        "photos": photos,
        "phases": [p.value for p in AttachmentPhase],
        "events": events,
        "event_kinds": EVENT_KINDS,
        "rule_names": rule_names,
        "people": people,
        "duplicate": duplicate,
        "moves": moves,
        "assignable": _assignable(db, hazard.area_id) if needs_people else [],
        "levels": policy().levels,
        "categories": categories(),
        "accident_types": accident_types(),
        "plan_parts": workflow.TREATMENT_PLAN_PARTS,
        "five_parts": workflow.FIVE_IMPLEMENTATIONS,
        "ai_rows": _ai_rows(hazard, lang),
        "overdue": hazard.is_overdue(now),
        "overdue_days": hazard.days_overdue(now),
        "deadline_states": DEADLINE_STATES,
        "default_days": policy().deadline_days,
        "min_date": now.astimezone(DISPLAY_TZ).date().isoformat(),
        "can_comment": authz.has_permission(user, "hazard.comment"),
        "local_time": local_time,
        "named": _name,
    }


def _render_detail(
    request: Request,
    db: Session,
    user: User,
    hazard_id: int,
    status_code: int = 200,
    **extra: Any,  # noqa: ANN401
) -> Response:
    try:
        hazard = service.get(db, actor=user, hazard_id=hazard_id)
    except (NotFound, OutOfScope):
        return _not_found(request, user)
    context = _detail_context(db, user, hazard, _language(request, user))
    return render(request, "hazards/detail.html", user, status_code=status_code, **{**context, **extra})


@router.get("/hazards/{hazard_id:int}")
def hazard_detail(
    request: Request, hazard_id: int, user: MaybeUser, db: Db, done: str | None = None, reported: int = 0
) -> Response:
    if user is None:
        return to_login(request)
    done_state = done if done in {s.value for s in HazardState} else None
    return _render_detail(request, db, user, hazard_id, done=done_state, reported=bool(reported))


def _int_field(form: FormData, name: str) -> int | None:
    value = str(form.get(name) or "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 12:
        raise FormInvalid(name, "not_a_number", "not a number")
    return int(value)


def _money(form: FormData, name: str) -> float | None:
    value = str(form.get(name) or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise FormInvalid(name, "not_a_number", "not a number") from exc


def _parts(form: FormData, prefix: str, names: tuple[str, ...]) -> dict[str, str] | None:
    if not any(f"{prefix}_{n}" in form for n in names):
        return None
    return {n: str(form.get(f"{prefix}_{n}") or "").strip() for n in names}


def transition_request(form: FormData, target: HazardState) -> TransitionRequest:
    """The service's request from the submitted form; empty fields are left out so that what
    the hazard already holds (level, measures, …) stays as it is."""
    data: dict[str, Any] = {"to": target, "note": str(form.get("note") or "").strip()}
    for name in TEXT_FIELDS:
        value = str(form.get(name) or "").strip()
        if value:
            data[name] = value
    for name in ("responsible_person_id", "duplicate_of"):
        if (number := _int_field(form, name)) is not None:
            data[name] = number
    for name in ("funds_budget", "funds_actual"):
        if (amount := _money(form, name)) is not None:
            data[name] = amount
    if (deadline := _end_of_day(str(form.get("deadline") or ""), "deadline")) is not None:
        data["deadline"] = deadline
    if (decision := form.get("approved")) in ("true", "false"):
        data["approved"] = decision == "true"
    if (plan := _parts(form, "plan", workflow.TREATMENT_PLAN_PARTS)) is not None:
        data["treatment_plan"] = plan
        data["production_suspended"] = form.get("production_suspended") == "on"
    if (five := _parts(form, "five", workflow.FIVE_IMPLEMENTATIONS)) is not None:
        data["five_implementations"] = five
    return TransitionRequest(**data)  # a ValidationError names its field; form_error words it


def _store_photos(request: Request, db: Session, user: User, hazard_id: int, form: FormData, phases: list[str]) -> None:
    """Store the photos a move asked for before the move itself, since its guard looks for them.

    If the move is then refused, the photos stay: they are evidence either way, and the person
    does not have to take them again.
    """
    settings = request.app.state.settings
    for phase in phases:
        for upload in form.getlist(f"photo_{phase}"):
            if not isinstance(upload, UploadFile) or not upload.filename:
                continue
            attachments.add_attachment(
                db,
                actor=user,
                hazard_id=hazard_id,
                content=upload.file.read(settings.max_upload_bytes + 1),
                filename=upload.filename,
                phase=AttachmentPhase(phase),
                data_dir=settings.data_dir,
                max_bytes=settings.max_upload_bytes,
            )


def refusal_message(db: Session, hazard: Hazard, move: TransitionRequest, user: User, lang: str, fallback: str) -> str:
    """Why the workflow refused a move, in the page's language.

    The workflow explains itself in English (the API's language); the page names the first
    guard of the move's rules that fails, through the catalogue (hazard.refused.<guard>). A
    reason with no catalogue entry (a guard an enterprise added) is shown as the workflow gave it.
    """
    context = workflow.Context(
        now=utcnow(), actor_role=user.role_enum, attachment_phases=service.attachment_phases(db, hazard.id)
    )
    state = HazardState(hazard.state)
    for rule in workflow.rules():
        if rule.source is not state or rule.target is not move.to:
            continue
        failing = next((g for g in rule.guards if workflow.GUARDS[g](hazard, move, context)), None)
        if failing is not None:
            text = translate(f"hazard.refused.{failing}", lang)
            return fallback if text == f"hazard.refused.{failing}" else text
    return fallback


def _move(request: Request, db: Session, user: User, hazard_id: int, form: FormData) -> Response:
    target_value = str(form.get("to") or "")
    if target_value not in {s.value for s in HazardState}:
        return _render_detail(request, db, user, hazard_id, status_code=422)
    target = HazardState(target_value)
    submitted = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    try:
        hazard = service.get(db, actor=user, hazard_id=hazard_id)
        move = next((m for m in moves_for(hazard, user, _language(request, user)) if m.target is target), None)
        _store_photos(request, db, user, hazard_id, form, move.photo_phases if move else [])
        service.transition(db, actor=user, hazard_id=hazard_id, request=transition_request(form, target))
    except (NotFound, OutOfScope):
        return _not_found(request, user)
    except workflow.TransitionRefused as exc:
        db.rollback()
        lang = _language(request, user)
        refused = service.get(db, actor=user, hazard_id=hazard_id)
        message = refusal_message(db, refused, transition_request(form, target), user, lang, exc.reason)
        # the workflow's own words stay as the banner's tooltip: what support and the API logs quote
        error = {"target": target.value, "field": None, "label": "", "message": message, "detail": exc.reason}
        return _render_detail(request, db, user, hazard_id, status_code=409, error=error, submitted=submitted)
    except (InvalidInput, ValidationError) as exc:
        db.rollback()
        error = form_error(exc, _language(request, user), target.value)
        return _render_detail(request, db, user, hazard_id, status_code=422, error=error, submitted=submitted)
    except PermissionDenied as exc:
        db.rollback()
        error = form_error(exc, _language(request, user), target.value)
        return _render_detail(request, db, user, hazard_id, status_code=403, error=error, submitted=submitted)
    return RedirectResponse(f"/hazards/{hazard_id}?done={target.value}", status_code=303)


@router.post("/hazards/{hazard_id:int}/move")
async def hazard_move(request: Request, hazard_id: int, user: MaybeUser, db: Db) -> Response:
    """One move of the lifecycle from its form (photos included, hence multipart). Success
    redirects (a reload does not repeat the move); a refusal re-renders the page with the reason
    beside the form and the typed values kept."""
    if user is None:
        return to_login(request)
    form = await request.form()
    try:
        return await run_in_threadpool(_move, request, db, user, hazard_id, form)
    finally:
        await form.close()


@router.post("/hazards/{hazard_id:int}/comment")
def hazard_comment(
    request: Request, hazard_id: int, user: MaybeUser, db: Db, text: Annotated[str, Form(max_length=4000)] = ""
) -> Response:
    if user is None:
        return to_login(request)
    try:
        service.comment(db, actor=user, hazard_id=hazard_id, text=text)
    except (NotFound, OutOfScope):
        return _not_found(request, user)
    except (InvalidInput, PermissionDenied) as exc:
        db.rollback()
        error = form_error(exc, _language(request, user), "comment")
        return _render_detail(request, db, user, hazard_id, status_code=422, error=error)
    return RedirectResponse(f"/hazards/{hazard_id}#timeline", status_code=303)


# ---------------------------------------------------------------- reporting


def _suggestion_context(request: Request, text: str) -> dict[str, Any]:
    """The AI suggestion as the report form shows it. The category goes into the hidden field
    only when it is one of the register's categories; a text-model label the reference data does
    not know (yet) is shown as words, never sent as a code."""
    text = text.strip()
    if len(text) < MIN_SUGGEST_CHARS:
        return {"suggestion": None, "loose_category": None}
    try:
        suggestion = intelligence.suggest_for(text[:4000], data_dir=request.app.state.settings.data_dir)
    except ValueError:  # text.normalize refuses text it cannot work on; no suggestion is the honest answer
        return {"suggestion": None, "loose_category": None}
    loose = None
    if suggestion.category is None:
        raw = raw_suggest(text[:4000]).category
        loose = raw if raw is not None and raw.label not in categories() else None
    return {"suggestion": suggestion, "loose_category": loose, "levels": policy().levels}


@router.post("/hazards/suggest")
def report_suggestion(
    request: Request, user: MaybeUser, description: Annotated[str, Form(max_length=8000)] = ""
) -> Response:
    """The suggestion box of the report form, fetched (debounced) as the reporter types."""
    if user is None:
        return to_login(request)
    return render(request, "hazards/_suggestion.html", user, **_suggestion_context(request, description))


def _report_form(
    request: Request,
    db: Session,
    user: User,
    status_code: int = 200,
    **extra: Any,  # noqa: ANN401
) -> Response:
    areas = plant.list_areas(db, actor=user)
    return render(
        request,
        "hazards/new.html",
        user,
        status_code=status_code,
        areas=areas,
        named=_name,
        **extra,
    )


@router.get("/hazards/new")
def report_page(request: Request, user: MaybeUser, db: Db, area: str | None = None) -> Response:
    """The quick report form; ?area=CODE (a QR code on site) preselects the area."""
    if user is None:
        return to_login(request)
    if not authz.has_permission(user, "hazard.report"):
        return render(request, "hazards/message.html", user, status_code=403, message="hazard.report_not_allowed")
    chosen = next((a.id for a in plant.list_areas(db, actor=user) if area and a.code == area), None)
    return _report_form(request, db, user, values={"area_id": chosen})


def _check_photo(content: bytes, max_bytes: int) -> None:
    """The checks add_attachment makes, run before the hazard is created, each refusal with the
    catalogue entry that tells the reporter what to do about it."""
    if len(content) > max_bytes:
        limit = f"{max_bytes / 2**20:g} MiB" if max_bytes >= 2**20 else f"{max_bytes / 2**10:g} KiB"
        raise FormInvalid("photo", "photo_too_large", f"the photo is larger than the {limit} upload limit", limit=limit)
    try:
        kind = attachments.sniff(content)
    except InvalidInput as exc:
        raise FormInvalid("photo", "photo_not_image", exc.message) from exc
    if kind.pillow_format is None:
        raise FormInvalid("photo", "photo_not_image", "this is not a photo; attach a JPEG, PNG or WebP picture")
    try:
        attachments.inspect_image(content, kind)
    except InvalidInput as exc:
        # HEIC/AVIF fail mostly because this server cannot decode them; the camera setting is the fix
        key = "photo_heic" if kind in (attachments.HEIC, attachments.AVIF) else "photo_unreadable"
        raise FormInvalid("photo", key, exc.message) from exc


def _report(request: Request, db: Session, user: User, form: FormData) -> Response:
    values = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    description = str(form.get("description") or "").strip()
    accepted = form.get("accept_ai") == "on"
    category = str(form.get("ai_category") or "") if accepted else ""
    level = str(form.get("ai_level") or "") if accepted else ""
    lang = _language(request, user)
    try:
        area_id = _int_field(form, "area_id")
        if area_id is None:
            raise FormInvalid("area_id", "area_required", "choose the area")
        data = HazardCreate(
            area_id=area_id,
            description=description,
            location=str(form.get("location") or "").strip()[:255],
            category=category if category in categories() else None,
            level=level if level in policy().levels else None,
        )
    except (InvalidInput, ValidationError) as exc:
        return _report_form(request, db, user, 422, values=values, error=form_error(exc, lang))
    photo = form.get("photo")
    content = b""
    settings = request.app.state.settings
    if isinstance(photo, UploadFile) and photo.filename:
        content = photo.file.read(settings.max_upload_bytes + 1)
        try:  # refuse a bad photo before the hazard exists, so a retry does not report it twice
            _check_photo(content, settings.max_upload_bytes)
        except InvalidInput as exc:
            return _report_form(request, db, user, 422, values=values, error=form_error(exc, lang))
    try:
        ai = intelligence.suggest_for(description, data_dir=settings.data_dir).as_ai_fields()
    except ValueError:
        ai = None
    try:
        hazard = service.create(db, actor=user, data=data, ai=ai)
    except (InvalidInput, NotFound, OutOfScope, PermissionDenied) as exc:
        db.rollback()
        return _report_form(request, db, user, 422, values=values, error=form_error(exc, lang))
    if content:
        attachments.add_attachment(
            db,
            actor=user,
            hazard_id=hazard.id,
            content=content,
            filename=photo.filename,
            phase=AttachmentPhase.BEFORE,
            data_dir=settings.data_dir,
            max_bytes=settings.max_upload_bytes,
        )
    return RedirectResponse(f"/hazards/{hazard.id}?reported=1", status_code=303)


@router.post("/hazards/new")
async def report_submit(request: Request, user: MaybeUser, db: Db) -> Response:
    """Create the hazard (REPORTED), store the AI suggestion beside it and the photo as 整改前."""
    if user is None:
        return to_login(request)
    form = await request.form()
    try:
        return await run_in_threadpool(_report, request, db, user, form)
    finally:
        await form.close()
