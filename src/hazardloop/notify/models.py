"""Tables and schemas of outgoing notifications.

The split follows Grafana alerting: a *channel* (contact point) says how to reach a group robot
or a mail server; a *policy* says who gets which events on which channels, and when to keep
quiet. The *outbox* holds one row per message × channel × recipient batch; it is written in the
same transaction as the event that caused it, so a crash can delay a message but never lose it.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hazardloop.auth.roles import Role
from hazardloop.db import Base, UTCDateTime, utcnow


class ChannelKind(enum.StrEnum):
    WECOM = "wecom"
    DINGTALK = "dingtalk"
    FEISHU = "feishu"
    EMAIL = "email"
    WEBHOOK = "webhook"


class EventKind(enum.StrEnum):
    HAZARD_REMINDER = "hazard_reminder"
    HAZARD_ESCALATION = "hazard_escalation"
    ALARM = "alarm"
    TEST = "test"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its first attempt (or for quiet hours / a rate-limit slot)
    SENDING = "sending"  # claimed by a worker; reclaimable once lease_until has passed
    SENT = "sent"
    FAILED = "failed"  # the last attempt failed and another is scheduled at next_attempt_at
    DEAD = "dead"  # permanent error or attempts used up; an admin may retry it


CLAIMABLE = (OutboxStatus.PENDING.value, OutboxStatus.FAILED.value)


class Channel(Base):
    """A contact point. config holds the webhook URL, secrets and options; the API masks secrets."""

    __tablename__ = "notify_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Policy(Base):
    """Who gets what. Empty match lists mean "any"; the event's own recipients are always included."""

    __tablename__ = "notify_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    event_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    severities: Mapped[list[str]] = mapped_column(JSON, default=list)  # e.g. major, general, HH, H
    urgent_only: Mapped[bool] = mapped_column(Boolean, default=False)
    area_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    channel_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    quiet_start: Mapped[str | None] = mapped_column(String(5))  # "22:00", local time in `timezone`
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    repeat_minutes: Mapped[int] = mapped_column(Integer, default=0)  # 0: every event goes out
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxEntry(Base):
    """One message for one channel and its batch of recipients, with its delivery state."""

    __tablename__ = "notify_outbox"
    __table_args__ = (UniqueConstraint("idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    group_key: Mapped[str] = mapped_column(String(255), index=True)
    event_kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str | None] = mapped_column(String(16))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    area_id: Mapped[int | None] = mapped_column(Integer)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("notify_channels.id", ondelete="SET NULL"), index=True)
    channel_kind: Mapped[str | None] = mapped_column(String(16))
    policy_id: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    recipients: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    held_until_quiet_end: Mapped[bool] = mapped_column(Boolean, default=False)
    claim_token: Mapped[str | None] = mapped_column(String(36))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DeliveryAttempt(Base):
    """Every request made to a channel: the delivery history, and what the rate limiter counts."""

    __tablename__ = "notify_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("notify_outbox.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int | None] = mapped_column(Integer, index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | retry | permanent
    detail: Mapped[str] = mapped_column(Text, default="")


# ---------------------------------------------------------------- schemas


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ChannelCreate(_Strict):
    kind: ChannelKind
    name: str = Field(min_length=1, max_length=128)
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class ChannelUpdate(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    config: dict[str, Any] | None = None  # merged; a secret sent back as "***" keeps the stored one
    enabled: bool | None = None


class ChannelRead(BaseModel):
    id: int
    kind: ChannelKind
    name: str
    config: dict[str, Any]  # secrets masked
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class PolicyCreate(_Strict):
    name: str = Field(min_length=1, max_length=128)
    enabled: bool = True
    event_kinds: list[EventKind] = []
    severities: list[str] = []
    urgent_only: bool = False
    area_ids: list[int] = []
    roles: list[Role] = []
    channel_ids: list[int] = Field(min_length=1)
    quiet_start: str | None = Field(default=None, pattern=_HHMM)
    quiet_end: str | None = Field(default=None, pattern=_HHMM)
    timezone: str = "Asia/Shanghai"
    repeat_minutes: int = Field(default=0, ge=0, le=10080)


class PolicyUpdate(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    enabled: bool | None = None
    event_kinds: list[EventKind] | None = None
    severities: list[str] | None = None
    urgent_only: bool | None = None
    area_ids: list[int] | None = None
    roles: list[Role] | None = None
    channel_ids: list[int] | None = Field(default=None, min_length=1)
    quiet_start: str | None = Field(default=None, pattern=_HHMM)
    quiet_end: str | None = Field(default=None, pattern=_HHMM)
    timezone: str | None = None
    repeat_minutes: int | None = Field(default=None, ge=0, le=10080)


class PolicyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    enabled: bool
    event_kinds: list[str]
    severities: list[str]
    urgent_only: bool
    area_ids: list[int]
    roles: list[str]
    channel_ids: list[int]
    quiet_start: str | None
    quiet_end: str | None
    timezone: str
    repeat_minutes: int


class OutboxRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    idempotency_key: str
    event_kind: str
    urgent: bool
    channel_id: int | None
    channel_kind: str | None
    title: str
    text: str
    recipients: list[dict[str, Any]]
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None


class TestResult(BaseModel):
    outbox_id: int
    status: str
    detail: str | None
