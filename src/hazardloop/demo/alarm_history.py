"""The demo plant's recent alarms, as a shift team would have left them: raised, acknowledged, judged.

Without a history a new demo opens on an empty alarm console and a cockpit whose alarm figures (alarms
today, false-alarm rate, time to acknowledge) read zero until the live stream happens to inject a
fault. So the build runs the last ``days`` of the simulated plant through the product itself: the
readings go into the reading store (each alarm's page charts its sensor around it), live detection —
under a detector name of its own, so the server's live detector still starts fresh — judges them day by
day, and a simulated operator acknowledges each alarm after a realistic delay and judges it from the
simulator's ground truth (an alarm overlapping an injected event on its own sensor is true, or a sensor
fault for a sensor failure; anything else false). Alarms of the last ``UNHANDLED`` are left for the user.
Nothing is written around the services: the audit chain, the timeline and the notification queue are
exactly what a real plant's two weeks would leave.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from hazardloop.alarms import service
from hazardloop.alarms.live import LiveDetection
from hazardloop.alarms.models import Alarm, Severity, Verdict
from hazardloop.auth.models import User
from hazardloop.demo.signals import PROCESS_FAULT, InjectedEvent, simulate
from hazardloop.demo.spec import load_plant_spec
from hazardloop.plant import service as plant

DETECTOR = "demo-history"
STEP = dt.timedelta(minutes=1)
FIT = dt.timedelta(days=2)  # simulated before the history starts: normal is learned from it, as at commissioning
UNHANDLED = dt.timedelta(hours=2)
#: What the simulated operator writes with each verdict (demo content, as the hazard year's texts).
COMMENTS = {
    Verdict.TRUE_ALARM: ("现场确认，已按规程处置", "现场核实属实，已通知工艺调整", "巡检确认，已隔离处理"),
    Verdict.FALSE_ALARM: ("现场核实无异常", "工况波动，非真实报警", "现场检查正常，继续观察"),
    Verdict.SENSOR_FAULT: ("仪表故障，已通知仪表班", "变送器读数异常，已报修", "探头故障，已安排校验"),
}


@dataclass(frozen=True)
class AlarmHistory:
    readings: int
    raised: int
    judged: dict[str, int]
    unhandled: int


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def overlaps(alarm: Alarm, event: InjectedEvent, horizon: dt.datetime) -> bool:
    """Whether the alarm (still on at ``horizon`` if not cleared) touched the event on one of its sensors."""
    end = alarm.cleared_at or horizon
    return alarm.tag in event.tags and alarm.first_at <= _utc(event.end) and end >= _utc(event.start)


def truth_of(alarm: Alarm, events: Sequence[InjectedEvent], horizon: dt.datetime) -> Verdict:
    """What an operator who went and looked would say: the injected events on the alarm's own sensor."""
    hits = [e for e in events if overlaps(alarm, e, horizon)]
    if any(e.kind == PROCESS_FAULT for e in hits):
        return Verdict.TRUE_ALARM
    return Verdict.SENSOR_FAULT if hits else Verdict.FALSE_ALARM


def build_alarm_history(db: Session, store: Any, *, days: int, seed: int, now: dt.datetime,  # noqa: ANN401
                        admin: User, operator: User) -> AlarmHistory:
    """Simulate, store, detect and judge the ``days`` before ``now``; returns what it made."""
    spec = load_plant_spec()
    end = _utc(now).replace(second=0, microsecond=0)
    start = end - dt.timedelta(days=days) - FIT
    sim = simulate(spec, start=start, duration=end - start, step=STEP, seed=seed)
    ids = {s.tag: s.id for s in plant.list_sensors(db, actor=admin)}
    cols = [j for j, tag in enumerate(sim.tags) if tag in ids]
    ts_ms = sim.timestamps.astype("datetime64[ms]").astype(np.int64)
    n_fit = int(FIT / STEP)
    # the readings after the fit window: what the plant's historian holds for the history
    values = sim.values[n_fit:, cols]
    good = np.isfinite(values)
    sensor = np.broadcast_to(np.array([ids[sim.tags[j]] for j in cols]), values.shape)
    stamps = np.broadcast_to(ts_ms[n_fit:, None], values.shape)
    stored = store.insert(sensor[good], stamps[good], values[good]).inserted

    live = LiveDetection.start(db, actor=admin, name=DETECTOR)
    live.fit({tag: sim.values[:n_fit, j] for j, tag in enumerate(sim.tags)})
    seconds = ts_ms / 1000.0
    per_day = int(dt.timedelta(days=1) / STEP)
    for lo in range(n_fit, len(seconds), per_day):
        rows = slice(lo, min(lo + per_day, len(seconds)))
        live.process(db, seconds[rows], {tag: sim.values[rows, j] for j, tag in enumerate(sim.tags)})
    history_start = start + FIT
    for alarm in db.scalars(select(Alarm).where(Alarm.active, Alarm.first_at >= history_start)).all():
        # the history stops here, and so does every condition still on (as a late backlog's do)
        service.clear(db, sensor_id=alarm.sensor_id, alarm_type=alarm.type, at=end, note="end of the demo history")
    service.drop_detector_blob(db, DETECTOR)
    db.commit()

    alarms = list(db.scalars(select(Alarm).where(Alarm.first_at >= history_start).order_by(Alarm.first_at)))
    rng = np.random.default_rng(seed + 1)
    judged = {v.value: 0 for v in Verdict}
    unhandled = 0
    for alarm in alarms:
        if alarm.first_at > end - UNHANDLED:
            unhandled += 1
            continue
        urgent = alarm.severity == Severity.CRITICAL.value
        ack_at = min(end, alarm.first_at + dt.timedelta(minutes=float(rng.lognormal(np.log(1.5 if urgent else 4.0),
                                                                                       0.7))))
        service.acknowledge(db, actor=operator, alarm_id=alarm.id, note="demo shift", now=ack_at)
        verdict = truth_of(alarm, sim.events, end)
        verdict_at = min(end, ack_at + dt.timedelta(minutes=float(rng.lognormal(np.log(10.0), 0.6))))
        comment = str(rng.choice(COMMENTS[verdict]))
        service.give_verdict(db, actor=operator, alarm_id=alarm.id, verdict=verdict, comment=comment,
                             now=verdict_at)
        judged[verdict.value] += 1
    _hand_over_notifications(db, end)
    return AlarmHistory(readings=int(stored), raised=len(alarms), judged=judged, unhandled=unhandled)


def _hand_over_notifications(db: Session, at: dt.datetime) -> None:
    """The history's raise messages go through the notify bridge as they would have (the demo has no
    channels, so nothing is sent), so a channel added later does not receive two-week-old alarms."""
    from hazardloop.notify.bridge import pull_alarm_notifications

    while service.pending_alarm_notifications(db, limit=1):
        pull_alarm_notifications(db, now=at)
