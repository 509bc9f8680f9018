"""Build hazards directly in a given state, with everything a move out of that state may need."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from hazardloop.hazards.models import (
    Attachment,
    AttachmentPhase,
    ExtensionRequest,
    Hazard,
    HazardState,
    TransitionRequest,
)
from hazardloop.hazards.service import next_number
from hazardloop.hazards.workflow import FIVE_IMPLEMENTATIONS, TREATMENT_PLAN_PARTS

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)


def make_hazard(db: Session, *, state: HazardState, area_id: int, responsible_id: int | None, major: bool = False,
                photos: bool = True, deadline: dt.datetime | None = None, description: str = "配电箱未接地") -> Hazard:
    level = "major" if major else "general"
    hazard = Hazard(number=next_number(db, NOW.year), state=state.value, area_id=area_id, source="report",
                    description=description, found_at=NOW - dt.timedelta(days=10), reporter_name="test",
                    created_at=NOW, updated_at=NOW, level=level, is_major=major, category="electrical",
                    accident_type="05", judgement_basis="工贸10号令 第四条" if major else None,
                    responsible_person_id=responsible_id, measures="加装接地线", responsible_department="维修车间",
                    deadline=deadline or NOW + dt.timedelta(days=5))
    db.add(hazard)
    db.flush()
    if photos:
        for phase in AttachmentPhase:
            db.add(Attachment(hazard_id=hazard.id, sha256="0" * 64, filename=f"{phase}.jpg",
                              content_type="image/jpeg", size=1, phase=phase.value, uploaded_at=NOW))
    if state is HazardState.EXTENSION_REQUESTED:
        db.add(ExtensionRequest(hazard_id=hazard.id, requested_at=NOW, reason="备件未到", interim_measures="警示",
                                old_deadline=hazard.deadline, new_deadline=hazard.deadline + dt.timedelta(days=7)))
    db.commit()
    return hazard


def full_request(to: HazardState, *, responsible_id: int, major: bool = False) -> TransitionRequest:
    """A request carrying every field any move may ask for, so that only role and relation decide."""
    return TransitionRequest(
        to=to, note="说明", level="major" if major else "general", category="electrical", accident_type="05",
        judgement_basis="工贸10号令 第四条", responsible_person_id=responsible_id, measures="加装接地线",
        interim_measures="设置警示", deadline=NOW + dt.timedelta(days=30), approved=True,
        treatment_plan={p: "内容" for p in TREATMENT_PLAN_PARTS},
        five_implementations={p: "内容" for p in FIVE_IMPLEMENTATIONS},
    )
