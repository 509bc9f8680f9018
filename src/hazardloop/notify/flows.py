"""The in-process notify job: hand hazard and alarm notifications to the outbox, then send what is due.

Safe to run in several processes at once: the bridge and the claim are both compare-and-set,
so the worst a restart or a second worker can do is send a message at least once, never lose it.

Two ways to drive it: ``start_scheduler`` adds it to an APScheduler as a plain interval job, and
``Sender`` runs it on a thread of its own that also runs *at once* when woken. The server uses the
``Sender``: live detection wakes it after committing a new alarm, so an HH alarm reaches a phone in
well under a second instead of waiting up to one polling interval, while the outbox (and its
at-least-once claim) stays the only way a message leaves. The interval still runs, for hazard
reminders, retries with back-off and anything a wake-up missed.

Rows are claimed ``CLAIM_BATCH`` at a time under a short, renewed lease (outbox.py), and after each
run the ``Sender`` sleeps only until the next row falls due — a retry's back-off, the end of quiet
hours, or the end of the lease of a sender that was killed mid-batch — so a server restarted after a
crash sends what the dead one had claimed about one lease after the crash, by itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from hazardloop.alarms import service as alarms
from hazardloop.db import utcnow
from hazardloop.notify.bridge import pull_alarm_notifications, pull_hazard_notifications
from hazardloop.notify.channels.base import Transport
from hazardloop.notify.outbox import CLAIM_BATCH, DispatchReport, dispatch, next_due

log = logging.getLogger(__name__)


def run_once(session_factory: sessionmaker[Session], *, transport: Transport | None = None,
             batch: int = CLAIM_BATCH) -> DispatchReport:
    """One tick: bridge, then dispatch until nothing more is due (in small claims, so a backlog drains
    while other senders can take their share); ``next_due`` on the report says when to look again."""
    total = DispatchReport()
    with session_factory() as db:
        moved = pull_hazard_notifications(db, now=utcnow())
        if moved:
            log.info("notify: %d hazard notification(s) entered the outbox", len(moved))
        alarms.escalate_unacknowledged(db, utcnow())
        moved = pull_alarm_notifications(db, now=utcnow())
        if moved:
            log.info("notify: %d alarm notification(s) entered the outbox", len(moved))
        for _ in range(100):  # bounded: a tick never runs away from the scheduler
            report = dispatch(db, now=utcnow(), transport=transport, limit=batch)
            for name in ("sent", "retried", "dead", "deferred", "lost_claims"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            if report.sent + report.retried + report.dead + report.deferred + report.lost_claims == 0:
                break
        total.next_due = next_due(db)
    if total.sent or total.retried or total.dead:
        log.info("notify: sent %d, retrying %d, dead %d", total.sent, total.retried, total.dead)
    return total


class Sender:
    """``run_once`` on its own thread: every ``interval_seconds``, and right after each ``wake``.

    A wake during a run is kept (an Event), so a row added while the sender is busy is picked up
    by the very next run rather than the next interval. One HTTP client is kept for all sends.
    """

    def __init__(self, session_factory: sessionmaker[Session], *, interval_seconds: float = 30.0,
                 transport: Transport | None = None) -> None:
        self.session_factory, self.interval_seconds = session_factory, interval_seconds
        self._own_transport = transport is None
        self.transport = transport or Transport.default()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def wake(self) -> None:
        """Something may be waiting in the outbox (or the alarm queue): run now. Cheap, from any thread."""
        self._wake.set()

    def start(self) -> Sender:
        self._thread = threading.Thread(target=self._loop, name="hazardloop-notify-sender", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._own_transport:
            self.transport.http.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            wait = self.interval_seconds
            try:
                report = run_once(self.session_factory, transport=self.transport)
                wait = self._until(report.next_due)
            except Exception:  # a database hiccup must not end notifications for good; say what broke
                log.exception("notify: a sender run failed; trying again at the next wake or interval")
            self.runs += 1
            self._wake.wait(wait)

    def _until(self, due: dt.datetime | None) -> float:
        """Seconds to sleep: until ``due`` (a little after, so it has passed), at most the interval."""
        if due is None:
            return self.interval_seconds
        return min(self.interval_seconds, max(0.05, (due - utcnow()).total_seconds() + 0.05))


def start_scheduler(session_factory: sessionmaker[Session], *, interval_seconds: int = 30,
                    scheduler: BackgroundScheduler | None = None) -> BackgroundScheduler:
    """Add the notify job (coalesced, never overlapping itself) to `scheduler`, or to a new started one."""
    own = scheduler is None
    scheduler = scheduler or BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        run_once,
        "interval",
        seconds=interval_seconds,
        args=[session_factory],
        id="notify-outbox",
        coalesce=True,
        max_instances=1,
        next_run_time=utcnow(),
        replace_existing=True,
    )
    if own:
        scheduler.start()
    return scheduler
