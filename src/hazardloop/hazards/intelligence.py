"""Where the hazard register meets the text models: suggestions, recurring patterns, learned labels.

The text domain works on plain records; this module hands it the register's hazards (through
the register's own service, so area scopes hold) and maps its answers onto the register's
reference codes.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.hazards import service
from hazardloop.hazards.models import HazardState
from hazardloop.hazards.reference import accident_types, categories
from hazardloop.plant import service as plant
from hazardloop.text.clusters import cluster_hazards
from hazardloop.text.feedback import Label, accuracy_over_time
from hazardloop.text.level import Level
from hazardloop.text.modelfile import TextModel, load_model
from hazardloop.text.records import HazardText
from hazardloop.text.suggest import suggest

CATEGORY_MODEL_FILE = "models/hazard_category.hlm"
LEVEL_CODES = {Level.GENERAL: "general", Level.MAJOR: "major"}


class SuggestedCode(BaseModel):
    code: str
    name_zh: str
    name_en: str
    confidence: float | None
    model: str
    model_version: str
    explanation: list[str]


class LevelAdvice(BaseModel):
    code: str
    citations: list[str]
    explanation: str


class HazardSuggestion(BaseModel):
    category: SuggestedCode | None
    accident_type: SuggestedCode | None
    level: LevelAdvice

    def as_ai_fields(self) -> dict[str, Any]:
        """The hazard's AI fields, stored so that the human's final grading can be compared with it."""
        first = self.category or self.accident_type
        return {
            "model": first.model if first else "rules",
            "version": first.model_version if first else "",
            "suggestion": self.model_dump(mode="json"),
            "confidence": first.confidence if first else None,
        }


def _category_model(data_dir: Path | None) -> TextModel | None:
    """The enterprise's trained model, if any — loaded once per file version, not on every keystroke."""
    path = data_dir / CATEGORY_MODEL_FILE if data_dir else None
    if path is None or not path.exists():
        return None
    return _load_cached(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load_cached(path: Path, mtime_ns: int) -> TextModel:  # mtime in the key: a retrained file is reloaded
    return load_model(path)


def _coded(prediction: Any, names: dict) -> SuggestedCode | None:  # noqa: ANN401 - text.classifier.Prediction
    if prediction is None or prediction.label not in names:
        return None  # a label the enterprise's reference data does not know is no suggestion to show
    ref = names[prediction.label]
    return SuggestedCode(
        code=ref.code,
        name_zh=ref.name_zh,
        name_en=ref.name_en,
        confidence=prediction.confidence,
        model=prediction.model,
        model_version=prediction.model_version,
        explanation=list(prediction.explanation),
    )


def suggest_for(text: str, *, data_dir: Path | None = None) -> HazardSuggestion:
    """Category, GB 6441 accident type and level for a report as typed, each with its reason."""
    result = suggest(text, model=_category_model(data_dir))
    level = result.level
    return HazardSuggestion(
        category=_coded(result.category, categories()),
        accident_type=_coded(result.accident_type, accident_types()),
        level=LevelAdvice(
            code=LEVEL_CODES[level.level], citations=[m.citation for m in level.matches], explanation=level.explanation
        ),
    )


class Pattern(BaseModel):
    name: str
    area_id: int
    recurrence: str
    terms: list[str]
    hazard_ids: list[int]
    first: dt.datetime
    last: dt.datetime


def recurring_patterns(
    db: Session, *, actor: User, days: int = 365, min_size: int = 3, now: dt.datetime | None = None
) -> list[Pattern]:
    """Named clusters of similar hazards per area over the last `days`, for the cockpit."""
    now = now or utcnow()
    rows, _ = service.list_for_user(
        db, actor=actor, limit=None, now=now, filters=service.HazardFilter(found_from=now - dt.timedelta(days=days))
    )
    rows = [h for h in rows if h.state not in (HazardState.REJECTED.value, HazardState.CANCELLED.value)]
    names = {str(a.id): a.name_zh for a in plant.list_areas(db, actor=actor)}
    clusters = cluster_hazards(
        [HazardText(str(h.id), str(h.area_id), h.description, h.found_at) for h in rows],
        area_names=names,
        min_size=min_size,
    )
    return [
        Pattern(
            name=c.name,
            area_id=int(c.area_id),
            recurrence=c.recurrence,
            terms=list(c.terms),
            hazard_ids=[int(i) for i in c.ids],
            first=c.first,
            last=c.last,
        )
        for c in clusters
    ]


def confirmed_labels(db: Session, *, actor: User) -> list[Label]:
    """Every human grading of a hazard that carried an AI suggestion: the labels to retrain and to score by."""
    rows, _ = service.list_for_user(db, actor=actor, limit=None)
    labels = []
    for hazard in rows:
        suggestion, confirmed = hazard.ai_suggestion or {}, hazard.human_confirmed or {}
        if not suggestion or not confirmed:
            continue
        at = dt.datetime.fromisoformat(confirmed["at"]) if confirmed.get("at") else hazard.updated_at
        for field in ("category", "accident_type", "level"):
            proposed = (suggestion.get(field) or {}).get("code")
            if proposed and confirmed.get(field):
                labels.append(
                    Label(
                        text=hazard.description,
                        suggested=proposed,
                        confirmed=confirmed[field],
                        model_version=hazard.ai_model_version or "",
                        at=at,
                        field=field,
                        hazard_id=str(hazard.id),
                        person=confirmed.get("by", ""),
                    )
                )
    return labels


def suggestion_accuracy(db: Session, *, actor: User, field: str = "category") -> list[dict[str, Any]]:
    """Share of suggestions people kept, month by month (the cockpit's model-quality line)."""
    points = accuracy_over_time(confirmed_labels(db, actor=actor), field=field)
    return [
        {"period": p.period, "model_version": p.model_version, "n": p.n, "accepted": p.accepted, "accuracy": p.accuracy}
        for p in points
    ]
