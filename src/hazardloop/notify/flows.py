"""The in-process notify job (APScheduler): hand hazard notifications to the outbox, then send what is due.

Safe to run in several processes at once: the bridge and the claim are both compare-and-set,
so the worst a restart or a second worker can do is send a message at least once, never lose it.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from hazardloop.alarms import service as alarms
from hazardloop.db import utcnow
from hazardloop.notify.bridge import pull_alarm_notifications, pull_hazard_notifications
from hazardloop.notify.channels.base import Transport
from hazardloop.notify.outbox import DispatchReport, dispatch

log = logging.getLogger(__name__)


def run_once(session_factory: sessionmaker[Session], *, transport: Transport | None = None) -> DispatchReport:
    """One tick: bridge, then dispatch until nothing more is due (in batches, so a backlog drains)."""
    total = DispatchReport()
    with session_factory() as db:
        moved = pull_hazard_notifications(db, now=utcnow())
        if moved:
            log.info("notify: %d hazard notification(s) entered the outbox", len(moved))
        alarms.escalate_unacknowledged(db, utcnow())
        moved = pull_alarm_notifications(db, now=utcnow())
        if moved:
            log.info("notify: %d alarm notification(s) entered the outbox", len(moved))
        for _ in range(20):  # bounded: a tick never runs away from the scheduler
            report = dispatch(db, now=utcnow(), transport=transport)
            for name in ("sent", "retried", "dead", "deferred", "lost_claims"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            if report.sent + report.retried + report.dead + report.deferred + report.lost_claims == 0:
                break
    if total.sent or total.retried or total.dead:
        log.info("notify: sent %d, retrying %d, dead %d", total.sent, total.retried, total.dead)
    return total


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
