"""The in-process scheduler that drives deadlines (APScheduler), started by `hazardloop serve`."""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from hazardloop.db import utcnow
from hazardloop.hazards import deadlines

log = logging.getLogger(__name__)


def check_deadlines(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as db:
        created = deadlines.run(db, now=utcnow())
    if created:
        log.info("queued %d hazard reminder/escalation notification(s)", len(created))
    return len(created)


def start_scheduler(session_factory: sessionmaker[Session], *, interval_minutes: int = 10) -> BackgroundScheduler:
    """One job, coalesced, never overlapping itself; idempotency lives in deadlines.run, so a restart is safe."""
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        check_deadlines,
        "interval",
        minutes=interval_minutes,
        args=[session_factory],
        id="hazard-deadlines",
        coalesce=True,
        max_instances=1,
        next_run_time=utcnow(),
        replace_existing=True,
    )
    scheduler.start()
    return scheduler
