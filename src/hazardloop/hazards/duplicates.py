"""The register's duplicate guard: hands plain records to the text domain's similarity finder."""

from __future__ import annotations

import datetime as dt

from hazardloop.hazards.models import Hazard
from hazardloop.text.duplicates import duplicate_guard
from hazardloop.text.records import HazardText

# An open hazard is still there however old it is, so the window spans the whole open backlog.
OPEN_HAZARD_WINDOW = dt.timedelta(days=3650)


def _record(hazard: Hazard) -> HazardText:
    return HazardText(
        id=str(hazard.id), area_id=str(hazard.area_id), text=hazard.description, reported_at=hazard.found_at
    )


def most_similar(hazard: Hazard, open_hazards: list[Hazard]) -> Hazard | None:
    """The open hazard in the same area that this one most likely repeats, if any."""
    if not open_hazards:
        return None
    matches = duplicate_guard(_record(hazard), [_record(h) for h in open_hazards], window=OPEN_HAZARD_WINDOW)
    if not matches:
        return None
    by_id = {str(h.id): h for h in open_hazards}
    return by_id[matches[0].other_id]
