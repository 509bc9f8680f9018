"""The plain hazard record that the duplicate finder and the clusterer take.

The hazard register (hazards/, to come) owns the real table; it hands these in, so the text
domain never reads another domain's tables (ARCHITECTURE §3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from hazardloop.text.normalize import check_text


@dataclass(frozen=True)
class HazardText:
    id: str
    area_id: str
    text: str
    reported_at: datetime


def as_utc(moment: datetime) -> datetime:
    """Aware datetimes as they are, naive ones read as UTC, so the two kinds can be compared."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def checked(records: Iterable[HazardText]) -> list[HazardText]:
    """The records as a list, each text checked (errors name the record id)."""
    out = list(records)
    for r in out:
        check_text(r.text, where=f"hazard {r.id}")
        if not isinstance(r.reported_at, datetime):
            raise TypeError(f"hazard {r.id}: reported_at must be a datetime, got {type(r.reported_at).__name__}")
    return out
