"""Tables and schemas of the alarm console.

An alarm is unique per (sensor, type) while active, after ThingsBoard: a condition that lasts updates
its alarm instead of adding rows, and only once it has cleared can the same condition raise a new one.
Acknowledgement is independent of clearing, which gives the four ISA-18.2 / ThingsBoard states
(active/cleared × acknowledged/unacknowledged).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from hazardloop.db import Base, UTCDateTime, utcnow


class Severity(enum.StrEnum):
    """ThingsBoard's four severities, most urgent first (the order of ``SEVERITY_RANK``)."""

    CRITICAL = "CRITICAL"
    MAJOR = "MAJOR"
    MINOR = "MINOR"
    WARNING = "WARNING"


SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Verdict(enum.StrEnum):
    """A person's judgement of an alarm; kept as a label that recalibrates the detectors."""

    TRUE_ALARM = "true_alarm"
    FALSE_ALARM = "false_alarm"
    SENSOR_FAULT = "sensor_fault"


class AlarmType(enum.StrEnum):
    """Condition types the live detectors raise. Sensor faults are ``sensor_fault:<kind>`` (see ``fault_type``)."""

    LIMIT_HH = "limit_hh"
    LIMIT_H = "limit_h"
    LIMIT_L = "limit_l"
    LIMIT_LL = "limit_ll"
    STATISTICAL = "statistical"
    SILENT = "silent"


SENSOR_FAULT_PREFIX = "sensor_fault"


def fault_type(kind: str) -> str:
    """'sensor_fault:stuck' — one alarm type per fault kind, so a stuck and a spiking sensor are two alarms."""
    return f"{SENSOR_FAULT_PREFIX}:{kind}"


class Alarm(Base):
    """One occurrence of a condition on a sensor, from raise to clear, with the people's decisions on it."""

    __tablename__ = "alarms"
    __table_args__ = (
        # The database itself refuses a second active alarm for the same condition (concurrent raisers).
        Index(
            "uq_alarms_active_condition",
            "sensor_id",
            "type",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sensor_id: Mapped[int | None] = mapped_column(ForeignKey("sensors.id", ondelete="SET NULL"), index=True)
    tag: Mapped[str] = mapped_column(String(64), index=True)  # kept: the alarm outlives a deleted sensor
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="RESTRICT"), index=True)
    type: Mapped[str] = mapped_column(String(48))
    severity: Mapped[str] = mapped_column(String(16), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    acknowledged: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    first_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    value: Mapped[float | None] = mapped_column(Float)  # the reading that raised it
    peak: Mapped[float | None] = mapped_column(Float)  # the most extreme reading while active
    unit: Mapped[str] = mapped_column(String(16), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    count: Mapped[int] = mapped_column(Integer, default=1)  # occurrences folded into this alarm
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    verdict: Mapped[str | None] = mapped_column(String(16), index=True)
    verdict_comment: Mapped[str] = mapped_column(Text, default="")
    verdict_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    verdict_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    shelved_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    shelve_reason: Mapped[str] = mapped_column(Text, default="")
    shelved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    escalation_step: Mapped[int] = mapped_column(Integer, default=0)
    hazard_id: Mapped[int | None] = mapped_column(ForeignKey("hazards.id", ondelete="SET NULL"), index=True)

    def is_shelved(self, now: dt.datetime) -> bool:
        return self.shelved_until is not None and self.shelved_until > now

    @property
    def state(self) -> str:
        """ThingsBoard's status name: ACTIVE_UNACK, ACTIVE_ACK, CLEARED_UNACK, CLEARED_ACK."""
        return f"{'ACTIVE' if self.active else 'CLEARED'}_{'ACK' if self.acknowledged else 'UNACK'}"


class AlarmEvent(Base):
    """The alarm's timeline: raised, updated, acknowledged, verdict, shelved, escalated, cleared, hazard."""

    __tablename__ = "alarm_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AlarmNotification(Base):
    """A message the alarm domain wants sent; the notify outbox pulls pending rows and marks them enqueued.

    (alarm, kind, step) is unique, so re-running escalation, or a retried batch, never queues twice.
    Recipients are roles in the alarm's area; the notify domain resolves them to people and channels.
    """

    __tablename__ = "alarm_notifications"
    __table_args__ = (UniqueConstraint("alarm_id", "kind", "step", name="uq_alarm_notifications_alarm_kind_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # raised | escalated
    step: Mapped[int] = mapped_column(Integer, default=0)
    area_id: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(16))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)


class DetectorState(Base):
    """Carried state of a streaming detector, so a restart resumes mid-episode instead of re-raising.

    Stored as JSON text, not a JSON column: the state holds NaN and infinities, which PostgreSQL's
    JSON types refuse and Python's json module writes and reads back faithfully.
    """

    __tablename__ = "detector_states"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    blob: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---------------------------------------------------------------- schemas


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AlarmRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sensor_id: int | None
    tag: str
    area_id: int
    type: str
    severity: Severity
    state: str
    active: bool
    acknowledged: bool
    first_at: dt.datetime
    last_at: dt.datetime
    cleared_at: dt.datetime | None
    value: float | None
    peak: float | None
    unit: str
    reason: str
    count: int
    acknowledged_by_id: int | None
    acknowledged_at: dt.datetime | None
    verdict: Verdict | None
    verdict_comment: str
    verdict_by_id: int | None
    verdict_at: dt.datetime | None
    shelved_until: dt.datetime | None
    shelve_reason: str
    escalation_step: int
    hazard_id: int | None


class AlarmEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: dt.datetime
    kind: str
    actor_name: str
    note: str
    data: dict[str, Any] | None


class AlarmDetail(AlarmRead):
    events: list[AlarmEventRead] = []


class AcknowledgeRequest(_Strict):
    note: str = Field(default="", max_length=4000)


class VerdictRequest(_Strict):
    verdict: Verdict
    comment: str = Field(default="", max_length=4000)


class ShelveRequest(_Strict):
    until: AwareDatetime = Field(description="when the shelf ends by itself (shelving is always time-limited)")
    reason: str = Field(min_length=2, max_length=1000)


class ChartWindow(_Strict):
    """The readings around the alarm that go with a hazard draft as its evidence."""

    timestamps: list[AwareDatetime] = Field(max_length=20000)
    values: list[float | None] = Field(max_length=20000)
