"""The outbox: enqueue in the caller's transaction, then claim, send and mark — at least once.

Why this shape:
- `route` only adds rows to the caller's session, so the event (a hazard escalation, an alarm)
  and the promise to tell someone commit together or not at all.
- `dispatch` claims due rows with a compare-and-set UPDATE (and, on PostgreSQL, a
  SELECT … FOR UPDATE SKIP LOCKED in front of it, so workers skip each other's rows instead of
  queueing on them). A claim carries a *short* lease (``DEFAULT_LEASE``, 30 s) that the live sender
  keeps renewing while it works: a heartbeat thread renews every row of its claim every third of the
  lease, and the sender renews each row once more, by compare-and-set on its claim token, right
  before it sends it. So a sender that was killed mid-batch holds its rows for at most one lease
  (not the minutes a lease must last when nobody renews it, for the slowest channel), and a live
  sender, however slow its receiver, is never robbed: its lease never runs out while it runs, and
  a row whose claim it did lose (a long stall) is skipped, never sent by two live senders. A row
  sent by a sender that died before marking it is sent again by the next one: at-least-once
  delivery; the idempotency key travels with the message where the channel can carry it (webhook
  header, e-mail Message-ID) so the receiver can drop the duplicate.
- Sending happens outside any transaction: no row lock is held during a slow HTTP call.
- Liveness is known by the lease alone, not by a table of sender ids: the heartbeat *is* the
  liveness signal, it needs no schema, and it works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from hazardloop.errors import InvalidInput
from hazardloop.notify import channels, limits, quiet, recipients
from hazardloop.notify.channels.base import Message, Outcome, Recipient, Result, Transport
from hazardloop.notify.models import (
    CLAIMABLE,
    Channel,
    DeliveryAttempt,
    OutboxEntry,
    OutboxStatus,
    Policy,
)

log = logging.getLogger(__name__)

DEFAULT_LEASE = dt.timedelta(seconds=30)  # how long a killed sender's rows wait; a live one keeps renewing
CLAIM_BATCH = 10  # rows per claim in the sender loop: a slow receiver holds back few rows other senders could send
DEFAULT_MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 3600.0


@dataclass(frozen=True)
class Event:
    """Something worth telling people about, before it is known who and how."""

    kind: str
    key: str  # unique per event; the outbox idempotency keys derive from it
    title: str
    text: str
    area_id: int | None = None
    severity: str | None = None
    urgent: bool = False
    user_ids: tuple[int, ...] = ()  # named people (the responsible person), always included
    group_key: str | None = None  # events sharing it are repeats of each other (policy.repeat_minutes)


# ---------------------------------------------------------------- enqueue


def _matches(policy: Policy, event: Event) -> bool:
    return (
        (not policy.event_kinds or event.kind in policy.event_kinds)
        and (not policy.severities or event.severity in policy.severities)
        and (not policy.urgent_only or event.urgent)
        and (not policy.area_ids or event.area_id in policy.area_ids)
    )


def _repeated(db: Session, policy: Policy, group_key: str, channel_id: int, now: dt.datetime) -> bool:
    if not policy.repeat_minutes:
        return False
    since = now - dt.timedelta(minutes=policy.repeat_minutes)
    return db.scalar(
        select(OutboxEntry.id).where(
            OutboxEntry.group_key == group_key, OutboxEntry.channel_id == channel_id, OutboxEntry.created_at > since
        ).limit(1)
    ) is not None


@dataclass
class _Route:
    channel: Channel
    policy_id: int
    people: dict[object, Recipient] = field(default_factory=dict)
    hold: dt.datetime | None = None
    held: bool = True  # stays True only while every matching policy holds it


def route(db: Session, event: Event, *, now: dt.datetime) -> list[OutboxEntry]:
    """Add outbox rows for `event` to the caller's session (the caller commits), one per channel.

    Several policies sending to one channel merge into one message with all their recipients;
    quiet hours hold a message only if every policy that routes it is quiet, and never an urgent one.
    An event no policy routes still gets a `dead` row saying so, so an admin sees it instead of silence.
    """
    group_key = event.group_key or event.key
    routes: dict[int, _Route] = {}
    matched = False
    for policy in db.scalars(select(Policy).where(Policy.enabled.is_(True)).order_by(Policy.id)):
        if not _matches(policy, event):
            continue
        matched = True
        hold = None if event.urgent else quiet.hold_until(now, start=policy.quiet_start, end=policy.quiet_end,
                                                          timezone=policy.timezone)
        people = recipients.resolve(db, roles=policy.roles, area_id=event.area_id, user_ids=event.user_ids)
        for channel_id in policy.channel_ids:
            channel = db.get(Channel, channel_id)
            if channel is None or not channel.enabled or _repeated(db, policy, group_key, channel_id, now):
                continue
            item = routes.setdefault(channel_id, _Route(channel, policy.id))
            for person in people:
                item.people.setdefault(person.user_id or person.name, person)
            if hold is None:
                item.held = False
            item.hold = hold if item.hold is None else min(item.hold, hold)
    created = [
        _add(db, event, group_key, item.channel, item.policy_id, list(item.people.values()),
             item.hold if item.held else None, now)
        for item in routes.values()
    ]
    if not matched:
        created.append(_add(db, event, group_key, None, None, [], None, now,
                            dead=f"no enabled notification policy routes '{event.kind}' events"))
    return [entry for entry in created if entry is not None]


def enqueue_direct(db: Session, event: Event, channel: Channel, people: Sequence[Recipient], *,
                   now: dt.datetime) -> OutboxEntry | None:
    """One row for one channel, bypassing policies (the "send test message" button)."""
    return _add(db, event, event.group_key or event.key, channel, None, list(people), None, now)


def _add(db: Session, event: Event, group_key: str, channel: Channel | None, policy_id: int | None,
         people: list[Recipient], hold: dt.datetime | None, now: dt.datetime, dead: str | None = None,
         ) -> OutboxEntry | None:
    key = f"{event.key}#{channel.id if channel else 'unrouted'}"
    if db.scalar(select(OutboxEntry.id).where(OutboxEntry.idempotency_key == key)) is not None:
        return None  # enqueued before: routing the same event twice changes nothing
    entry = OutboxEntry(
        idempotency_key=key, group_key=group_key, event_kind=event.kind, severity=event.severity,
        urgent=event.urgent, area_id=event.area_id, channel_id=channel.id if channel else None,
        channel_kind=channel.kind if channel else None, policy_id=policy_id, title=event.title[:255],
        text=event.text, recipients=[p.as_dict() for p in people],
        status=OutboxStatus.DEAD.value if dead else OutboxStatus.PENDING.value, attempts=0,
        next_attempt_at=hold or now, held_until_quiet_end=hold is not None, last_error=dead, created_at=now,
    )
    db.add(entry)
    return entry


# ---------------------------------------------------------------- claim


def _claimable(now: dt.datetime) -> ColumnElement[bool]:
    return or_(
        and_(OutboxEntry.status.in_(CLAIMABLE), OutboxEntry.next_attempt_at <= now),
        and_(OutboxEntry.status == OutboxStatus.SENDING.value, OutboxEntry.lease_until < now),  # a dead worker's
    )


def due_ids(db: Session, *, now: dt.datetime, limit: int = 50, only_ids: Sequence[int] | None = None) -> list[int]:
    """Rows that may be claimed now, oldest due first; PostgreSQL locks them and skips others' locks."""
    query = select(OutboxEntry.id).where(_claimable(now)).order_by(OutboxEntry.next_attempt_at, OutboxEntry.id)
    if only_ids is not None:
        query = query.where(OutboxEntry.id.in_(list(only_ids)))
    query = query.limit(limit)
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(db.scalars(query))


def take(db: Session, ids: Sequence[int], *, now: dt.datetime,
         lease: dt.timedelta = DEFAULT_LEASE) -> tuple[str, list[int]]:
    """Claim `ids` by compare-and-set and commit; returns the claim token and the ids this worker won.

    The WHERE repeats the claimable test, so of two workers that saw the same row only one update
    matches it (SQLite serialises writers; PostgreSQL re-checks the row after the lock).
    """
    token = str(uuid.uuid4())
    won = []
    for entry_id in ids:
        result = db.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == entry_id, _claimable(now))
            .values(status=OutboxStatus.SENDING.value, claim_token=token, lease_until=now + lease,
                    attempts=OutboxEntry.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            won.append(entry_id)
    db.commit()
    return token, won


def claim(db: Session, *, now: dt.datetime, limit: int = 50, lease: dt.timedelta = DEFAULT_LEASE,
          only_ids: Sequence[int] | None = None) -> tuple[str, list[int]]:
    return take(db, due_ids(db, now=now, limit=limit, only_ids=only_ids), now=now, lease=lease)


def renew(db: Session, token: str, *, now: dt.datetime, lease: dt.timedelta = DEFAULT_LEASE,
          entry_id: int | None = None) -> int:
    """Push the lease of this claim's rows (or of one of them) to ``now + lease`` and commit.

    A compare-and-set on the claim token: a row another sender has taken meanwhile carries its token,
    so it is not renewed, and the count returned says so (0 for ``entry_id``: the claim is lost).
    """
    query = update(OutboxEntry).where(OutboxEntry.claim_token == token,
                                      OutboxEntry.status == OutboxStatus.SENDING.value)
    if entry_id is not None:
        query = query.where(OutboxEntry.id == entry_id)
    result = db.execute(query.values(lease_until=now + lease).execution_options(synchronize_session=False))
    db.commit()
    return int(result.rowcount)


class Heartbeat:
    """Renews one claim's lease every third of it, on a thread and a database session of its own,
    while the sender works through the claimed rows (a slow HTTP call included).

    Its clock is the sender's ``now`` moved on by the time that really passed, so a caller with a
    fixed clock (the tests) sees leases that agree with it. A failed renewal is logged and tried
    again at the next beat: the sender's renewal before each send stays the guard against sending
    a row whose claim it lost.
    """

    def __init__(self, db: Session, token: str, *, now: dt.datetime, lease: dt.timedelta = DEFAULT_LEASE) -> None:
        self.bind, self.token, self.lease = db.get_bind(), token, lease
        self._started, self._now = time.monotonic(), now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="hazardloop-outbox-heartbeat", daemon=True)
        self.beats = 0

    def now(self) -> dt.datetime:
        return self._now + dt.timedelta(seconds=time.monotonic() - self._started)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        every = self.lease.total_seconds() / 3
        while not self._stop.wait(every):
            try:
                with Session(self.bind) as session:
                    renew(session, self.token, now=self.now(), lease=self.lease)
                self.beats += 1
            except SQLAlchemyError:
                log.exception("notify: renewing the outbox lease of claim %s failed; trying at the next beat",
                              self.token)


def next_due(db: Session) -> dt.datetime | None:
    """When the next row may be claimed: the earliest due retry or held message, or the earliest end of
    another sender's lease (a killed sender's rows are picked up then, not at the next polling interval)."""
    waiting = db.scalar(select(func.min(OutboxEntry.next_attempt_at)).where(OutboxEntry.status.in_(CLAIMABLE)))
    leased = db.scalar(select(func.min(OutboxEntry.lease_until))
                       .where(OutboxEntry.status == OutboxStatus.SENDING.value))
    due = [t for t in (waiting, leased) if t is not None]
    return min(due) if due else None


# ---------------------------------------------------------------- send and mark


def backoff(attempts: int, rng: random.Random) -> dt.timedelta:
    """Exponential back-off with "equal jitter": half fixed, half random, so retries spread out."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(attempts - 1, 0))
    return dt.timedelta(seconds=ceiling / 2 + rng.uniform(0, ceiling / 2))


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    deferred: int = 0  # waiting for a rate-limit slot; no attempt spent
    lost_claims: int = 0  # the lease ran out and another worker took the row meanwhile
    next_due: dt.datetime | None = None  # set by the sender loop: when to look again (``next_due``)


def message_of(entry: OutboxEntry) -> Message:
    return Message(title=entry.title, text=entry.text, idempotency_key=entry.idempotency_key, urgent=entry.urgent,
                   recipients=tuple(Recipient.from_dict(r) for r in entry.recipients))


def _mark(db: Session, entry_id: int, token: str, **values: object) -> bool:
    result = db.execute(
        update(OutboxEntry)
        .where(OutboxEntry.id == entry_id, OutboxEntry.claim_token == token)
        .values(claim_token=None, lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _attempt(channel: Channel, entry: OutboxEntry, transport: Transport, now: dt.datetime) -> Outcome:
    try:
        return channels.send(channel.kind, channel.config, message_of(entry), transport, now)
    except InvalidInput as exc:  # config edited in the database by hand, or a schema that grew stricter
        return Outcome(Result.PERMANENT, f"channel config is invalid: {exc}")
    except Exception as exc:  # a bug in one channel must not stop the others; the row retries, bounded
        log.exception("notify: sending outbox row %s failed unexpectedly", entry.id)
        return Outcome(Result.RETRY, f"internal error: {exc.__class__.__name__}: {exc}")


def deliver(db: Session, token: str, ids: Sequence[int], *, now: dt.datetime, transport: Transport,
            max_attempts: int = DEFAULT_MAX_ATTEMPTS, rng: random.Random | None = None,
            lease: dt.timedelta = DEFAULT_LEASE, clock: Callable[[], dt.datetime] | None = None) -> DispatchReport:
    """Send each claimed row and record the outcome; each row commits on its own.

    Right before a row is sent its lease is renewed by compare-and-set on ``token`` (at ``clock()``,
    default ``now``): a row whose claim was lost — the lease ran out during a stall and another sender
    took it — is skipped, so two live senders never both send it.
    """
    rng = rng or random.Random()
    clock = clock or (lambda: now)
    report = DispatchReport()
    for entry_id in ids:
        if not renew(db, token, now=clock(), lease=lease, entry_id=entry_id):
            report.lost_claims += 1
            continue
        entry = db.get(OutboxEntry, entry_id, populate_existing=True)
        if entry is None or entry.claim_token != token:
            report.lost_claims += 1
            continue
        channel = db.get(Channel, entry.channel_id) if entry.channel_id is not None else None
        if channel is None or not channel.enabled:
            why = "the channel was deleted" if channel is None else "the channel is disabled"
            _mark(db, entry_id, token, status=OutboxStatus.DEAD.value, last_error=why)
            db.commit()
            report.dead += 1
            continue
        slot = limits.next_free_slot(db, channel_id=channel.id, kind=channel.kind, now=now)
        if slot is not None:
            _mark(db, entry_id, token, status=OutboxStatus.PENDING.value, next_attempt_at=slot,
                  attempts=entry.attempts - 1)
            db.commit()
            report.deferred += 1
            continue
        outcome = _attempt(channel, entry, transport, now)
        db.add(DeliveryAttempt(outbox_id=entry.id, channel_id=channel.id, at=now, outcome=outcome.result.value,
                               detail=outcome.detail[:2000]))
        if outcome.result is Result.OK:
            values: dict[str, object] = {"status": OutboxStatus.SENT.value, "sent_at": now, "last_error": None}
            report.sent += 1
        elif outcome.result is Result.RETRY and entry.attempts < max_attempts:
            delay = backoff(entry.attempts, rng)
            if outcome.retry_after_s:
                delay = max(delay, dt.timedelta(seconds=outcome.retry_after_s))
            values = {"status": OutboxStatus.FAILED.value, "next_attempt_at": now + delay,
                      "last_error": outcome.detail}
            report.retried += 1
        else:
            suffix = "" if outcome.result is Result.PERMANENT else f" (gave up after {entry.attempts} attempts)"
            values = {"status": OutboxStatus.DEAD.value, "last_error": outcome.detail + suffix}
            report.dead += 1
        if not _mark(db, entry_id, token, **values):
            report.lost_claims += 1
        db.commit()
    return report


def dispatch(db: Session, *, now: dt.datetime, transport: Transport | None = None, limit: int = 50,
             lease: dt.timedelta = DEFAULT_LEASE, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
             rng: random.Random | None = None, only_ids: Sequence[int] | None = None) -> DispatchReport:
    """Claim the rows due at `now`, send them under a heartbeat, and mark each sent, rescheduled or dead."""
    token, ids = claim(db, now=now, limit=limit, lease=lease, only_ids=only_ids)
    if not ids:
        return DispatchReport()
    own = transport is None
    transport = transport or Transport.default()
    try:
        with Heartbeat(db, token, now=now, lease=lease) as heartbeat:
            return deliver(db, token, ids, now=now, transport=transport, max_attempts=max_attempts, rng=rng,
                           lease=lease, clock=heartbeat.now)
    finally:
        if own:
            transport.http.close()
