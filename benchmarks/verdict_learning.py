"""Learning from verdicts on the demo plant: do false alarms drop while every injected fault is still caught?

Two weeks of the demo plant at 1-minute steps (fixed seed). Week 1: live detection (fitted on its first
``FIT_DAYS`` days, as at commissioning) raises alarms, and a simulated operator judges every one from
the ground truth — an alarm overlapping an injected event window on its own sensor is a true alarm (a
sensor-failure event: a sensor fault), anything else a false alarm. ``alarms.learning.recalibrate``
then learns per-sensor statistical limits. Week 2 runs twice on the same data from the same saved
state: without and with the calibration. Reported: statistical false alarms per day, all false alarms
per day, limit-alarm counts (which learning must not change) and, per injected week-2 event, whether
any alarm on an affected sensor fell inside its window. The run fails (exit 1) if learning loses a
caught event or changes any limit alarm.

    .venv/bin/python benchmarks/verdict_learning.py            # ~1 minute on 2 cores
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, console, machine, markdown_table, rich_table  # noqa: E402
from hazardloop import db as hl_db  # noqa: E402
from hazardloop.alarms import service  # noqa: E402
from hazardloop.alarms.learning import Calibration, CalibrationRule, recalibrate  # noqa: E402
from hazardloop.alarms.live import LiveDetection  # noqa: E402
from hazardloop.alarms.models import Alarm, AlarmType, Verdict  # noqa: E402
from hazardloop.auth.models import User  # noqa: E402
from hazardloop.demo.alarm_history import overlaps, truth_of  # noqa: E402
from hazardloop.demo.build import DEMO_START, DEMO_STEP, build_demo  # noqa: E402
from hazardloop.demo.signals import InjectedEvent, Simulation, simulate  # noqa: E402
from hazardloop.demo.spec import load_plant_spec  # noqa: E402

SEED = 7
DAYS_PER_WEEK = 7
FIT_DAYS = 2
START = DEMO_START.replace(tzinfo=dt.UTC)
WEEK = dt.timedelta(days=DAYS_PER_WEEK)
STAT = AlarmType.STATISTICAL.value
SENSITIVITY_CAPS = (4.0, 40.0)  # what a looser bound would buy, shown next to the default rule, never applied


@dataclass(frozen=True)
class Window:
    """One injected event in UTC, with the sensors it touched."""

    kind: str
    cause: str
    tags: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def of(cls, event: InjectedEvent) -> Window:
        utc = [t if t.tzinfo else t.replace(tzinfo=dt.UTC) for t in (event.start, event.end)]
        return cls(event.kind, event.cause, event.tags, utc[0], utc[1])

    def overlaps(self, alarm: Alarm, horizon: dt.datetime) -> bool:
        return overlaps(alarm, self, horizon)  # type: ignore[arg-type]  # same fields as an InjectedEvent


def truth_verdict(alarm: Alarm, windows: list[Window], horizon: dt.datetime) -> Verdict:
    """What an operator who knew the injected truth would say (the demo's alarm history judges alike)."""
    return truth_of(alarm, windows, horizon)  # type: ignore[arg-type]


def open_db(path: Path) -> Session:
    return hl_db.make_session_factory(hl_db.make_engine(f"sqlite:///{path}"))()


def close_db(db: Session) -> None:
    engine = db.get_bind()
    db.close()
    engine.dispose()  # checkpoints the WAL, so the file can be copied whole


def run_span(db: Session, live: LiveDetection, sim: Simulation, first_day: int, days: int) -> None:
    """Feed whole days, one batch per day (the way a backfill would)."""
    n = int(dt.timedelta(days=1) / DEMO_STEP)
    ts = sim.timestamps.astype("datetime64[s]").astype(np.int64).astype(float)
    for day in range(first_day, first_day + days):
        rows = slice(day * n, (day + 1) * n)
        live.process(db, ts[rows], {tag: sim.values[rows, j] for j, tag in enumerate(sim.tags)})


def alarms_between(db: Session, lo: dt.datetime, hi: dt.datetime) -> list[Alarm]:
    return list(db.scalars(select(Alarm).where(Alarm.first_at >= lo, Alarm.first_at < hi).order_by(Alarm.id)))


@dataclass
class WeekResult:
    stat_false: int
    all_false: int
    limit_alarms: Counter
    caught: list[bool]
    caught_by_stat: list[bool]


def judge_week(alarms: list[Alarm], windows: list[Window], horizon: dt.datetime) -> WeekResult:
    verdicts = [truth_verdict(a, windows, horizon) for a in alarms]
    caught = [any(w.overlaps(a, horizon) for a in alarms) for w in windows]
    by_stat = [any(w.overlaps(a, horizon) for a in alarms if a.type == STAT) for w in windows]
    return WeekResult(
        stat_false=sum(v is Verdict.FALSE_ALARM and a.type == STAT for a, v in zip(alarms, verdicts, strict=True)),
        all_false=sum(v is Verdict.FALSE_ALARM for v in verdicts),
        limit_alarms=Counter((a.tag, a.type, a.first_at) for a in alarms if a.type.startswith("limit_")),
        caught=caught, caught_by_stat=by_stat)


def week_two(base: Path, path: Path, sim: Simulation, windows: list[Window],
             rule: CalibrationRule | None, operating_states: bool = True) -> tuple[WeekResult, list[Calibration]]:
    """Week 2 from a copy of the labelled week-1 database; ``rule`` None runs without learning."""
    shutil.copy(base, path)
    db = open_db(path)
    calibrations = recalibrate(db, now=START + WEEK, rule=rule) if rule is not None else []
    admin = db.scalar(select(User).where(User.username == "admin"))
    # loads the saved state and the calibration, if any
    live = LiveDetection.start(db, actor=admin, operating_states=operating_states)
    run_span(db, live, sim, DAYS_PER_WEEK, DAYS_PER_WEEK)
    result = judge_week(alarms_between(db, START + WEEK, START + 2 * WEEK), windows, START + 2 * WEEK)
    close_db(db)
    return result, calibrations


@dataclass
class Run:
    before1: WeekResult
    without: WeekResult
    with_: WeekResult
    calibrations: list[Calibration]
    sensitivity: dict[float, WeekResult]


def run(sim: Simulation, windows: list[Window], rule: CalibrationRule, tmp: Path, *,
        operating_states: bool = True, caps: tuple[float, ...] = SENSITIVITY_CAPS) -> Run:
    """Week 1 (labelled by the simulated operator), then week 2 without and with learning."""
    week1 = [w for w in windows if w.start < START + WEEK]
    week2 = [w for w in windows if w.start >= START + WEEK]
    tmp.mkdir(parents=True, exist_ok=True)
    base = tmp / "week1.db"
    hl_db.upgrade(f"sqlite:///{base}")
    db = open_db(base)
    build_demo(db, data_dir=tmp, seed=SEED, days=1, hazards_per_day=0, today=START)
    admin = db.scalar(select(User).where(User.username == "admin"))
    operator = db.scalar(select(User).where(User.username == "operator"))
    live = LiveDetection.start(db, actor=admin, z_limit=rule.default_z, operating_states=operating_states)
    n_fit = int(dt.timedelta(days=FIT_DAYS) / DEMO_STEP)
    live.fit({tag: sim.values[:n_fit, j] for j, tag in enumerate(sim.tags)})
    run_span(db, live, sim, 0, DAYS_PER_WEEK)
    alarms1 = alarms_between(db, START, START + WEEK)
    before1 = judge_week(alarms1, week1, START + WEEK)
    for alarm in alarms1:
        service.give_verdict(db, actor=operator, alarm_id=alarm.id,
                             verdict=truth_verdict(alarm, week1, START + WEEK), now=START + WEEK)
    close_db(db)
    without, _ = week_two(base, tmp / "without.db", sim, week2, None, operating_states)
    with_, calibrations = week_two(base, tmp / "with.db", sim, week2, rule, operating_states)
    sensitivity = {factor: week_two(base, tmp / f"cap{factor:g}.db", sim, week2,
                                    CalibrationRule(cap_factor=factor), operating_states)[0] for factor in caps}
    return Run(before1, without, with_, calibrations, sensitivity)


def main() -> int:
    began = time.perf_counter()
    spec = load_plant_spec()
    sim = simulate(spec, start=START, duration=2 * WEEK, step=DEMO_STEP, seed=SEED)
    windows = [Window.of(e) for e in sim.events]
    week2 = [w for w in windows if w.start >= START + WEEK]
    rule = CalibrationRule()
    with tempfile.TemporaryDirectory() as tmp:
        shipped = run(sim, windows, rule, Path(tmp) / "states")
        single = run(sim, windows, rule, Path(tmp) / "single", operating_states=False, caps=())
    seconds = time.perf_counter() - began
    return report(sim, week2, shipped, single, rule, seconds)


def single_state_table(shipped: Run, single: Run) -> tuple[list[str], list[list[str]]]:
    """The same runs with one normal state per sensor (``operating_states=False``), beside the default."""
    def cells(r: Run, figure: str) -> list[str]:
        if figure == "caught":
            return [f"{sum(w.caught)}/{len(w.caught)}" for w in (r.before1, r.without, r.with_)]
        return [f"{getattr(w, figure) / DAYS_PER_WEEK:.1f}" for w in (r.before1, r.without, r.with_)]

    header = ["figure", "normal states", "week 1", "week 2 without learning", "week 2 with learning"]
    rows = []
    for label, figure in (("statistical false alarms / day", "stat_false"), ("all false alarms / day", "all_false"),
                          ("injected events caught", "caught")):
        rows.append([label, "one per sensor", *cells(single, figure)])
        rows.append(["", "operating states (default)", *cells(shipped, figure)])
    return header, rows


def report(sim, week2, shipped: Run, single: Run, rule, seconds) -> int:  # noqa: ANN001
    before1, without, with_ = shipped.before1, shipped.without, shipped.with_
    calibrations, sensitivity = shipped.calibrations, shipped.sensitivity
    per_day = DAYS_PER_WEEK
    lost = [w for w, a, b in zip(week2, without.caught, with_.caught, strict=True) if a and not b]
    limits_same = without.limit_alarms == with_.limit_alarms
    changed = [c for c in calibrations if c.changed]
    review = [c.tag for c in calibrations if c.needs_review]
    rows = [
        ["statistical false alarms / day", f"{before1.stat_false / per_day:.1f}",
         f"{without.stat_false / per_day:.1f}", f"{with_.stat_false / per_day:.1f}"],
        ["all false alarms / day", f"{before1.all_false / per_day:.1f}", f"{without.all_false / per_day:.1f}",
         f"{with_.all_false / per_day:.1f}"],
        ["limit alarms (L/LL/H/HH)", str(sum(before1.limit_alarms.values())),
         str(sum(without.limit_alarms.values())), str(sum(with_.limit_alarms.values()))],
        ["injected events caught", f"{sum(before1.caught)}/{len(before1.caught)}",
         f"{sum(without.caught)}/{len(week2)}", f"{sum(with_.caught)}/{len(week2)}"],
        ["… of them by a statistical alarm", f"{sum(before1.caught_by_stat)}", f"{sum(without.caught_by_stat)}",
         f"{sum(with_.caught_by_stat)}"],
    ]
    header = ["figure", "week 1 (labelled)", "week 2 without learning", "week 2 with learning"]
    events = [[w.start.strftime("%m-%d %H:%M"), w.kind, w.cause, " ".join(w.tags), "yes" if a else "no",
               "yes" if b else "no"] for w, a, b in zip(week2, without.caught, with_.caught, strict=True)]
    ev_header = ["start (UTC)", "kind", "cause", "sensors", "caught without", "caught with"]
    cal_rows = [[c.tag, f"{c.previous:g}", f"{c.z_limit:.2f}", str(c.false_alarms), str(c.true_alarms),
                 f"{c.highest_false_z:.1f}" if c.highest_false_z is not None else "–",
                 f"{c.lowest_true_z:.1f}" if c.lowest_true_z is not None else "–",
                 "yes" if c.needs_review else ""] for c in calibrations]
    cal_header = ["sensor", "limit before", "learned limit", "false", "true", "max false z", "min true z",
                  "beyond cap: person to review"]
    console.print(rich_table("Learning from verdicts — demo plant", header, rows))
    console.print(rich_table("Week-2 injected events", ev_header, events))
    console.print(rich_table("Learned statistical limits", cal_header, cal_rows))
    sens_header = ["cap (× default)", "statistical false alarms / day", "events caught", "lost vs without"]
    sens_rows = [[f"{rule.cap_factor:g} (default rule)", f"{with_.stat_false / per_day:.1f}",
                  f"{sum(with_.caught)}/{len(week2)}", str(len(lost))]]
    for factor, r in sensitivity.items():
        lost_here = sum(a and not b for a, b in zip(without.caught, r.caught, strict=True))
        sens_rows.append([f"{factor:g}", f"{r.stat_false / per_day:.1f}", f"{sum(r.caught)}/{len(week2)}",
                          str(lost_here)])
    console.print(rich_table("Sensitivity: a looser cap (not the shipped rule)", sens_header, sens_rows))
    states_header, states_rows = single_state_table(shipped, single)
    console.print(rich_table("Operating states against one normal state per sensor", states_header, states_rows))
    ok = not lost and limits_same
    verdict = ("PASS: no caught event lost, limit alarms identical" if ok else
               f"FAIL: lost {[(w.cause, w.tags) for w in lost]}; limit alarms identical: {limits_same}")
    console.print(f"[{'green' if ok else 'red'}]{verdict}[/]  ({seconds:.0f} s)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    chart(without, with_, before1)
    drop = 1 - with_.stat_false / without.stat_false if without.stat_false else 0.0
    text = f"""# Learning from verdicts (demo plant)

`.venv/bin/python benchmarks/verdict_learning.py` — seed {SEED}, {sim.values.shape[1]} sensors, 1-minute steps,
two weeks from {START:%Y-%m-%d}; detector fitted on the first {FIT_DAYS} days; {machine()}; {seconds:.0f} s.

Week 1: live detection raises alarms; a simulated operator judges every one from the injected ground
truth (overlaps an event window on its own sensor: true alarm, or sensor fault for a sensor-failure
event; otherwise false alarm); `alarms.learning.recalibrate` learns per-sensor statistical limits.
Week 2 runs twice on the same data from the same saved state, without and with the calibration.

Rule: limit = max(default, min({rule.cap_factor:g} × default, {rule.false_margin:g} × max false-alarm peak z,
{rule.true_margin:g} × min true-alarm peak z)), default {rule.default_z:g}. Configured L/LL/H/HH limits never move.

{markdown_table(header, rows)}

Statistical false alarms in week 2: {without.stat_false} → {with_.stat_false} ({drop:.0%} fewer).
{len(changed)} sensors recalibrated; {len(review)} have false alarms peaking beyond the cap and are left
for a person to review (a statistical detector that does not fit the sensor, e.g. intermittent duty):
{", ".join(review) or "none"}.

**{verdict}**

## Intermittent-duty sensors: operating states

The same two weeks with one normal state (median, MAD) per sensor, `LiveDetection(operating_states=False)`,
beside the default, which learns a second operating state where a sensor's history switches between two
separate ones (the loading pump's flow, current and pressures while it runs and while it stands;
`detect.stats.operating_states`) and judges each reading against the nearer state.

{markdown_table(states_header, states_rows)}

## Sensitivity: a looser cap (reported only; the shipped rule is the default above)

{markdown_table(sens_header, sens_rows)}

## Week-2 injected events

{markdown_table(ev_header, events)}

## Learned limits

{markdown_table(cal_header, cal_rows)}

![false alarms per day](verdict_learning.png)
"""
    (RESULTS / "verdict_learning.md").write_text(text, encoding="utf-8")
    return 0 if ok else 1


def chart(without: WeekResult, with_: WeekResult, before1: WeekResult) -> None:
    import matplotlib.pyplot as plt

    labels = ["statistical false\nalarms / day", "all false\nalarms / day"]
    series = {"week 1 (labelled)": before1, "week 2 without learning": without, "week 2 with learning": with_}
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.25
    for i, (name, r) in enumerate(series.items()):
        values = [r.stat_false / DAYS_PER_WEEK, r.all_false / DAYS_PER_WEEK]
        bars = ax.bar(np.arange(len(labels)) + (i - 1) * width, values, width, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.set_ylabel("alarms per day")
    ax.set_title("Demo plant: false alarms before and after learning from verdicts")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "verdict_learning.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
