"""Per-channel rate limits, counted from the delivery history so that every worker sees the same count.

Numbers are the platforms' published limits (docs/infra.md §3): WeCom and DingTalk robots take
20 messages a minute (DingTalk then mutes the robot for 10 minutes), Feishu bots 100 a minute
and 5 a second. Sending over them does not go faster; it gets the robot throttled, so the
sender waits for a free slot instead (next_attempt_at), without spending an attempt.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hazardloop.notify.models import DeliveryAttempt

# kind -> [(max requests, per window)]
LIMITS: dict[str, list[tuple[int, dt.timedelta]]] = {
    "wecom": [(20, dt.timedelta(minutes=1))],
    "dingtalk": [(20, dt.timedelta(minutes=1))],
    "feishu": [(100, dt.timedelta(minutes=1)), (5, dt.timedelta(seconds=1))],
}


def next_free_slot(db: Session, *, channel_id: int, kind: str, now: dt.datetime) -> dt.datetime | None:
    """None when a request may go now; otherwise the earliest time one may."""
    latest: dt.datetime | None = None
    for limit, window in LIMITS.get(kind, []):
        since = now - window
        count = db.scalar(
            select(func.count()).where(DeliveryAttempt.channel_id == channel_id, DeliveryAttempt.at > since)
        ) or 0
        if count < limit:
            continue
        # the window frees a slot when the oldest of the last `limit` requests falls out of it
        times = db.scalars(
            select(DeliveryAttempt.at)
            .where(DeliveryAttempt.channel_id == channel_id, DeliveryAttempt.at > since)
            .order_by(DeliveryAttempt.at.desc())
            .limit(limit)
        ).all()
        free_at = min(times) + window + dt.timedelta(milliseconds=1)
        latest = free_at if latest is None else max(latest, free_at)
    return latest
