"""Reading → push latency: an HH reading published over MQTT until the webhook that announces it arrives.

The whole server runs as `hazardloop serve` runs it (``create_app`` and its lifespan: MQTT ingest with the
store sink, the reading store, the live feed, the notify sender), on a plant of ``--sensors`` sensors
(10,000 by default), all reporting once a second. Gateways publish them over the real Mosquitto
(127.0.0.1:1883) as many-tag messages (``--per-message`` readings each, spread over the second as
independent gateways are). Every ``--event-every`` seconds one sensor (a different one each time) reads
above HH once; its publish time is recorded, and the webhook server that a notification policy routes
CRITICAL alarms to records when the message arrives. Latency = webhook received − published.

Sensors here have **zero on-delay** (and zero off-delay), so the latency is the system's own; a real gas
detector's configured on-delay (typically 2–10 s) adds to it by design.

The peer figure, in the same run: the same server and plant with the readings written straight into the
reading store (no MQTT), i.e. what detection → alarm → outbox → sender → webhook costs alone.

    .venv/bin/python benchmarks/alarm_latency.py [--sensors 10000] [--seconds 60] [--event-every 0.5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import orjson
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, console, machine, markdown_table, rich_table  # noqa: E402

HOST, PORT = "127.0.0.1", 1883
NORMAL, HIGH, HH = 5.0, 60.0, 50.0
TAG = re.compile(r"B-\d{5}")


def tag_of(i: int) -> str:
    return f"B-{i:05d}"


# ---------------------------------------------------------------- the plant and the people told


def build_plant(url: str, sensors: int, webhook_url: str) -> dict[str, int]:
    """Migrate, then an admin, one area, ``sensors`` gas detectors (bulk insert: setup, not the product
    path), and a webhook channel that CRITICAL alarms are routed to. Returns tag → sensor id."""
    from sqlalchemy import insert, select

    from hazardloop import db as hl_db
    from hazardloop.auth import service as auth_service
    from hazardloop.auth.models import UserCreate
    from hazardloop.auth.roles import Role
    from hazardloop.notify import service as notify
    from hazardloop.notify.models import ChannelCreate, ChannelKind, EventKind, PolicyCreate
    from hazardloop.plant import service as plant
    from hazardloop.plant.models import AreaCreate, Sensor, SiteCreate

    hl_db.upgrade(url)
    engine = hl_db.make_engine(url)
    with hl_db.make_session_factory(engine)() as db:
        admin = auth_service.create_user(db, actor=None, data=UserCreate(
            username="admin", display_name="admin", role=Role.ADMIN, password="bench-password-1"))
        plant.get_or_create_enterprise(db, actor=admin, code="BENCH", name_zh="基准")
        site = plant.create_site(db, actor=admin, data=SiteCreate(code="S1", name_zh="一厂"))
        area = plant.create_area(db, actor=admin, data=AreaCreate(site_id=site.id, code="A1", name_zh="罐区",
                                                                   polygon=[[0, 0], [1, 0], [1, 1]]))
        db.execute(insert(Sensor), [dict(
            tag=tag_of(i), name="gas", kind="combustible_gas", unit="%LEL", area_id=area.id, range_min=0,
            range_max=100, h=20.0, hh=HH, deadband=1.0, on_delay_s=0.0, off_delay_s=0.0, sample_period_s=1.0,
            enabled=True) for i in range(sensors)])
        db.commit()
        channel = notify.create_channel(db, actor=admin, data=ChannelCreate(
            kind=ChannelKind.WEBHOOK, name="bench", config={"webhook_url": webhook_url,
                                                           "secret": "bench-secret-0123456789"}))
        notify.create_policy(db, actor=admin, data=PolicyCreate(
            name="critical alarms", event_kinds=[EventKind.ALARM], severities=["CRITICAL"],
            channel_ids=[channel.id]))
        ids = {tag: sensor_id for tag, sensor_id in db.execute(select(Sensor.tag, Sensor.id))}
    engine.dispose()
    return ids


class Webhook:
    """A local HTTP server standing in for the receiving system: records (arrival time, tag) per message."""

    def __init__(self) -> None:
        self.received: list[tuple[float, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                found = TAG.search(orjson.loads(body).get("title", ""))
                outer.received.append((at, found.group(0) if found else ""))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alarms"


# ---------------------------------------------------------------- the readings


def schedule(sensors: int, seconds: float, event_every: float, offset: int) -> dict[int, int]:
    """second index → sensor that reads HIGH in that second's message (distinct sensors, evenly spread)."""
    n = int(seconds / event_every)
    seconds_of = (np.arange(n) * event_every).astype(int)
    picks = (offset + np.arange(n) * 7919) % sensors  # a stride prime to the plant size: all distinct
    out: dict[int, list[int]] = {}
    for s, p in zip(seconds_of, picks, strict=True):
        out.setdefault(int(s), []).append(int(p))
    return out  # type: ignore[return-value]


def gateway_loop(send, sensors: int, per_message: int, seconds: float, events: dict[int, list[int]],  # noqa: ANN001
                 log: list[tuple[float, int]]) -> None:
    """Once a second per gateway (gateways spread over the second), each a message of ``per_message``
    sensors; an event sensor reads HIGH in its gateway's message of its second."""
    gateways = range(0, sensors, per_message)
    start = np.ceil(time.time()) + 1.0
    rng = np.random.default_rng(1)
    for second in range(int(seconds)):
        high = set(events.get(second, []))
        for g, lo in enumerate(gateways):
            at = start + second + g / len(gateways)
            wait = at - time.time()
            if wait > 0:
                time.sleep(wait)
            chunk = np.arange(lo, min(lo + per_message, sensors))
            values = NORMAL + rng.normal(0, 0.3, len(chunk))
            hits = [int(i) for i in chunk if int(i) in high]
            for i in hits:
                values[i - lo] = HIGH
            ts_ms = int(at * 1000)
            published = time.time()
            send(chunk, ts_ms, values)
            log.extend((published, i) for i in hits)


def mqtt_publisher(root: str, sensors: int, per_message: int, seconds: float, events: dict[int, list[int]],
                   out: mp.Queue) -> None:
    """Publisher process: the plant's gateways over MQTT (QoS 1). Sends back (publish time, sensor) per event."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(100)
    client.connect(HOST, PORT)
    client.loop_start()
    names = [tag_of(i) for i in range(sensors)]

    def send(chunk: np.ndarray, ts_ms: int, values: np.ndarray) -> None:
        payload = {"ts": ts_ms, "values": dict(zip((names[i] for i in chunk), values.tolist(), strict=True))}
        client.publish(f"{root}/S1/gateway", orjson.dumps(payload), qos=1)

    log: list[tuple[float, int]] = []
    gateway_loop(send, sensors, per_message, seconds, events, log)
    time.sleep(1.0)
    client.disconnect()
    client.loop_stop()
    out.put(log)


# ---------------------------------------------------------------- one phase


def latencies(sent: list[tuple[float, int]], hook: Webhook, since: int, wait_s: float = 10.0) -> np.ndarray:
    """Seconds from publish to webhook, per event (NaN: never arrived within ``wait_s`` of the phase's end)."""
    deadline = time.time() + wait_s
    wanted = {tag_of(i) for _, i in sent}
    while time.time() < deadline and len({t for _, t in hook.received[since:]} & wanted) < len(wanted):
        time.sleep(0.1)
    first: dict[str, float] = {}
    for at, tag in hook.received[since:]:
        first.setdefault(tag, at)
    return np.array([first.get(tag_of(i), np.nan) - published for published, i in sent])


def run_mqtt(args: argparse.Namespace, root: str, hook: Webhook, offset: int) -> np.ndarray:
    events = schedule(args.sensors, args.seconds, args.event_every, offset)
    out: mp.Queue = mp.Queue()
    since = len(hook.received)
    proc = mp.Process(target=mqtt_publisher, args=(root, args.sensors, args.per_message, args.seconds, events, out))
    proc.start()
    sent = out.get(timeout=args.seconds + 120)
    proc.join(10)
    return latencies(sent, hook, since)


def run_store(args: argparse.Namespace, store, ids: dict[str, int], hook: Webhook, offset: int) -> np.ndarray:  # noqa: ANN001
    events = schedule(args.sensors, args.seconds, args.event_every, offset)
    sensor_ids = np.array([ids[tag_of(i)] for i in range(args.sensors)], dtype=np.int32)
    since = len(hook.received)

    def send(chunk: np.ndarray, ts_ms: int, values: np.ndarray) -> None:
        store.insert(sensor_ids[chunk], np.full(len(chunk), ts_ms, dtype=np.int64), values)

    sent: list[tuple[float, int]] = []
    gateway_loop(send, args.sensors, args.per_message, args.seconds, events, sent)
    return latencies(sent, hook, since)


def summary(name: str, lat: np.ndarray) -> list[str]:
    got = lat[np.isfinite(lat)]
    if not len(got):
        return [name, str(len(lat)), "0", "—", "—", "—"]
    p50, p99 = np.percentile(got, [50, 99])
    return [name, str(len(lat)), str(len(got)), f"{p50 * 1000:.0f}", f"{p99 * 1000:.0f}", f"{got.max() * 1000:.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--event-every", type=float, default=0.5)
    parser.add_argument("--per-message", type=int, default=500)
    parser.add_argument("--warmup", type=float, default=10.0)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from hazardloop.config import Settings
    from hazardloop.web.app import create_app

    load = os.getloadavg()[0]  # other work on the machine shares the CPUs with everything measured here
    hook = Webhook()
    work = Path(tempfile.mkdtemp(prefix="hl-latency-"))
    url = f"sqlite:///{work / 'hazardloop.db'}"
    t0 = time.perf_counter()
    ids = build_plant(url, args.sensors, hook.url)
    console.print(f"plant of {args.sensors:,} sensors built in {time.perf_counter() - t0:.1f} s")
    root = f"hlbench/{uuid.uuid4().hex[:8]}"
    settings = Settings(data_dir=work, database_url=url, secret_key="bench", demo_stream=False,
                        scheduler_enabled=True, mqtt_url=f"mqtt://{HOST}:{PORT}", mqtt_topic=root + "/{site}/{tag}",
                        mqtt_group="bench")
    with TestClient(create_app(settings)) as client:
        state = client.app.state
        while not state.mqtt_connector.status.connected:
            time.sleep(0.05)
        warm = argparse.Namespace(**{**vars(args), "seconds": args.warmup})
        run_mqtt(warm, root, hook, offset=args.sensors // 2)  # detector built, sender warm; not counted
        over_mqtt = run_mqtt(args, root, hook, offset=0)
        direct = run_store(args, state.readings_store, ids, hook, offset=args.sensors // 3)
        feed = state.live_feed
        stats = (f"live feed: {feed.batches:,} batches, {feed.shifted:,} readings judged after their bucket, "
                 f"{feed.late:,} too late to judge, {feed.unknown} of unknown "
                 f"sensors; connector: {state.mqtt_connector.status.readings:,} readings, "
                 f"{state.mqtt_connector.status.malformed} malformed")

    header = ["path", "events", "delivered", "p50 ms", "p99 ms", "max ms"]
    rows = [summary("MQTT → ingest → store → live feed → alarm → outbox → sender → webhook", over_mqtt),
            summary("peer: store.insert → live feed → alarm → outbox → sender → webhook", direct)]
    p99 = float(np.nanpercentile(over_mqtt, 99)) if np.isfinite(over_mqtt).any() else float("nan")
    console.print(rich_table(f"Reading → push latency, {args.sensors:,} sensors × 1 Hz", header, rows))
    console.print(stats)
    console.print(f"goal p99 ≤ 1000 ms: {'met' if p99 <= 1.0 else 'missed'} ({p99 * 1000:.0f} ms over MQTT)")

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for lat, label, color in ((over_mqtt, "over MQTT", "#2a7ab0"), (direct, "straight into the store", "#999999")):
        got = np.sort(lat[np.isfinite(lat)]) * 1000
        if len(got):
            ax.plot(got, np.arange(1, len(got) + 1) / len(got), label=label, color=color)
    ax.axvline(1000, color="#c0392b", linestyle="--", label="goal p99 1 s")
    ax.set_xlabel("reading published → webhook received (ms)")
    ax.set_ylabel("share of events")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "alarm_latency.png", dpi=120)
    command = (f"python benchmarks/alarm_latency.py --sensors {args.sensors} --seconds {args.seconds:g} "
               f"--event-every {args.event_every:g} --per-message {args.per_message}")
    (RESULTS / "alarm_latency.md").write_text(f"""# Reading → push latency

Generated by `{command}` ({machine()}), against Mosquitto at {HOST}:{PORT}; SQLite database, DuckDB
reading store, everything (broker, publisher process, server, webhook receiver) on the same machine
(1-minute load average {load:.1f} when it started: other work shared the CPUs).

{args.sensors:,} sensors report once a second; gateways publish them as many-tag messages of
{args.per_message} readings at QoS 1, spread over each second. Every {args.event_every:g} s one sensor (a
different one each time) reads above HH once. Latency is from the moment the gateway published that
reading to the moment the webhook receiver (a local HTTP server, routed by a notification policy for
CRITICAL alarms) got the message. The sensors have **zero on-delay**, so this is the system's own
latency; a configured on-delay adds to it by design. A {args.warmup:g} s warm-up is not counted.

{markdown_table(header, rows)}

![latency distribution](alarm_latency.png)

{stats}.

**Where the time goes** (design, see alarms/feed.py and notify/flows.py): the MQTT connector batches up
to 200 ms before it writes the store; the live feed judges 100 ms buckets once they are 200 ms old
(the lateness window that keeps slightly late readings in time order; a reading that misses it is
judged in the next rows, "judged after their bucket" above, rather than dropped); the alarm and the
detector state commit together, and the commit wakes the notify sender at once (its 30 s interval is
only the fallback for retries and hazard reminders), which claims the outbox row and posts the webhook.
The durable outbox stays: the wake-up only shortens the wait, it does not bypass it.

**What profiling changed** (wrapping the stages with timers in a 10,000-sensor run): the detector state
was written as plain JSON lists (4 MB, ~100 ms at this size, on every batch with an alarm change) and
starved ingest and the sender of CPU; it is now packed (zlib of the raw arrays, ~200 kB, ~25 ms). The
sender polled every 30 s; it is now woken by each raised alarm. And under load some readings reached
the feed after their bucket had been judged and were not judged at all (lost HH events); they are now
judged just after it, as long as they are newer than their sensor's last judged reading.
""")


if __name__ == "__main__":
    main()
