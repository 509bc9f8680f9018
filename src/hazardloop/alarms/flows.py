"""The scheduled side of alarms: learning from people's verdicts every night, without anyone asking.

``POST /api/v1/alarms/recalibrate`` runs the same learning on demand; the nightly job is that call made
by the system (audited with no actor), bounded by the same ``CalibrationRule`` (a limit never rises
above ``cap_factor`` × the default, configured L/LL/H/HH never move). After it commits, the running
live detection is told to re-read the calibration row, so the new limits apply from the next batch
rather than the next restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.orm import Session, sessionmaker

from hazardloop.alarms import learning
from hazardloop.alarms.learning import Calibration
from hazardloop.db import utcnow

log = logging.getLogger(__name__)

JOB_ID = "alarm-recalibration"
NIGHTLY_AT = (2, 30)  # UTC: 10:30 at night in China, after the day shift's verdicts are in


def recalibrate(session_factory: sessionmaker[Session], *, name: str = "live",
                then: Callable[[], None] | None = None) -> list[Calibration]:
    """One run: recompute the statistical limits from all verdicts, then call ``then`` (reload them)."""
    with session_factory() as db:
        results = learning.recalibrate(db, now=utcnow(), actor=None, name=name)
    changed = [c for c in results if c.changed]
    if changed:
        log.info("recalibration: %d statistical limit(s) changed from verdicts: %s", len(changed),
                 ", ".join(f"{c.tag} {c.previous:g}→{c.z_limit:g}" for c in changed))
    for c in results:
        if c.needs_review:
            log.warning("recalibration: %s has false alarms beyond the cap; a person should look at it", c.tag)
    if then is not None:
        then()
    return results


def add_recalibration_job(scheduler: BaseScheduler, session_factory: sessionmaker[Session], *,
                          at: tuple[int, int] = NIGHTLY_AT, name: str = "live",
                          then: Callable[[], None] | None = None) -> Job:
    """Add the nightly run to the app's scheduler: coalesced, never overlapping itself, and run late
    (within an hour) rather than skipped when the server was busy or down at that minute."""
    hour, minute = at
    return scheduler.add_job(
        recalibrate,
        "cron",
        hour=hour,
        minute=minute,
        args=[session_factory],
        kwargs={"name": name, "then": then},
        id=JOB_ID,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
        replace_existing=True,
    )
