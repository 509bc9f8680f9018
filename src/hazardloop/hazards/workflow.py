"""The hazard state machine, read from hazards/data/workflow.toml.

A move is allowed when a rule links the two states, the actor's role is listed, the actor
relation holds (the responsible person rectifies; someone else accepts), the rule fits the
hazard's legal level, and every guard passes. A refusal names what *is* allowed now and why
this move is not, so a person can act on it.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from hazardloop.auth.models import User
from hazardloop.auth.roles import Role
from hazardloop.hazards.models import Hazard, HazardState, TransitionRequest
from hazardloop.hazards.reference import accident_types, categories, legal_level, policy

TREATMENT_PLAN_PARTS = ("goals", "methods", "funds_and_materials", "organisation", "time_limit", "safety_measures")
FIVE_IMPLEMENTATIONS = ("responsibility", "measures", "funds", "time_limit", "emergency_plan")


@dataclass(frozen=True)
class Rule:
    source: HazardState
    target: HazardState
    name_zh: str
    name_en: str
    roles: frozenset[Role]
    actor: str = "any"
    legal: str | None = None
    guards: tuple[str, ...] = ()


@dataclass
class Context:
    """What the guards may look at besides the hazard and the request."""

    now: dt.datetime
    actor_role: Role
    attachment_phases: set[str] = field(default_factory=set)


class TransitionRefused(Exception):
    """HTTP 409: the move is not allowed; carries what is allowed instead."""

    def __init__(self, state: HazardState, requested: HazardState, reason: str, allowed: list[HazardState]):
        self.state, self.requested, self.reason, self.allowed = state, requested, reason, allowed
        super().__init__(f"{state} → {requested} refused: {reason}")

    def detail(self) -> dict:
        return {
            "message": str(self),
            "state": self.state.value,
            "requested": self.requested.value,
            "reason": self.reason,
            "allowed": [s.value for s in self.allowed],
        }


@lru_cache(maxsize=1)
def rules() -> tuple[Rule, ...]:
    raw = tomllib.loads((resources.files("hazardloop.hazards") / "data" / "workflow.toml").read_text("utf-8"))
    built = []
    for item in raw["rule"]:
        sources = item["from"] if isinstance(item["from"], list) else [item["from"]]
        for source in sources:
            built.append(
                Rule(
                    HazardState(source),
                    HazardState(item["to"]),
                    item["name_zh"],
                    item["name_en"],
                    frozenset(Role(r) for r in item["roles"]),
                    item.get("actor", "any"),
                    item.get("legal"),
                    tuple(item.get("guards", ())),
                )
            )
    unknown = {g for r in built for g in r.guards} - GUARDS.keys()
    if unknown:
        raise ValueError(f"workflow.toml names unknown guard(s): {', '.join(sorted(unknown))}")
    return tuple(built)


def _legal(hazard: Hazard, request: TransitionRequest | None = None) -> str:
    level = (request.level if request and request.level else None) or hazard.level
    return legal_level(level) or "general"


def _actor_fits(rule: Rule, hazard: Hazard, actor: User) -> str | None:
    if Role(actor.role) not in rule.roles:
        return f"role '{actor.role}' may not do this; roles that may: {', '.join(sorted(rule.roles))}"
    is_responsible = hazard.responsible_person_id == actor.id
    if rule.actor == "responsible" and not is_responsible:
        return "only the responsible person (整改责任人) may do this"
    if rule.actor == "not_responsible" and is_responsible:
        return "the responsible person may not judge their own rectification (谁整改不验收)"
    return None


def _matching(hazard: Hazard, target: HazardState) -> list[Rule]:
    return [r for r in rules() if r.source == HazardState(hazard.state) and r.target == target]


def allowed(hazard: Hazard, actor: User, request: TransitionRequest | None = None) -> list[HazardState]:
    """The states this actor may move the hazard to now (guards on request data aside)."""
    legal = _legal(hazard, request)
    targets = []
    for rule in rules():
        if rule.source != HazardState(hazard.state) or rule.target in targets:
            continue
        if rule.legal and rule.legal != legal and hazard.level is not None:
            continue
        if _actor_fits(rule, hazard, actor) is not None:
            continue
        context = Context(now=hazard.updated_at, actor_role=Role(actor.role))
        if all(GUARDS[g](hazard, request or TransitionRequest(to=rule.target), context) is None
               for g in rule.guards if g in ACTOR_GUARDS):
            targets.append(rule.target)
    return targets


def check(hazard: Hazard, request: TransitionRequest, actor: User, context: Context) -> Rule:
    """The rule that allows this move, or TransitionRefused with the reason and the alternatives."""
    state = HazardState(hazard.state)
    candidates = _matching(hazard, request.to)
    reasons: list[str] = []
    if not candidates:
        reasons.append(f"there is no move from {state} to {request.to}")
    for rule in candidates:
        if rule.legal and rule.legal != _legal(hazard, request):
            reasons.append(f"this move is only for {rule.legal} hazards")
            continue
        problem = _actor_fits(rule, hazard, actor)
        if problem is None:
            problem = next((msg for g in rule.guards if (msg := GUARDS[g](hazard, request, context))), None)
        if problem is None:
            return rule
        reasons.append(problem)
    raise TransitionRefused(state, request.to, "; ".join(reasons), allowed(hazard, actor, request))


def default_deadline(hazard: Hazard, request: TransitionRequest, now: dt.datetime) -> dt.datetime:
    days = policy().deadline_days[_legal(hazard, request)]
    return now + dt.timedelta(days=days)


# ---------------------------------------------------------------- guards: None = fine, else why not

Guard = Callable[[Hazard, TransitionRequest, Context], str | None]


def _level(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    level = r.level or h.level
    if level is None:
        return "a level (level) is required"
    if level not in policy().levels:
        return f"unknown level '{level}'; known: {', '.join(policy().levels)}"
    return None


def _category(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    value = r.category or h.category
    if value is None:
        return "a category (category) is required"
    return None if value in categories() else f"unknown category '{value}'"


def _accident_type(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    value = r.accident_type or h.accident_type
    if value is None:
        return "a GB 6441 accident type (accident_type) is required"
    return None if value in accident_types() else f"unknown GB 6441 accident type '{value}'"


def _major_basis(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    if _legal(h, r) == "major" and not (r.judgement_basis or h.judgement_basis):
        return "a major hazard needs its judgement basis (judgement_basis: standard and clause)"
    return None


def _general(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    return None if _legal(h, r) == "general" else "only general hazards may be closed on the spot"


def _photo(phase: str, words: str) -> Guard:
    def guard(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
        return None if phase in c.attachment_phases else f"a {words} photo must be attached first"

    return guard


def _responsible(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    if not (r.responsible_person_id or h.responsible_person_id):
        return "a responsible person (responsible_person_id) is required"
    return None


def _measures(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    return None if (r.measures or h.measures) else "rectification measures (measures) are required"


def _parts(value: dict | None, required: tuple[str, ...], what: str) -> str | None:
    missing = [p for p in required if not (value or {}).get(p, "").strip()]
    return f"{what} lacks: {', '.join(missing)}" if missing else None


def _plan(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    return _parts(r.treatment_plan or h.treatment_plan, TREATMENT_PLAN_PARTS, "the treatment plan (治理方案)")


def _five(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    return _parts(r.five_implementations or h.five_implementations, FIVE_IMPLEMENTATIONS, "五落实")


def _note(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    return None if r.note.strip() else "a note (note) explaining this step is required"


def _reason_or_duplicate(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    return None if (r.note.strip() or r.duplicate_of) else "give a reason (note) or the duplicate (duplicate_of)"


def _later_deadline(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    if r.deadline is None:
        return "the requested new deadline (deadline) is required"
    if h.deadline is not None and r.deadline <= h.deadline:
        return "the new deadline must be later than the current one"
    return None


def _interim(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    return None if (r.interim_measures or "").strip() else "interim measures (interim_measures) are required"


def _decision(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    return None if r.approved is not None else "say whether the extension is approved (approved: true/false)"


def _major_needs_manager(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    if h.is_major and c.actor_role is not Role.SAFETY_MANAGER:
        return "a major hazard's extension is decided by the safety manager (主要负责人)"
    return None


def _acceptance_report(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    if h.is_major and "acceptance" not in c.attachment_phases:
        return "a major hazard needs its evaluation / acceptance report attached (phase 'acceptance')"
    return None


def _description(h: Hazard, r: TransitionRequest, c: Context) -> str | None:
    return None if len(h.description.strip()) >= 2 else "a description is required"


# Guards that depend on who acts, not on what the request carries: allowed() applies them too.
ACTOR_GUARDS = frozenset({"major_needs_manager"})

GUARDS: dict[str, Guard] = {
    "has_level": _level,
    "has_category": _category,
    "has_accident_type": _accident_type,
    "major_has_basis": _major_basis,
    "is_general": _general,
    "has_before_photo": _photo("before", "before-rectification (整改前)"),
    "has_after_photo": _photo("after", "after-rectification (整改后)"),
    "has_responsible_person": _responsible,
    "has_measures": _measures,
    "has_treatment_plan": _plan,
    "has_five_implementations": _five,
    "has_note": _note,
    "has_reason_or_duplicate": _reason_or_duplicate,
    "has_later_deadline": _later_deadline,
    "has_interim_measures": _interim,
    "has_decision": _decision,
    "major_needs_manager": _major_needs_manager,
    "major_has_acceptance_report": _acceptance_report,
    "has_description": _description,
}
