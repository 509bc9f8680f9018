"""Channels, policies and the outbox as the admin sees them. The only code that writes these tables
besides the outbox machinery; every change is checked (authz) and recorded (audit, secrets masked)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hazardloop.auth import audit, authz
from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.errors import Conflict, InvalidInput, NotFound
from hazardloop.notify import channels, outbox, quiet, recipients
from hazardloop.notify.channels.base import MASK, Transport
from hazardloop.notify.models import (
    Channel,
    ChannelCreate,
    ChannelRead,
    ChannelUpdate,
    EventKind,
    OutboxEntry,
    OutboxStatus,
    Policy,
    PolicyCreate,
    PolicyUpdate,
)

# ---------------------------------------------------------------- channels


def channel_read(channel: Channel) -> ChannelRead:
    """The API view of a channel: secrets (and credential parts of robot URLs) masked."""
    try:
        config = channels.validate_config(channel.kind, channel.config).masked()
    except InvalidInput:
        config = {k: MASK for k in channel.config}  # unreadable config: show nothing of it
    return ChannelRead(id=channel.id, kind=channel.kind, name=channel.name, config=config, enabled=channel.enabled,
                       created_at=channel.created_at, updated_at=channel.updated_at)


def _channel(db: Session, channel_id: int) -> Channel:
    channel = db.get(Channel, channel_id)
    if channel is None:
        raise NotFound(f"channel {channel_id} not found")
    return channel


def _unique_name(db: Session, model: type[Channel] | type[Policy], name: str, own_id: int | None = None) -> None:
    found = db.scalar(select(model.id).where(model.name == name))
    if found is not None and found != own_id:
        raise Conflict(f"the name '{name}' is taken")


def list_channels(db: Session, *, actor: User) -> list[Channel]:
    authz.require(actor, "notify.read")
    return list(db.scalars(select(Channel).order_by(Channel.id)))


def get_channel(db: Session, *, actor: User, channel_id: int) -> Channel:
    authz.require(actor, "notify.read")
    return _channel(db, channel_id)


def create_channel(db: Session, *, actor: User, data: ChannelCreate) -> Channel:
    authz.require(actor, "notify.write")
    _unique_name(db, Channel, data.name)
    config = channels.validate_config(data.kind.value, data.config)
    now = utcnow()
    channel = Channel(kind=data.kind.value, name=data.name, config=config.model_dump(exclude_none=True),
                      enabled=data.enabled, created_at=now, updated_at=now)
    db.add(channel)
    db.flush()
    audit.record(db, actor=actor, action="notify.channel.create", target_type="notify_channel",
                 target_id=channel.id, after=channel_read(channel).model_dump(mode="json"))
    db.commit()
    return channel


def _merge_secrets(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Fields sent back masked ("***" or a masked URL) keep their stored value, as Grafana's secure fields do."""
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, str) and MASK in value and key in old:
            continue
        merged[key] = value
    return merged


def update_channel(db: Session, *, actor: User, channel_id: int, data: ChannelUpdate) -> Channel:
    authz.require(actor, "notify.write")
    channel = _channel(db, channel_id)
    before = channel_read(channel).model_dump(mode="json")
    if data.name is not None:
        _unique_name(db, Channel, data.name, channel.id)
        channel.name = data.name
    if data.config is not None:
        merged = _merge_secrets(channel.config, data.config)
        channel.config = channels.validate_config(channel.kind, merged).model_dump(exclude_none=True)
    if data.enabled is not None:
        channel.enabled = data.enabled
    channel.updated_at = utcnow()
    audit.record(db, actor=actor, action="notify.channel.update", target_type="notify_channel",
                 target_id=channel.id, before=before, after=channel_read(channel).model_dump(mode="json"))
    db.commit()
    return channel


def delete_channel(db: Session, *, actor: User, channel_id: int) -> None:
    authz.require(actor, "notify.write")
    channel = _channel(db, channel_id)
    users = [p.name for p in db.scalars(select(Policy)) if channel.id in p.channel_ids]
    if users:
        raise Conflict(f"channel {channel.id} is used by policies: {', '.join(users)}; change them first")
    audit.record(db, actor=actor, action="notify.channel.delete", target_type="notify_channel",
                 target_id=channel.id, before=channel_read(channel).model_dump(mode="json"))
    db.delete(channel)
    db.commit()


def send_test(db: Session, *, actor: User, channel_id: int, transport: Transport | None = None,
              now: dt.datetime | None = None) -> OutboxEntry:
    """Send a test message through the outbox right away and report what the channel answered.

    It goes through the same path as real messages (row, claim, send, mark), so a passing test
    proves the real path, and the attempt shows in the outbox list like any other.
    """
    authz.require(actor, "notify.write")
    channel = _channel(db, channel_id)
    now = now or utcnow()
    event = outbox.Event(
        kind=EventKind.TEST.value,
        key=f"test:{channel.id}:{now.isoformat()}",
        title="HazardLoop 测试消息",
        text=f"【测试】HazardLoop 通知通道“{channel.name}”连接正常。This is a test message from HazardLoop.",
    )
    entry = outbox.enqueue_direct(db, event, channel, [recipients.as_recipient(actor)], now=now)
    if entry is None:
        raise Conflict("a test message for this channel was sent this very instant; try again")
    audit.record(db, actor=actor, action="notify.channel.test", target_type="notify_channel", target_id=channel.id)
    db.commit()
    outbox.dispatch(db, now=now, transport=transport, only_ids=[entry.id], limit=1)
    db.refresh(entry)
    return entry


# ---------------------------------------------------------------- policies


def _check_policy(db: Session, channel_ids: list[int] | None, area_ids: list[int] | None,
                  timezone: str | None, quiet_start: str | None, quiet_end: str | None) -> None:
    if channel_ids is not None:
        found = set(db.scalars(select(Channel.id).where(Channel.id.in_(channel_ids))))
        missing = sorted(set(channel_ids) - found)
        if missing:
            raise InvalidInput("channel_ids", f"unknown channel id(s): {', '.join(map(str, missing))}")
    if area_ids:
        from hazardloop.plant.models import Area  # plant owns areas; only their ids are checked here

        found = set(db.scalars(select(Area.id).where(Area.id.in_(area_ids))))
        missing = sorted(set(area_ids) - found)
        if missing:
            raise InvalidInput("area_ids", f"unknown area id(s): {', '.join(map(str, missing))}")
    if timezone is not None:
        quiet.zone(timezone)
    if (quiet_start is None) != (quiet_end is None):
        raise InvalidInput("quiet_end" if quiet_end is None else "quiet_start",
                           "quiet hours need both a start and an end (HH:MM), or neither")


def _policy(db: Session, policy_id: int) -> Policy:
    policy = db.get(Policy, policy_id)
    if policy is None:
        raise NotFound(f"policy {policy_id} not found")
    return policy


def list_policies(db: Session, *, actor: User) -> list[Policy]:
    authz.require(actor, "notify.read")
    return list(db.scalars(select(Policy).order_by(Policy.id)))


def get_policy(db: Session, *, actor: User, policy_id: int) -> Policy:
    authz.require(actor, "notify.read")
    return _policy(db, policy_id)


def create_policy(db: Session, *, actor: User, data: PolicyCreate) -> Policy:
    authz.require(actor, "notify.write")
    _unique_name(db, Policy, data.name)
    _check_policy(db, data.channel_ids, data.area_ids, data.timezone, data.quiet_start, data.quiet_end)
    values = data.model_dump(mode="json")
    now = utcnow()
    policy = Policy(**values, created_at=now, updated_at=now)
    db.add(policy)
    db.flush()
    audit.record(db, actor=actor, action="notify.policy.create", target_type="notify_policy", target_id=policy.id,
                 after=audit.snapshot(policy))
    db.commit()
    return policy


def update_policy(db: Session, *, actor: User, policy_id: int, data: PolicyUpdate) -> Policy:
    authz.require(actor, "notify.write")
    policy = _policy(db, policy_id)
    before = audit.snapshot(policy)
    changes = data.model_dump(mode="json", exclude_unset=True)
    if changes.get("name") is not None:
        _unique_name(db, Policy, changes["name"], policy.id)
    start = changes.get("quiet_start", policy.quiet_start)
    end = changes.get("quiet_end", policy.quiet_end)
    _check_policy(db, changes.get("channel_ids"), changes.get("area_ids"), changes.get("timezone"), start, end)
    for key, value in changes.items():
        if value is None and key not in ("quiet_start", "quiet_end"):
            continue  # null means "unchanged" for fields that cannot be empty
        setattr(policy, key, value)
    policy.updated_at = utcnow()
    audit.record(db, actor=actor, action="notify.policy.update", target_type="notify_policy", target_id=policy.id,
                 before=before, after=audit.snapshot(policy))
    db.commit()
    return policy


def delete_policy(db: Session, *, actor: User, policy_id: int) -> None:
    authz.require(actor, "notify.write")
    policy = _policy(db, policy_id)
    audit.record(db, actor=actor, action="notify.policy.delete", target_type="notify_policy", target_id=policy.id,
                 before=audit.snapshot(policy))
    db.delete(policy)
    db.commit()


# ---------------------------------------------------------------- outbox


def list_outbox(db: Session, *, actor: User, status: OutboxStatus | None = None, limit: int = 100,
                before_id: int | None = None) -> list[OutboxEntry]:
    """Newest first, paged by id."""
    authz.require(actor, "notify.read")
    query = select(OutboxEntry).order_by(OutboxEntry.id.desc()).limit(limit)
    if status is not None:
        query = query.where(OutboxEntry.status == status.value)
    if before_id is not None:
        query = query.where(OutboxEntry.id < before_id)
    return list(db.scalars(query))


def retry_entry(db: Session, *, actor: User, entry_id: int) -> OutboxEntry:
    """Give a dead row a fresh set of attempts (after the admin fixed the key or the keyword)."""
    authz.require(actor, "notify.write")
    entry = db.get(OutboxEntry, entry_id)
    if entry is None:
        raise NotFound(f"outbox entry {entry_id} not found")
    if entry.status != OutboxStatus.DEAD.value:
        raise Conflict(f"only dead entries can be retried; this one is {entry.status}")
    if entry.channel_id is None:
        raise Conflict("this entry has no channel (nothing routed it); add a policy, new events will follow it")
    entry.status, entry.attempts, entry.next_attempt_at = OutboxStatus.PENDING.value, 0, utcnow()
    audit.record(db, actor=actor, action="notify.outbox.retry", target_type="notify_outbox", target_id=entry.id)
    db.commit()
    return entry
