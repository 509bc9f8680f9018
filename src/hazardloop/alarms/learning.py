"""Learning from verdicts: people's true/false judgements recalibrate each sensor's statistical limit.

An operator who marks a statistical alarm false is telling us that this sensor's normal is wider than
the robust z learned from history (a noisy transmitter, a process that swings with the load). The
alarm console keeps every such label; this module turns them into a per-sensor robust-z limit that
live detection applies (``LiveDetection.load_calibration`` on start, or ``apply_calibration``).

What learning may and may not move, and why:

* Only the statistical detector. Configured L/LL/H/HH limits of gas detectors and process sensors are
  regulatory and engineering settings (GB/T 50493, the plant's HAZOP); a false H alarm is a question
  of maintenance or configuration for a person, never something a label quietly shifts.
* Bounded: the limit never rises above ``cap_factor`` × the default, so however many alarms are
  marked false, a sensor's statistical detector is never switched off by learning. A sensor whose false
  alarms peak beyond the cap is flagged (``needs_review``) for a person instead.
* Reversible: a confirmed true statistical alarm (or one judged a sensor fault — the detector caught
  something real) holds the limit below its peak, so learning never makes the detector deaf to what it
  has been right about. The limit is recomputed from all verdicts each time, not ratcheted, so a
  corrected verdict undoes its effect on the next run.

The rule, per sensor with judged statistical alarms (z = robust z of the alarm's peak reading against
the sensor's learned normal):

    raised  = false_margin × max(z of false alarms)                 (default margin 1.1)
    ceiling = true_margin  × min(z of true / sensor-fault alarms)   (default margin 0.9)
    limit   = max(default, min(cap_factor × default, raised, ceiling))

A sensor without false verdicts keeps the default. Every change is audited (``detector.recalibrate``)
and stored in the ``DetectorState`` row ``calibration_name(name)``, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from sqlalchemy.orm import Session

from hazardloop.alarms import service
from hazardloop.alarms.live import CALIBRATION_VERSION, calibration_name, loads_state
from hazardloop.alarms.models import Alarm, AlarmType, Verdict
from hazardloop.auth import audit, authz
from hazardloop.auth.models import User
from hazardloop.errors import InvalidInput


@dataclass(frozen=True)
class CalibrationRule:
    """The numbers of the rule above; ``default_z`` must match the live detector's ``z_limit``."""

    default_z: float = 6.0
    cap_factor: float = 2.0  # the limit rises at most to cap_factor × default_z
    false_margin: float = 1.1  # just above the worst false alarm, so that same excursion stays quiet
    true_margin: float = 0.9  # clearly below the mildest confirmed true alarm, so it would fire again

    def __post_init__(self) -> None:
        if not (self.default_z > 0 and self.cap_factor >= 1 and self.false_margin >= 1 and 0 < self.true_margin <= 1):
            raise InvalidInput("rule", "need default_z > 0, cap_factor >= 1, false_margin >= 1, 0 < true_margin <= 1")

    @property
    def cap(self) -> float:
        return self.cap_factor * self.default_z

    def limit(self, false_z: Sequence[float], true_z: Sequence[float]) -> float:
        """The statistical limit for one sensor from the robust z peaks of its judged alarms."""
        limit = self.default_z
        if false_z:
            limit = min(self.cap, self.false_margin * max(false_z))
        if true_z:
            limit = min(limit, self.true_margin * min(true_z))
        return max(self.default_z, limit)


@dataclass(frozen=True)
class Calibration:
    """One sensor's learned statistical limit and the labels it rests on."""

    tag: str
    sensor_id: int | None
    z_limit: float
    previous: float
    false_alarms: int
    true_alarms: int  # true alarms and sensor faults caught by the statistical detector
    highest_false_z: float | None
    lowest_true_z: float | None
    needs_review: bool  # false alarms peak beyond the cap: a person should look at this sensor's detector
    rule: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return not math.isclose(self.z_limit, self.previous)


@dataclass(frozen=True)
class _Normal:
    """Each sensor's learned normal, read from the live detector's saved state (by tag)."""

    median: dict[str, float]
    inv_scale: dict[str, float]
    fitted: dict[str, bool]
    alt_median: dict[str, float] = field(default_factory=dict)  # upper operating state (NaN: none)
    alt_inv_scale: dict[str, float] = field(default_factory=dict)

    def z(self, alarm: Alarm) -> float | None:
        """The peak's z as the detector judged it: against the nearer operating state."""
        reading = alarm.peak if alarm.peak is not None else alarm.value
        if reading is None or not self.fitted.get(alarm.tag, False):
            return None
        z = abs(reading - self.median[alarm.tag]) * self.inv_scale[alarm.tag]
        alt = self.alt_median.get(alarm.tag, math.nan)
        if math.isfinite(alt):
            z = min(z, abs(reading - alt) * self.alt_inv_scale[alarm.tag])
        return float(z) if math.isfinite(z) else None


def _normal(db: Session, name: str) -> _Normal | None:
    blob = service.detector_blob(db, name)
    if blob is None:
        return None
    state = loads_state(blob)
    tags = list(state["tags"])
    monitor = state["monitor"]
    column = {key: dict(zip(tags, map(float, monitor[key]), strict=True))
              for key in ("median_", "inv_scale_", "alt_median_", "alt_inv_scale_") if key in monitor}
    return _Normal(median=column["median_"], inv_scale=column["inv_scale_"],
                   fitted=dict(zip(tags, map(bool, state["fitted"]), strict=True)),
                   alt_median=column.get("alt_median_", {}), alt_inv_scale=column.get("alt_inv_scale_", {}))


def stored_calibration(db: Session, name: str = "live") -> dict[str, float]:
    """The stored per-tag statistical limits of detector ``name`` (empty: the default everywhere)."""
    blob = service.detector_blob(db, calibration_name(name))
    if blob is None:
        return {}
    return {str(tag): float(v) for tag, v in json.loads(blob).get("z_limit", {}).items()}


def recalibrate(db: Session, *, now: dt.datetime, actor: User | None = None, name: str = "live",
                rule: CalibrationRule | None = None) -> list[Calibration]:
    """Recompute every judged sensor's statistical limit from all verdicts; store, audit and return them.

    ``actor`` None is the system's nightly run; a person running it needs ``sensor.write`` (tuning
    detectors is the instrument engineer's job). ``name`` is the live detector whose normal the alarm
    peaks are measured against. Returns one ``Calibration`` per sensor with judged statistical alarms
    (``changed`` tells which moved); sensors without such labels keep the default. Commits.
    """
    if actor is not None:
        authz.require(actor, "sensor.write")
    rule = rule or CalibrationRule()
    normal = _normal(db, name)
    if normal is None:
        return []  # nothing fitted yet: peaks cannot be put in robust sigmas
    false_z: dict[str, list[float]] = {}
    true_z: dict[str, list[float]] = {}
    sensor_of: dict[str, int | None] = {}
    for alarm in service.judged_alarms(db, alarm_type=AlarmType.STATISTICAL.value, tags=normal.median.keys()):
        z = normal.z(alarm)
        if z is None:
            continue
        sensor_of[alarm.tag] = alarm.sensor_id
        bucket = false_z if alarm.verdict == Verdict.FALSE_ALARM.value else true_z
        bucket.setdefault(alarm.tag, []).append(z)
    previous = stored_calibration(db, name)
    results: list[Calibration] = []
    for tag in sorted(sensor_of):
        falses, trues = false_z.get(tag, []), true_z.get(tag, [])
        limit = rule.limit(falses, trues)
        results.append(Calibration(
            tag=tag, sensor_id=sensor_of[tag], z_limit=limit, previous=previous.get(tag, rule.default_z),
            false_alarms=len(falses), true_alarms=len(trues),
            highest_false_z=max(falses) if falses else None, lowest_true_z=min(trues) if trues else None,
            needs_review=bool(falses) and rule.false_margin * max(falses) > rule.cap, rule=asdict(rule)))
    _store(db, results, previous, rule, now=now, actor=actor, name=name)
    return results


def _store(db: Session, results: list[Calibration], previous: dict[str, float], rule: CalibrationRule, *,
           now: dt.datetime, actor: User | None, name: str) -> None:
    """Persist the full map (only limits that differ from the default) and audit each change, one commit."""
    limits = {c.tag: c.z_limit for c in results if not math.isclose(c.z_limit, rule.default_z)}
    dropped = [tag for tag in previous if tag not in {c.tag for c in results}]
    for tag in dropped:  # labels gone (alarms deleted): back to the default, audited like any change
        results.append(Calibration(tag=tag, sensor_id=None, z_limit=rule.default_z, previous=previous[tag],
                                   false_alarms=0, true_alarms=0, highest_false_z=None, lowest_true_z=None,
                                   needs_review=False, rule=asdict(rule)))
    for c in results:
        if not c.changed:
            continue
        audit.record(db, actor=actor, action="detector.recalibrate", target_type="sensor", target_id=c.sensor_id,
                     before={"tag": c.tag, "z_limit": c.previous},
                     after={"tag": c.tag, "z_limit": c.z_limit, "false_alarms": c.false_alarms,
                            "true_alarms": c.true_alarms, "highest_false_z": c.highest_false_z,
                            "lowest_true_z": c.lowest_true_z, "needs_review": c.needs_review},
                     note=f"statistical limit of {c.tag} from verdicts ({name})")
    blob = json.dumps({"version": CALIBRATION_VERSION, "default": rule.default_z, "z_limit": limits,
                       "rule": asdict(rule), "at": now.isoformat()}, separators=(",", ":"))
    service.store_detector_blob(db, name=calibration_name(name), blob=blob, now=now)
    db.commit()


# ---------------------------------------------------------------- relearning normal


def relearn_name(name: str) -> str:
    """The ``DetectorState`` row holding a pending request to relearn detector ``name``'s normal."""
    return f"{name}:relearn"


def request_relearn(db: Session, *, actor: User, hours: float, now: dt.datetime, name: str = "live") -> None:
    """Ask live detection to learn each sensor's normal afresh from the last ``hours`` of stored readings.

    Why a person asks, and the detector never does it by itself: after a turnaround, a new catalyst or a
    changed recipe the old normal is wrong for every sensor at once, but a detector that re-learned on
    its own would, just as readily, learn a slowly developing fault as the new normal. So the instrument
    engineer (``sensor.write``) picks the moment and the span; the request is stored, audited, and the
    process running detection (whichever holds the lock) applies it within ``calibration_every_s``.
    Verdict-learned limits and the configured L/LL/H/HH limits stay as they are. Commits.
    """
    authz.require(actor, "sensor.write")
    if not (math.isfinite(hours) and 1 <= hours <= 24 * 30):
        raise InvalidInput("hours", f"between 1 and 720 hours of history, got {hours:g}")
    blob = json.dumps({"hours": hours, "requested_by": actor.id, "at": now.isoformat()})
    service.store_detector_blob(db, name=relearn_name(name), blob=blob, now=now)
    audit.record(db, actor=actor, action="detector.relearn_requested", target_type="detector", target_id=None,
                 after={"detector": name, "hours": hours}, note=f"relearn the normal of {name}")
    db.commit()


def pending_relearn(db: Session, name: str = "live") -> float | None:
    """Hours of history a pending relearn request asks for, or None."""
    blob = service.detector_blob(db, relearn_name(name))
    return None if blob is None else float(json.loads(blob)["hours"])


def relearned(db: Session, *, name: str, sensors: int, hours: float) -> None:
    """Close a relearn request in the caller's transaction, audited as the system's act."""
    service.drop_detector_blob(db, relearn_name(name))
    audit.record(db, actor=None, action="detector.relearned", target_type="detector", target_id=None,
                 after={"detector": name, "hours": hours, "sensors_fitted": sensors},
                 note=f"normal of {name} relearned from {hours:g} h of readings")
