"""Quiet hours (免打扰): a local-time window in which general notifications wait until morning.

Urgent ones never wait (a 重大 hazard, an HH alarm, an escalation at step 3 or higher): the
point of quiet hours is to spare people routine pings at night, not to delay a real danger.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hazardloop.errors import InvalidInput

URGENT_ESCALATION_STEP = 3
URGENT_SEVERITIES = {"major", "HH", "LL"}


def is_urgent(*, severity: str | None = None, escalation_step: int = 0, flagged: bool = False) -> bool:
    return flagged or severity in URGENT_SEVERITIES or escalation_step >= URGENT_ESCALATION_STEP


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"unknown time zone '{name}' (use an IANA name such as Asia/Shanghai)") from None


def _hhmm(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def hold_until(now: dt.datetime, *, start: str | None, end: str | None, timezone: str) -> dt.datetime | None:
    """The UTC time the window ends if `now` lies inside it, else None. Windows may cross midnight."""
    if not start or not end or start == end:
        return None
    tz = zone(timezone)
    local = now.astimezone(tz)
    begin, finish = _hhmm(start), _hhmm(end)
    today = local.time()
    if begin < finish:
        inside = begin <= today < finish
        end_day = local.date()
    else:  # e.g. 22:00-07:00
        inside = today >= begin or today < finish
        end_day = local.date() + dt.timedelta(days=1) if today >= begin else local.date()
    if not inside:
        return None
    return dt.datetime.combine(end_day, finish, tzinfo=tz).astimezone(dt.UTC)
