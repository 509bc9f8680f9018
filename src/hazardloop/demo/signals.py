"""Sensor readings for the demo plant, with injected faults and a record of what was injected.

Detectors can only be judged against known truth, and a demo only convinces if the trends look
like a plant: so readings here follow the day (ambient temperature, production and steam demand),
variables that are physically linked move together (reactor feed → reactor temperature and
pressure after a lag; truck loading → tank level, pump current and header pressure; steam draw →
drum pressure dip and level swell), and faults are injected on top with their exact windows kept
as ``InjectedEvent`` records.

How the model is computed, and why:

* Time is cut into one-day *epochs* counted from ``start``. Each epoch's readings come from
  random generators seeded with ``(seed, epoch)``, and each injected event lies wholly inside one
  epoch, so an event is applied in a single vectorised pass and a run of any length is just its
  epochs in order. ``simulate`` and ``stream`` share this code, so a stream's first rows equal the
  simulation of the same span, value for value.
* Only the few things with memory (autocorrelated noise, first-order lags) carry state from one
  epoch to the next; tank levels and truck loading are closed-form functions of the calendar day,
  balanced so that levels stay inside their alarm limits in normal operation.
* Per epoch the work is vectorised over time: Python loops run per sensor, per day or per event,
  never per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from hazardloop.demo.spec import PlantSpec, SensorSpec

EPOCH_S = 86_400
"""Length of one scheduling epoch; every injected event fits inside one."""

PROCESS_FAULT = "process_fault"
SENSOR_FAILURES = ("stuck", "dropout", "drift", "spike", "out_of_range")
EVENT_KINDS = (PROCESS_FAULT, *SENSOR_FAILURES)

# Per-kind measurement noise: (standard deviation as a fraction of the instrument span, correlation
# time in seconds). Transmitters are not white-noise sources; a short correlation time gives the
# slightly wandering trace operators are used to.
_NOISE: dict[str, tuple[float, float]] = {
    "combustible_gas": (0.003, 30.0),
    "h2s": (0.001, 30.0),
    "co": (0.001, 30.0),
    "toxic_gas": (0.003, 30.0),
    "o2": (0.002, 60.0),
    "temperature": (0.002, 120.0),
    "pressure": (0.002, 20.0),
    "level": (0.002, 60.0),
    "flow": (0.008, 10.0),
    "vibration": (0.004, 30.0),
    "current": (0.004, 10.0),
    "humidity": (0.01, 300.0),
}

# Healthy gas detectors read a small positive zero offset, as a fraction of span.
_GAS_BASELINE = {"combustible_gas": 0.008, "h2s": 0.002, "co": 0.004, "toxic_gas": 0.005}

_GAS_NAMES = {
    "combustible_gas": ("可燃气体", "Combustible gas"),
    "h2s": ("硫化氢", "H2S"),
    "co": ("一氧化碳", "Carbon monoxide"),
    "toxic_gas": ("有毒气体", "Toxic gas"),
}


@dataclass(frozen=True)
class InjectedEvent:
    """One injected fault and the readings it touched: the ground truth for scoring detectors.

    ``start`` and ``end`` are the first and last affected sample times (inclusive), in the same
    clock as ``Simulation.timestamps``. ``cause`` names the scenario (``gas_leak``,
    ``cooling_failure`` …; for sensor failures it repeats ``kind``).
    """

    kind: str
    tags: tuple[str, ...]
    start: datetime
    end: datetime
    description_zh: str
    description_en: str
    cause: str


@dataclass
class Simulation:
    """Readings on a regular grid plus the events injected into them.

    ``timestamps`` are naive ``datetime64[s]``: plant wall-clock time for a naive ``start``, UTC for
    a timezone-aware one. ``values`` has one column per tag, NaN where a reading was lost.
    """

    timestamps: np.ndarray  # (n_steps,) datetime64[s]
    tags: list[str]
    values: np.ndarray  # (n_steps, n_sensors) float64
    events: list[InjectedEvent] = field(default_factory=list)

    def truth_mask(self, kind: str | None = None) -> np.ndarray:
        """Cells touched by injected events (of one kind, or of any): (n_steps, n_sensors) bool."""
        if kind is not None and kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; use one of {', '.join(EVENT_KINDS)}")
        mask = np.zeros(self.values.shape, dtype=bool)
        column = {tag: j for j, tag in enumerate(self.tags)}
        for event in self.events:
            if kind is not None and event.kind != kind:
                continue
            rows = self._rows(event)
            for tag in event.tags:
                mask[rows, column[tag]] = True
        return mask

    def to_frame(self) -> pd.DataFrame:
        """Wide table: a ``timestamp`` column and one float column per tag."""
        frame = pd.DataFrame(self.values, columns=self.tags)
        frame.insert(0, "timestamp", pd.to_datetime(self.timestamps))
        return frame

    def to_long(self, *, dropna: bool = True) -> pd.DataFrame:
        """Long table (timestamp, tag, value), the shape readings are ingested in.

        Lost readings are dropped by default: a dropout means no reading arrived, not a reading of NaN.
        """
        n, m = self.values.shape
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime(np.repeat(self.timestamps, m)),
                "tag": np.tile(np.asarray(self.tags, dtype=object), n),
                "value": self.values.reshape(-1),
            }
        )
        return frame.dropna(subset=["value"]).reset_index(drop=True) if dropna else frame

    def _rows(self, event: InjectedEvent) -> slice:
        lo = np.searchsorted(self.timestamps, np.datetime64(event.start, "s"), side="left")
        hi = np.searchsorted(self.timestamps, np.datetime64(event.end, "s"), side="right")
        return slice(int(lo), int(hi))


def simulate(spec: PlantSpec, *, start: datetime, duration: timedelta, step: timedelta, seed: int) -> Simulation:
    """Simulate ``duration`` of readings every ``step`` from ``start``; the same seed, the same bytes.

    The grid is ``start + k * step`` for ``k = 0 … ceil(duration / step) - 1``. Events still running
    at the end of the span are cut at the last sample.
    """
    if duration <= timedelta(0):
        raise ValueError(f"duration must be positive, got {duration}")
    model = _Model(spec, start=start, step=step, seed=seed)
    n_total = -(-duration // step)
    blocks: list[np.ndarray] = []
    events: list[InjectedEvent] = []
    produced = 0
    for rows, values, epoch_events in model.epochs():
        blocks.append(values)
        events.extend(epoch_events)
        produced = rows.stop
        if produced >= n_total:
            break
    values = np.concatenate(blocks)[:n_total]
    last = model.time_of(n_total - 1)
    kept = [e if e.end <= last else _replace_end(e, last) for e in events if e.start <= last]
    return Simulation(timestamps=model.timestamps(0, n_total), tags=spec.tags, values=values, events=kept)


def stream(spec: PlantSpec, *, start: datetime, step: timedelta, seed: int) -> Iterator[tuple[datetime, np.ndarray]]:
    """Yield ``(timestamp, values)`` rows without end, from the same model as ``simulate``.

    Rows are computed a day at a time and handed out one by one; the ground truth for any prefix
    is ``simulate(...)`` over the same span with the same seed.
    """
    model = _Model(spec, start=start, step=step, seed=seed)
    for rows, values, _events in model.epochs():
        for i, k in enumerate(range(rows.start, rows.stop)):
            yield model.time_of(k), values[i].copy()


def _replace_end(event: InjectedEvent, end: datetime) -> InjectedEvent:
    return InjectedEvent(
        kind=event.kind,
        tags=event.tags,
        start=event.start,
        end=end,
        description_zh=event.description_zh,
        description_en=event.description_en,
        cause=event.cause,
    )


# ── the plant model ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _TankDuty:
    """How one tank is worked: a continuous flow plus daily batches that balance the day.

    ``batch_sign`` is -1 for batches that empty the tank (trucks at the loading arm) and +1 for
    batches that fill it (pipeline receipts). The batch volume of day *d* is chosen so that the
    level ends the day at day *d + 1*'s starting level, which keeps levels bounded without
    simulating the operator's decisions step by step.
    """

    level_tag: str
    capacity_m3: float
    continuous_m3h: float
    batch_sign: int
    window_h: tuple[float, float]
    batch_m3: float
    batch_rate_m3h: tuple[float, float]
    flow_tag: str | None
    start_levels: tuple[float, float]


_TANKS = (
    _TankDuty("LT-101", 1000.0, 10.0, -1, (8.0, 17.0), 30.0, (45.0, 60.0), "FT-501", (40.0, 55.0)),
    _TankDuty("LT-102", 800.0, 8.0, -1, (8.5, 16.5), 25.0, (40.0, 55.0), "FT-502", (40.0, 55.0)),
    _TankDuty("LT-103", 1500.0, -12.0, +1, (1.0, 23.0), 120.0, (90.0, 110.0), None, (45.0, 65.0)),
)

# Tags whose equipment runs only some of the time (the loading pump and header): a frozen zero or
# a "worn bearing" on a stopped pump would teach detectors nothing, so those scenarios avoid them.
_INTERMITTENT = frozenset({"FT-501", "FT-502", "PT-104", "IT-101", "VT-101", "PT-501"})


class _Drivers:
    """The shared, slowly varying causes behind many readings in one epoch (arrays over its rows)."""

    def __init__(self, model: _Model, t: np.ndarray, rng: np.random.Generator):
        hod = ((model.sod0 + t) / 3600.0) % 24.0
        doy = model.doy0 + t / 86_400.0
        # East-China climate: about 5 °C in January, 27 °C in late July; warmest at 15:00.
        self.t_mean = 16.0 + 11.0 * np.cos(2 * np.pi * (doy - 200.0) / 365.25)
        self.ambient = (
            self.t_mean
            + 4.0 * np.cos(2 * np.pi * (hod - 15.0) / 24.0)
            + model.ar("weather", rng, t.size, 6 * 3600.0, 1.5)
        )
        self.humidity = np.clip(
            70.0 - 2.2 * (self.ambient - self.t_mean) + model.ar("humid", rng, t.size, 3 * 3600.0, 6.0),
            25.0,
            99.0,
        )
        load = 0.85 + 0.06 * np.cos(2 * np.pi * (hod - 14.0) / 24.0) + model.ar("load", rng, t.size, 2 * 3600.0, 0.03)
        self.feed = 12.0 * load / 0.85
        # Two first-order lags in series: the reactor answers a feed change after ~10 min, not at once.
        self.feed_lag = model.lag("feed2", model.lag("feed1", self.feed, 600.0), 600.0)
        self.steam = 8.0 + 2.0 * np.cos(2 * np.pi * (hod - 10.0) / 24.0) + model.ar("steam", rng, t.size, 1800.0, 0.5)
        # Drum pressure dips and level swells while steam draw runs ahead of firing control.
        self.steam_fast = self.steam - model.lag("steam_slow", self.steam, 900.0)
        self.tank_ambient = {
            tag: model.lag(f"tank:{tag}", self.ambient, 3 * 3600.0) for tag in ("TT-101", "TT-102", "TT-103")
        }
        self.indoor = model.lag("indoor", self.ambient, 4 * 3600.0)
        self.air_cycle = np.sin(2 * np.pi * t / 420.0)  # instrument-air compressor load/unload
        self.levels: dict[str, np.ndarray] = {}
        self.flows: dict[str, np.ndarray] = {}
        for i, duty in enumerate(_TANKS):
            level, flow = _tank_profile(duty, i, model, t)
            self.levels[duty.level_tag] = level
            if duty.flow_tag:
                self.flows[duty.flow_tag] = flow
        self.loading = sum(self.flows.values(), np.zeros_like(t))
        self.pump_on = self.loading > 0


def _tank_profile(duty: _TankDuty, index: int, model: _Model, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Level (%) and batch flow (m³/h) of one tank, closed form per calendar day."""
    wall = model.sod0 + t
    day = np.floor(wall / 86_400.0).astype(np.int64) + model.day0
    hour = (wall % 86_400.0) / 3600.0
    level = np.empty_like(t)
    flow = np.zeros_like(t)
    for d in np.unique(day):
        rows = day == d
        a0, a1 = model.day_start_level(duty, index, int(d)), model.day_start_level(duty, index, int(d) + 1)
        total = duty.batch_sign * ((a1 - a0) * duty.capacity_m3 / 100.0 - duty.continuous_m3h * 24.0)
        rng = np.random.default_rng([model.seed, 7, index, int(d)])
        n = max(1, round(total / duty.batch_m3))
        slot = (duty.window_h[1] - duty.window_h[0]) / n
        volume = total / n
        width = min(volume / rng.uniform(*duty.batch_rate_m3h), 0.85 * slot)
        starts = duty.window_h[0] + slot * np.arange(n) + rng.uniform(0, slot - width, n)
        h = hour[rows, None]
        done = np.clip((h - starts) / width, 0.0, 1.0) * volume
        moved = duty.batch_sign * done.sum(axis=1)
        level[rows] = a0 + 100.0 / duty.capacity_m3 * (duty.continuous_m3h * hour[rows] + moved)
        running = (h >= starts) & (h < starts + width)
        flow[rows] = running.any(axis=1) * (volume / width)
    return level, flow


def _sensor_models(spec: PlantSpec) -> dict[str, Callable[[_Drivers], np.ndarray]]:
    """The noiseless value of each demo tag as a function of the drivers.

    Tags not listed here (a plant file someone extended) fall back to ``_generic_model``.
    """

    def const(v: float) -> Callable[[_Drivers], np.ndarray]:
        return lambda d: np.full_like(d.feed, v)

    def pump(on: float, off: float, per_m3h: float) -> Callable[[_Drivers], np.ndarray]:
        return lambda d: np.where(d.pump_on, on + per_m3h * d.loading, off)

    def reactor_t(d: _Drivers) -> np.ndarray:
        return 150.0 + 2.2 * (d.feed_lag - 12.0) + 0.05 * (d.ambient - 16.0)

    def drum_p(d: _Drivers) -> np.ndarray:
        return 1.25 - 0.06 * d.steam_fast

    models: dict[str, Callable[[_Drivers], np.ndarray]] = {
        "TT-101": lambda d: d.tank_ambient["TT-101"] + 2.0,
        "TT-102": lambda d: d.tank_ambient["TT-102"] + 1.5,
        "TT-103": lambda d: d.tank_ambient["TT-103"] + 2.0,
        "PT-104": pump(0.85, 0.02, -0.002),
        "VT-101": pump(2.1, 0.25, 0.004),
        "IT-101": pump(28.0, 0.0, 0.22),
        "FT-201": lambda d: d.feed,
        "TT-201": reactor_t,
        "TT-202": lambda d: reactor_t(d) - 3.0,
        "PT-201": lambda d: 1.8 + 0.035 * (reactor_t(d) - 150.0),
        "LT-201": lambda d: 55.0 + 2.5 * (d.feed - d.feed_lag),
        "TT-203": lambda d: 34.0 + 0.35 * (d.ambient - 16.0) + 0.8 * (d.feed_lag - 12.0),
        "FT-202": lambda d: 120.0 + 3.0 * (d.feed_lag - 12.0),
        "VT-201": lambda d: 2.0 + 0.05 * (d.feed - 12.0),
        "IT-201": lambda d: 18.0 + 0.9 * d.feed,
        "TT-301": lambda d: 22.0 + 0.35 * (d.indoor - 20.0),
        "MT-301": lambda d: 55.0 + 0.3 * (d.humidity - 70.0),
        "PT-401": drum_p,
        "FT-401": lambda d: d.steam,
        "LT-401": lambda d: 50.0 + 4.0 * d.steam_fast,
        "TT-401": lambda d: 150.0 + 4.0 * (d.steam - 8.0) + 0.3 * (d.ambient - 16.0),
        # Saturated steam: about +45 °C per MPa near 1.25 MPa(g), where it sits at ~194 °C.
        "TT-402": lambda d: 194.0 + 45.0 * (drum_p(d) - 1.25),
        "VT-401": lambda d: 2.4 + 0.05 * (d.steam - 8.0),
        "PT-501": pump(0.45, 0.03, 0.001),
        "PT-601": lambda d: 0.70 + 0.02 * d.air_cycle,
        "IT-601": lambda d: 180.0 - 25.0 * d.air_cycle,
        "VT-601": lambda d: 2.8 - 0.1 * d.air_cycle,
        "TT-601": lambda d: 88.0 + 0.6 * (d.ambient - 16.0),
        "VT-602": const(2.2),
        "TT-602": lambda d: d.ambient,
        "MT-602": lambda d: d.humidity,
    }
    for duty in _TANKS:
        models[duty.level_tag] = lambda d, tag=duty.level_tag: d.levels[tag]
        if duty.flow_tag:
            models[duty.flow_tag] = lambda d, tag=duty.flow_tag: d.flows[tag]
    known = set(spec.tags)
    return {tag: fn for tag, fn in models.items() if tag in known}


def _generic_model(sensor: SensorSpec, baseline: float) -> Callable[[_Drivers], np.ndarray]:
    """A plausible trace for a tag the demo model does not know: near zero for gas, mid-band otherwise."""
    if sensor.kind in _GAS_BASELINE or sensor.kind == "o2":
        return lambda d: np.full_like(d.feed, baseline)
    if sensor.kind == "temperature" and sensor.h is None:
        return lambda d: d.ambient
    if sensor.kind == "humidity" and sensor.h is None:
        return lambda d: d.humidity
    lo = sensor.l if sensor.l is not None else sensor.range_min + 0.2 * sensor.span
    hi = sensor.h if sensor.h is not None else sensor.range_max - 0.2 * sensor.span
    mid, swing = (lo + hi) / 2.0, 0.1 * (hi - lo)
    return lambda d: mid + swing * (d.feed - 12.0) / 0.85


class _Model:
    """Everything ``simulate`` and ``stream`` share: clock, per-tag models, filter state, scheduler."""

    def __init__(self, spec: PlantSpec, *, start: datetime, step: timedelta, seed: int):
        step_s = step.total_seconds()
        if step_s < 1 or step_s != int(step_s):
            raise ValueError(f"step must be a whole number of seconds, at least 1 s; got {step}")
        self.spec = spec
        self.seed = int(seed)
        self.step_s = int(step_s)
        start = start.replace(microsecond=0)
        wall = start.replace(tzinfo=None)
        # Daily cycles follow plant wall-clock time; stored timestamps are UTC when start is aware.
        self.t0 = start.astimezone(UTC).replace(tzinfo=None) if start.tzinfo else wall
        self.sod0 = float(wall.hour * 3600 + wall.minute * 60 + wall.second)
        self.doy0 = float(wall.timetuple().tm_yday) + self.sod0 / 86_400.0
        self.day0 = wall.toordinal()
        self.state: dict[str, float] = {}

        init = np.random.default_rng([self.seed, 0])
        self.baselines = np.array([_baseline(s, init) for s in spec.sensors])
        models = _sensor_models(spec)
        self.models = [
            models.get(s.tag) or _generic_model(s, b) for s, b in zip(spec.sensors, self.baselines, strict=True)
        ]
        self.lo = np.array([s.range_min for s in spec.sensors])
        self.hi = np.array([s.range_max for s in spec.sensors])
        self.scheduler = _Scheduler(self)

    # clock ---------------------------------------------------------------------------------------

    def time_of(self, k: int) -> datetime:
        return self.t0 + timedelta(seconds=k * self.step_s)

    def timestamps(self, k0: int, k1: int) -> np.ndarray:
        base = np.datetime64(self.t0, "s")
        return base + np.arange(k0, k1, dtype=np.int64) * np.timedelta64(self.step_s, "s")

    def epoch_rows(self, e: int) -> range:
        return range(-(-e * EPOCH_S // self.step_s), -(-(e + 1) * EPOCH_S // self.step_s))

    # filters with memory -------------------------------------------------------------------------

    def ar(self, name: str, rng: np.random.Generator, n: int, tau_s: float, sigma: float) -> np.ndarray:
        """Stationary AR(1) noise with standard deviation ``sigma`` and correlation time ``tau_s``."""
        a = math.exp(-self.step_s / tau_s)
        prev = self.state.get(name)
        if prev is None:
            prev = sigma * float(rng.standard_normal())
        y, _ = lfilter([sigma * math.sqrt(1.0 - a * a)], [1.0, -a], rng.standard_normal(n), zi=[a * prev])
        self.state[name] = float(y[-1])
        return y

    def lag(self, name: str, x: np.ndarray, tau_s: float) -> np.ndarray:
        """First-order lag (time constant ``tau_s``), starting from steady state on the first call."""
        a = math.exp(-self.step_s / tau_s)
        prev = self.state.get(name, float(x[0]))
        y, _ = lfilter([1.0 - a], [1.0, -a], x, zi=[a * prev])
        self.state[name] = float(y[-1])
        return y

    def day_start_level(self, duty: _TankDuty, index: int, day: int) -> float:
        return float(np.random.default_rng([self.seed, 8, index, day]).uniform(*duty.start_levels))

    # epochs --------------------------------------------------------------------------------------

    def epochs(self) -> Iterator[tuple[range, np.ndarray, list[InjectedEvent]]]:
        e = 0
        while True:
            rows = self.epoch_rows(e)
            if len(rows):
                values, events = self._epoch(e, rows)
                yield rows, values, events
            e += 1

    def _epoch(self, e: int, rows: range) -> tuple[np.ndarray, list[InjectedEvent]]:
        rng = np.random.default_rng([self.seed, e, 1])
        t = np.arange(rows.start, rows.stop, dtype=np.float64) * self.step_s
        drivers = _Drivers(self, t, rng)
        clean = np.column_stack([model(drivers) for model in self.models])
        noise = np.column_stack(
            [
                self.ar(f"noise:{s.tag}", rng, t.size, _NOISE[s.kind][1], _NOISE[s.kind][0] * s.span)
                for s in self.spec.sensors
            ]
        )
        plans = self.scheduler.plan(e, rows)
        for plan in plans:
            if plan.kind == PROCESS_FAULT:
                plan.apply(clean, t, rows.start)
        values = np.clip(clean + noise, self.lo, self.hi)
        for plan in plans:
            if plan.kind != PROCESS_FAULT:
                plan.apply(values, t, rows.start)
        return values, [plan.event(self) for plan in plans]


def _baseline(sensor: SensorSpec, rng: np.random.Generator) -> float:
    """Healthy zero reading of a gas detector (each one a little different); 20.9 %vol for oxygen."""
    if sensor.kind == "o2":
        return 20.9
    if sensor.kind in _GAS_BASELINE:
        return sensor.range_min + _GAS_BASELINE[sensor.kind] * sensor.span * rng.uniform(0.5, 1.5)
    return math.nan


# ── injected events ──────────────────────────────────────────────────────────────────────────


@dataclass
class _Plan:
    """One scheduled event: which columns, which absolute rows, and how it changes them."""

    kind: str
    cause: str
    columns: list[int]
    k_start: int
    k_end: int  # inclusive
    description_zh: str
    description_en: str
    apply_fn: Callable[[np.ndarray, np.ndarray, slice], None]

    def apply(self, matrix: np.ndarray, t: np.ndarray, k0: int) -> None:
        self.apply_fn(matrix, t, slice(self.k_start - k0, self.k_end - k0 + 1))

    def event(self, model: _Model) -> InjectedEvent:
        return InjectedEvent(
            kind=self.kind,
            tags=tuple(model.spec.sensors[j].tag for j in self.columns),
            start=model.time_of(self.k_start),
            end=model.time_of(self.k_end),
            description_zh=self.description_zh,
            description_en=self.description_en,
            cause=self.cause,
        )


def _profile(x: np.ndarray, rise: float, hold: float, shape: str = "smooth") -> np.ndarray:
    """Severity 0…1 over an event's normalised time x ∈ [0, 1]: rise, hold at 1, fall back to 0.

    ``smooth`` rises along a smoothstep, ``linear`` at a constant rate (a tank filling), ``exp``
    like wear that accelerates. A fall of zero length means the fault is cleared at once (a pump
    changed over). The middle of the hold is forced to 1 so even a coarse grid samples the peak.
    """
    up = np.clip(x / rise, 0.0, 1.0)
    if shape == "smooth":
        up = up * up * (3.0 - 2.0 * up)
    elif shape == "exp":
        up = np.expm1(4.0 * up) / math.expm1(4.0)
    fall = 1.0 - rise - hold
    down = np.clip((1.0 - x) / fall, 0.0, 1.0) if fall > 1e-9 else np.ones_like(x)
    p = np.minimum(up, down)
    if p.size:
        p[int(np.argmin(np.abs(x - (rise + hold / 2.0))))] = 1.0
    return p


def _above(s: SensorSpec, rng: np.random.Generator, lo: float, hi: float) -> float:
    """A fault's peak above H: a share of the H→HH gap (or of H→range top where HH is unset)."""
    assert s.h is not None
    gap = (s.hh - s.h) if s.hh is not None else 0.5 * (s.range_max - s.h)
    return min(s.h + rng.uniform(lo, hi) * gap, s.range_max - 0.02 * s.span)


def _below(s: SensorSpec, rng: np.random.Generator, lo: float, hi: float) -> float:
    assert s.l is not None
    gap = (s.l - s.ll) if s.ll is not None else 0.5 * (s.l - s.range_min)
    return max(s.l - rng.uniform(lo, hi) * gap, s.range_min + 0.02 * s.span)


def _blend(
    columns: list[int],
    targets: list[float],
    profiles: list[tuple[float, float, str]],
    jitter: float = 0.0,
    rng: np.random.Generator | None = None,
) -> Callable[[np.ndarray, np.ndarray, slice], None]:
    """Pull noiseless values towards each target by the event's profile; noise is added later."""

    def apply(clean: np.ndarray, t: np.ndarray, rows: slice) -> None:
        tt = t[rows]
        x = (tt - tt[0]) / max(tt[-1] - tt[0], 1.0)
        for j, target, (rise, hold, shape) in zip(columns, targets, profiles, strict=True):
            p = _profile(x, rise, hold, shape)
            peak = target
            if jitter and rng is not None:  # gas plumes flicker with the wind
                peak = target * (1.0 + jitter * rng.standard_normal(tt.size))
            clean[rows, j] = (1.0 - p) * clean[rows, j] + p * peak

    return apply


class _Scheduler:
    """Chooses each epoch's events from the seed alone: one process fault and two sensor failures.

    Scenario types rotate (from a seed-chosen offset) so every type recurs every few days; which
    sensors and when are drawn at random. No tag is touched by two events in one epoch, so each
    event's signature is clean for tests and for scoring.
    """

    def __init__(self, model: _Model):
        self.model = model
        spec = model.spec
        self.sensors = spec.sensors
        self.col = {s.tag: j for j, s in enumerate(spec.sensors)}
        self.faults = [
            f
            for f in (
                self._gas_leak,
                self._cooling_failure,
                self._bearing_wear,
                self._tank_overfill,
                self._o2_depletion,
            )
            if f(None, None) is not None
        ]
        offsets = np.random.default_rng([model.seed, 3]).integers(0, 1000, size=2)
        self.fault_offset, self.failure_offset = int(offsets[0]), int(offsets[1])

    def plan(self, e: int, rows: range) -> list[_Plan]:
        rng = np.random.default_rng([self.model.seed, e, 2])
        plans: list[_Plan] = []
        used: set[int] = set()
        if self.faults:
            fault = self.faults[(e + self.fault_offset) % len(self.faults)]
            plan = fault(rng, (e, rows))
            if plan is not None:
                plans.append(plan)
                used.update(plan.columns)
        for i in range(2):
            kind = SENSOR_FAILURES[(2 * e + i + self.failure_offset) % len(SENSOR_FAILURES)]
            plan = self._sensor_failure(kind, rng, (e, rows), used)
            if plan is not None:
                plans.append(plan)
                used.update(plan.columns)
        return plans

    # timing --------------------------------------------------------------------------------------

    def _window(
        self,
        rng: np.random.Generator,
        where: tuple[int, range],
        min_s: float,
        max_s: float,
    ) -> tuple[int, int] | None:
        """Absolute first and last rows of an event lasting min_s…max_s, inside the epoch with margins."""
        e, rows = where
        step = self.model.step_s
        duration = max(rng.uniform(min_s, max_s), step)
        margin = 1800.0
        begin = e * EPOCH_S + rng.uniform(margin, EPOCH_S - margin - duration)
        k0 = math.ceil(begin / step)
        k1 = max(k0, math.floor((begin + duration) / step))
        k1 = min(k1, rows.stop - 1)
        return (k0, k1) if rows.start <= k0 <= k1 else None

    # process faults (each returns None when called without rng: "can this plant have it?") --------

    def _gas_leak(self, rng: np.random.Generator | None, where: tuple[int, range] | None) -> _Plan | None:
        groups: dict[tuple[str, str], list[SensorSpec]] = {}
        for s in self.sensors:
            if s.kind in _GAS_NAMES and s.h is not None:
                groups.setdefault((self.model.spec.area_of(s.tag).code, s.kind), []).append(s)
        if not groups:
            return None
        if rng is None or where is None:
            return _CAN
        keys = sorted(groups)
        group = groups[keys[int(rng.integers(len(keys)))]]
        i = int(rng.integers(len(group)))
        chosen = [group[i]]
        if len(group) > 1 and rng.random() < 0.6:
            chosen.append(group[i + 1] if i + 1 < len(group) else group[i - 1])
        window = self._window(rng, where, 30 * 60, 100 * 60)
        if window is None:
            return None
        targets = [_above(chosen[0], rng, 0.3, 1.2)] + [_above(s, rng, 0.25, 0.6) for s in chosen[1:]]
        area = self.model.spec.area_of(chosen[0].tag)
        gas_zh, gas_en = _GAS_NAMES[chosen[0].kind]
        tags = [s.tag for s in chosen]
        return _Plan(
            PROCESS_FAULT,
            "gas_leak",
            [self.col[t] for t in tags],
            *window,
            f"{area.name_zh} {'、'.join(tags)} 附近{gas_zh}泄漏",
            f"{gas_en} leak near {', '.join(tags)} in {area.name_en}",
            _blend([self.col[t] for t in tags], targets, [(0.3, 0.4, "smooth")] * len(tags), 0.03, rng),
        )

    def _cooling_failure(
        self,
        rng: np.random.Generator | None,
        where: tuple[int, range] | None,
    ) -> _Plan | None:
        need = ("TT-201", "PT-201", "FT-202")
        if not all(t in self.col for t in need):
            return None
        if rng is None or where is None:
            return _CAN
        window = self._window(rng, where, 50 * 60, 110 * 60)
        if window is None:
            return None
        tags = [t for t in ("FT-202", "TT-201", "TT-202", "PT-201") if t in self.col]
        targets, profiles = [], []
        for tag in tags:
            s = self.sensors[self.col[tag]]
            if tag == "FT-202":  # the cooling water goes first, in a minute or two
                targets.append(_below(s, rng, 0.4, 1.5))
                profiles.append((0.05, 0.65, "smooth"))
            else:  # temperature and pressure run away behind it
                targets.append(_above(s, rng, 0.4, 1.3))
                profiles.append((0.45, 0.25, "exp"))
        return _Plan(
            PROCESS_FAULT,
            "cooling_failure",
            [self.col[t] for t in tags],
            *window,
            "反应釜 R-201 冷却水中断，釜温釜压上升（飞温风险）",
            "Reactor R-201 cooling water lost; temperature and pressure rising (runaway risk)",
            _blend([self.col[t] for t in tags], targets, profiles),
        )

    def _bearing_wear(self, rng: np.random.Generator | None, where: tuple[int, range] | None) -> _Plan | None:
        candidates = [
            s for s in self.sensors if s.kind == "vibration" and s.h is not None and s.tag not in _INTERMITTENT
        ]
        if not candidates:
            return None
        if rng is None or where is None:
            return _CAN
        s = candidates[int(rng.integers(len(candidates)))]
        window = self._window(rng, where, 4 * 3600, 12 * 3600)
        if window is None:
            return None
        equipment = self.model.spec.equipment_of(s.tag)
        return _Plan(
            PROCESS_FAULT,
            "bearing_wear",
            [self.col[s.tag]],
            *window,
            f"{equipment.code} {equipment.name_zh}轴承磨损，{s.tag} 振动持续增大，切换备机后恢复",
            f"{equipment.code} {equipment.name_en} bearing wear: {s.tag} vibration grows until changeover",
            _blend([self.col[s.tag]], [_above(s, rng, 0.3, 1.2)], [(0.92, 0.08, "exp")]),
        )

    def _tank_overfill(
        self,
        rng: np.random.Generator | None,
        where: tuple[int, range] | None,
    ) -> _Plan | None:
        candidates = [
            s
            for s in self.sensors
            if s.kind == "level" and s.h is not None and self.model.spec.equipment_of(s.tag).kind == "tank"
        ]
        if not candidates:
            return None
        if rng is None or where is None:
            return _CAN
        s = candidates[int(rng.integers(len(candidates)))]
        window = self._window(rng, where, 2 * 3600, 5 * 3600)
        if window is None:
            return None
        equipment = self.model.spec.equipment_of(s.tag)
        return _Plan(
            PROCESS_FAULT,
            "tank_overfill",
            [self.col[s.tag]],
            *window,
            f"{equipment.code} {equipment.name_zh}收料未及时切断，液位 {s.tag} 逼近高高限",
            f"{equipment.code} {equipment.name_en} receipt not stopped in time; level {s.tag} heading to HH",
            _blend([self.col[s.tag]], [_above(s, rng, 0.3, 1.4)], [(0.55, 0.1, "linear")]),
        )

    def _o2_depletion(
        self,
        rng: np.random.Generator | None,
        where: tuple[int, range] | None,
    ) -> _Plan | None:
        candidates = [s for s in self.sensors if s.kind == "o2" and s.l is not None]
        if not candidates:
            return None
        if rng is None or where is None:
            return _CAN
        s = candidates[int(rng.integers(len(candidates)))]
        window = self._window(rng, where, 20 * 60, 60 * 60)
        if window is None:
            return None
        area = self.model.spec.area_of(s.tag)
        return _Plan(
            PROCESS_FAULT,
            "o2_depletion",
            [self.col[s.tag]],
            *window,
            f"{area.name_zh} 氮气泄漏，{s.tag} 氧含量下降（窒息风险）",
            f"Nitrogen leak in {area.name_en}: oxygen falling at {s.tag} (asphyxiation risk)",
            _blend([self.col[s.tag]], [_below(s, rng, 0.3, 1.5)], [(0.3, 0.4, "smooth")]),
        )

    # sensor failures -----------------------------------------------------------------------------

    def _sensor_failure(
        self, kind: str, rng: np.random.Generator, where: tuple[int, range], used: set[int]
    ) -> _Plan | None:
        free = [j for j in range(len(self.sensors)) if j not in used]
        if kind in ("stuck", "drift"):
            free = [j for j in free if self.sensors[j].tag not in _INTERMITTENT]
        if not free:
            return None
        if kind == "dropout":
            return self._dropout(rng, where, used)
        j = free[int(rng.integers(len(free)))]
        s = self.sensors[j]
        durations = {
            "stuck": (3600, 6 * 3600),
            "drift": (4 * 3600, 16 * 3600),
            "spike": (0, 2 * self.model.step_s),
            "out_of_range": (600, 3 * 3600),
        }
        window = self._window(rng, where, *durations[kind])
        if window is None:
            return None
        if kind == "stuck":
            return _Plan(
                kind, kind, [j], *window, f"{s.tag} 读数冻结（卡死）", f"{s.tag} reading frozen (stuck)", _stuck(j)
            )
        if kind == "drift":
            amount = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.08, 0.2) * s.span)
            return _Plan(
                kind,
                kind,
                [j],
                *window,
                f"{s.tag} 缓慢漂移 {amount:+.3g} {s.unit}（需校准）",
                f"{s.tag} slow calibration drift of {amount:+.3g} {s.unit}",
                _drift(j, amount, s),
            )
        if kind == "spike":
            fraction = float(rng.uniform(0.25, 0.6))
            return _Plan(
                kind, kind, [j], *window, f"{s.tag} 尖峰干扰", f"{s.tag} spike (interference)", _spike(j, fraction, s)
            )
        low = bool(rng.random() < 0.6)
        # NAMUR NE 43: a transmitter signals its own failure below 3.6 mA or above 21 mA, which a
        # 4–20 mA input scales to 2.5 % below or 6.25 % above the range.
        value = s.range_min - 0.025 * s.span if low else s.range_max + 0.0625 * s.span
        return _Plan(
            kind,
            kind,
            [j],
            *window,
            f"{s.tag} 信号超出量程（{'断线' if low else '故障电流'}）",
            f"{s.tag} signal outside its range ({'broken loop' if low else 'fault current'})",
            _fixed(j, value),
        )

    def _dropout(self, rng: np.random.Generator, where: tuple[int, range], used: set[int]) -> _Plan | None:
        """A lost remote I/O or gateway: every sensor on one piece of equipment goes silent."""
        spec = self.model.spec
        choices = []
        for eq in spec.equipment:
            cols = [j for j, s in enumerate(self.sensors) if s.equipment == eq.code]
            if cols and not used.intersection(cols):
                choices.append((eq, cols))
        if not choices:
            return None
        eq, cols = choices[int(rng.integers(len(choices)))]
        window = self._window(rng, where, 300, 2 * 3600)
        if window is None:
            return None
        tags = "、".join(self.sensors[j].tag for j in cols)
        return _Plan(
            "dropout",
            "dropout",
            cols,
            *window,
            f"{eq.code} {eq.name_zh} 通讯中断，{tags} 无数据",
            f"Communication lost to {eq.code} {eq.name_en}: no data from {tags.replace('、', ', ')}",
            _fixed(cols, math.nan),
        )


_CAN = _Plan("", "", [], 0, 0, "", "", lambda m, t, r: None)
"""Marker a scenario returns when asked whether the plant can have it at all."""


def _stuck(j: int) -> Callable[[np.ndarray, np.ndarray, slice], None]:
    def apply(values: np.ndarray, t: np.ndarray, rows: slice) -> None:
        values[rows, j] = values[rows.start, j]

    return apply


def _drift(j: int, amount: float, s: SensorSpec) -> Callable[[np.ndarray, np.ndarray, slice], None]:
    def apply(values: np.ndarray, t: np.ndarray, rows: slice) -> None:
        ramp = np.linspace(0.0, 1.0, rows.stop - rows.start)
        values[rows, j] = np.clip(values[rows, j] + amount * ramp, s.range_min, s.range_max)

    return apply


def _spike(j: int, fraction: float, s: SensorSpec) -> Callable[[np.ndarray, np.ndarray, slice], None]:
    def apply(values: np.ndarray, t: np.ndarray, rows: slice) -> None:
        v = values[rows.start, j]
        room_up, room_down = s.range_max - v, v - s.range_min
        jump = min(fraction * s.span, 0.95 * max(room_up, room_down))
        values[rows, j] = np.clip(values[rows, j] + (jump if room_up >= room_down else -jump), s.range_min, s.range_max)

    return apply


def _fixed(columns: int | list[int], value: float) -> Callable[[np.ndarray, np.ndarray, slice], None]:
    def apply(values: np.ndarray, t: np.ndarray, rows: slice) -> None:
        values[rows, columns] = value

    return apply
