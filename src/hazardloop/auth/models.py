"""Tables and schemas of people and trust."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hazardloop.auth.roles import Role
from hazardloop.db import Base, UTCDateTime, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    all_areas: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_machine: Mapped[bool] = mapped_column(Boolean, default=False)
    department: Mapped[str | None] = mapped_column(String(128))
    is_department_head: Mapped[bool] = mapped_column(Boolean, default=False)  # 责任部门负责人, for escalation
    email: Mapped[str | None] = mapped_column(String(255))
    mobile: Mapped[str | None] = mapped_column(String(32))
    wecom_userid: Mapped[str | None] = mapped_column(String(64))
    feishu_open_id: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    grants: Mapped[list[AreaGrant]] = relationship(back_populates="user", cascade="all, delete-orphan", lazy="selectin")

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    @property
    def sees_all_areas(self) -> bool:
        return self.all_areas or self.role == Role.ADMIN

    @property
    def area_ids(self) -> set[int]:
        return {g.area_id for g in self.grants}


class AreaGrant(Base):
    __tablename__ = "area_grants"
    __table_args__ = (UniqueConstraint("user_id", "area_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id", ondelete="CASCADE"), index=True)

    user: Mapped[User] = relationship(back_populates="grants")


class LoginSession(Base):
    """A browser session. Only the SHA-256 of the cookie value is stored, so a leaked table opens nothing."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    user_agent: Mapped[str | None] = mapped_column(String(255))


class ApiToken(Base):
    """A bearer token for machines (connectors, scripts). Stored hashed; shown once at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """One write, chained to the previous one by SHA-256 so that edits and deletions show up in verify."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64), index=True)
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's last link, kept apart so that cutting rows off the end is detected too."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


# ---------------------------------------------------------------- schemas


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    display_name: str = Field(min_length=1, max_length=128)
    role: Role
    password: str | None = Field(default=None, min_length=8, max_length=256)
    all_areas: bool = False
    area_ids: list[int] = []
    is_machine: bool = False
    department: str | None = Field(default=None, max_length=128)
    is_department_head: bool = False
    email: EmailStr | None = None
    mobile: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9\- ]{5,32}$")
    wecom_userid: str | None = Field(default=None, max_length=64)
    feishu_open_id: str | None = Field(default=None, max_length=64)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=128)
    role: Role | None = None
    password: str | None = Field(default=None, min_length=8, max_length=256)
    all_areas: bool | None = None
    area_ids: list[int] | None = None
    is_active: bool | None = None
    department: str | None = Field(default=None, max_length=128)
    is_department_head: bool | None = None
    email: EmailStr | None = None
    mobile: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9\- ]{5,32}$")
    wecom_userid: str | None = Field(default=None, max_length=64)
    feishu_open_id: str | None = Field(default=None, max_length=64)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    role: Role
    all_areas: bool
    area_ids: list[int]
    is_active: bool
    is_machine: bool
    department: str | None
    is_department_head: bool
    email: str | None
    mobile: str | None


class LoginRequest(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: int
    name: str = Field(min_length=1, max_length=128)


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: dt.datetime
    actor_name: str
    action: str
    target_type: str
    target_id: str | None
    before: Any
    after: Any
    note: str
