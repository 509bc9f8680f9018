"""Tables and schemas of the hazard register (fields after domain.md §2.5)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hazardloop.db import Base, UTCDateTime, utcnow


class HazardState(enum.StrEnum):
    DRAFT = "DRAFT"  # 草稿 (offline capture, AI candidate)
    REPORTED = "REPORTED"  # 已上报/待审核
    REJECTED = "REJECTED"  # 驳回/无效/重复
    CONFIRMED = "CONFIRMED"  # 已确认定级
    PLAN_PENDING = "PLAN_PENDING"  # 治理方案待审批 (重大)
    ASSIGNED = "ASSIGNED"  # 已下发/待整改
    RECTIFYING = "RECTIFYING"  # 整改中
    EXTENSION_REQUESTED = "EXTENSION_REQUESTED"  # 延期审批中
    PENDING_ACCEPTANCE = "PENDING_ACCEPTANCE"  # 待验收
    CLOSED = "CLOSED"  # 已验收/已销号
    REOPENED = "REOPENED"  # 重新打开
    CANCELLED = "CANCELLED"  # 撤销


OPEN_STATES = frozenset(
    s for s in HazardState if s not in (HazardState.REJECTED, HazardState.CLOSED, HazardState.CANCELLED)
)
# OVERDUE is a flag over these states, never a state of its own (domain.md §2.2).
DEADLINE_STATES = frozenset(
    {HazardState.ASSIGNED, HazardState.RECTIFYING, HazardState.EXTENSION_REQUESTED, HazardState.REOPENED}
)


class HazardSource(enum.StrEnum):
    INSPECTION = "inspection"  # 排查/巡检 check item
    REPORT = "report"  # 随手拍 / a person's report
    SENSOR_ALARM = "sensor_alarm"  # IoT 告警
    CAMERA = "camera"  # AI 视频识别
    AI_DRAFT = "ai_draft"  # text/pattern model candidate
    EXTERNAL_CHECK = "external_check"  # 上级检查 / 政府检查


class AttachmentPhase(enum.StrEnum):
    BEFORE = "before"  # 整改前
    AFTER = "after"  # 整改后
    PLAN = "plan"  # 治理方案
    ACCEPTANCE = "acceptance"  # 验收 / 评估报告
    EVIDENCE = "evidence"  # alarm chart, camera snapshot
    OTHER = "other"


class Hazard(Base):
    __tablename__ = "hazards"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    state: Mapped[str] = mapped_column(String(24), index=True)
    # identification and place
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="RESTRICT"), index=True)
    equipment_id: Mapped[int | None] = mapped_column(ForeignKey("equipment.id", ondelete="SET NULL"))
    location: Mapped[str] = mapped_column(String(255), default="")
    source: Mapped[str] = mapped_column(String(24))
    source_ref: Mapped[str | None] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text)
    found_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reporter_name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # classification
    level: Mapped[str | None] = mapped_column(String(16))  # internal level code, mapped to the legal level
    is_major: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    category: Mapped[str | None] = mapped_column(String(32), index=True)
    accident_type: Mapped[str | None] = mapped_column(String(4))
    judgement_basis: Mapped[str | None] = mapped_column(Text)  # 判定依据 (standard + clause) for 重大
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # treatment
    responsible_department: Mapped[str | None] = mapped_column(String(128))
    responsible_person_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    measures: Mapped[str | None] = mapped_column(Text)
    interim_measures: Mapped[str | None] = mapped_column(Text)
    deadline: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    funds_budget: Mapped[float | None] = mapped_column(Float)
    funds_actual: Mapped[float | None] = mapped_column(Float)
    treatment_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # 重大: six parts
    five_implementations: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # 五落实
    plan_approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    plan_approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    production_suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    supervised: Mapped[bool] = mapped_column(Boolean, default=False)  # 挂牌督办
    supervising_unit: Mapped[str | None] = mapped_column(String(128))
    reported_to_authority_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # closure
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completion_note: Mapped[str | None] = mapped_column(Text)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acceptance_opinion: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    fast_path: Mapped[bool] = mapped_column(Boolean, default=False)  # 立查立改
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_reason: Mapped[str | None] = mapped_column(Text)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("hazards.id", ondelete="SET NULL"), index=True)
    possible_duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("hazards.id", ondelete="SET NULL"), index=True
    )
    # 复盘 (post-close review)
    root_cause: Mapped[str | None] = mapped_column(Text)
    lessons: Mapped[str | None] = mapped_column(Text)
    repeat_of_id: Mapped[int | None] = mapped_column(ForeignKey("hazards.id", ondelete="SET NULL"), index=True)
    # AI fields: what a model suggested, and what the human finally confirmed
    ai_model: Mapped[str | None] = mapped_column(String(64))
    ai_model_version: Mapped[str | None] = mapped_column(String(32))
    ai_suggestion: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ai_confidence: Mapped[float | None] = mapped_column(Float)
    human_confirmed: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    def is_overdue(self, now: dt.datetime) -> bool:
        return self.deadline is not None and HazardState(self.state) in DEADLINE_STATES and now > self.deadline

    def days_overdue(self, now: dt.datetime) -> int:
        return max(0, (now - self.deadline).days) if self.is_overdue(now) else 0


class HazardEvent(Base):
    """The hazard's own timeline: transitions, comments, extension decisions, reminders."""

    __tablename__ = "hazard_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    hazard_id: Mapped[int] = mapped_column(ForeignKey("hazards.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(24))  # transition | comment | reminder | escalation | attachment
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str | None] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ExtensionRequest(Base):
    __tablename__ = "hazard_extensions"

    id: Mapped[int] = mapped_column(primary_key=True)
    hazard_id: Mapped[int] = mapped_column(ForeignKey("hazards.id", ondelete="CASCADE"), index=True)
    requested_by_id: Mapped[int | None] = mapped_column(Integer)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    interim_measures: Mapped[str] = mapped_column(Text)
    old_deadline: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    new_deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(Integer)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    approved: Mapped[bool | None] = mapped_column(Boolean)
    decision_note: Mapped[str | None] = mapped_column(Text)


class HazardCounter(Base):
    """Per-year sequence for human-readable numbers (YH-2026-00042), allocated under a row lock."""

    __tablename__ = "hazard_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Attachment(Base):
    """A stored file (photo, PDF), content-addressed by SHA-256 under the data directory."""

    __tablename__ = "hazard_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    hazard_id: Mapped[int] = mapped_column(ForeignKey("hazards.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    uploaded_by_id: Mapped[int | None] = mapped_column(Integer)
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PendingNotification(Base):
    """A reminder or escalation waiting for the notification outbox (notify/ will send these).

    dedup_key makes the scheduler idempotent: running it twice, or after a restart, adds nothing new.
    """

    __tablename__ = "pending_notifications"
    __table_args__ = (UniqueConstraint("dedup_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))  # reminder | escalation
    step: Mapped[int] = mapped_column(Integer, default=0)
    hazard_id: Mapped[int] = mapped_column(ForeignKey("hazards.id", ondelete="CASCADE"), index=True)
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    message_zh: Mapped[str] = mapped_column(Text)
    message_en: Mapped[str] = mapped_column(Text)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)  # 重大: never held back by quiet hours
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


# ---------------------------------------------------------------- schemas


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class HazardCreate(_Strict):
    area_id: int
    description: str = Field(min_length=2, max_length=4000)
    location: str = Field(default="", max_length=255)
    equipment_id: int | None = None
    source: HazardSource = HazardSource.REPORT
    source_ref: str | None = Field(default=None, max_length=128)
    found_at: AwareDatetime | None = None  # with its zone: a plant clock without one is ambiguous
    submit: bool = Field(default=True, description="REPORTED at once; false keeps a DRAFT")
    category: str | None = Field(default=None, max_length=32)
    level: str | None = Field(default=None, max_length=16)


class TransitionRequest(_Strict):
    """One move along the lifecycle; which fields are needed depends on the move (see workflow.py)."""

    to: HazardState
    note: str = Field(default="", max_length=4000)
    level: str | None = Field(default=None, max_length=16)
    category: str | None = Field(default=None, max_length=32)
    accident_type: str | None = Field(default=None, max_length=4)
    judgement_basis: str | None = Field(default=None, max_length=2000)
    duplicate_of: int | None = None
    responsible_person_id: int | None = None
    responsible_department: str | None = Field(default=None, max_length=128)
    measures: str | None = Field(default=None, max_length=4000)
    interim_measures: str | None = Field(default=None, max_length=4000)
    deadline: AwareDatetime | None = None
    funds_budget: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    funds_actual: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    treatment_plan: dict[str, str] | None = None
    five_implementations: dict[str, str] | None = None
    production_suspended: bool | None = None
    approved: bool | None = None  # extension decision


class ReviewUpdate(_Strict):
    """复盘: what is learned after a hazard is closed — a post-close record, not a state."""

    root_cause: str | None = Field(default=None, max_length=4000)
    lessons: str | None = Field(default=None, max_length=4000)
    repeat_of_id: int | None = None


class HazardRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: str
    state: HazardState
    area_id: int
    equipment_id: int | None
    location: str
    source: HazardSource
    source_ref: str | None
    description: str
    found_at: dt.datetime
    reporter_name: str
    level: str | None
    is_major: bool
    category: str | None
    accident_type: str | None
    judgement_basis: str | None
    responsible_department: str | None
    responsible_person_id: int | None
    measures: str | None
    interim_measures: str | None
    deadline: dt.datetime | None
    funds_budget: float | None
    funds_actual: float | None
    treatment_plan: dict[str, Any] | None
    five_implementations: dict[str, Any] | None
    production_suspended: bool
    completed_at: dt.datetime | None
    completion_note: str | None
    accepted_at: dt.datetime | None
    acceptance_opinion: str | None
    closed_at: dt.datetime | None
    fast_path: bool
    reopen_count: int
    rejected_reason: str | None
    duplicate_of_id: int | None
    possible_duplicate_of_id: int | None
    root_cause: str | None = None
    lessons: str | None = None
    repeat_of_id: int | None = None
    ai_model: str | None
    ai_suggestion: dict[str, Any] | None
    ai_confidence: float | None
    overdue: bool = False
    overdue_days: int = 0
    allowed: list[HazardState] = []


class HazardEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: dt.datetime
    actor_name: str
    kind: str
    from_state: str | None
    to_state: str | None
    note: str
    data: dict[str, Any] | None
