"""End-to-end MQTT ingest: readings/s from an MQTT publisher into the durable reading store, with its peers.

A publisher process sends many-tag messages (``{"ts": t, "values": {tag: v, ...}}``, 500 readings each
by default, 10,000 distinct sensor tags) at QoS 1 to the real broker (127.0.0.1:1883) as fast as the
broker takes them; every message carries a new time, so every reading is a new row. The ingest worker
under test runs in this process exactly as ``hazardloop connectors run`` wires it: an ``[[mqtt]]`` entry
with its defaults (``MqttConfig(...).build``) → ``StoreSink`` (tag lookup, the HTTP checks) → the store,
QoS 1 acknowledgements only after the commit. We count readings *durably inserted* during a steady window
after a warm-up. The same worker runs a second time with a receive window of 20 messages (what Mosquitto
gives a client that names none), so the effect of the window is measured back to back.

Peers, measured in the same run on the same store kind and batch size, so the MQTT cost is a ratio:

* ``store.insert`` straight from numpy arrays (the store's own ceiling);
* ``StoreSink.write`` without MQTT (adds the tag lookup and the checks).

DuckDB (the default store) always; PostgreSQL too when a server answers (``--pg-url``). Goal (issue 5):
≥ 100,000 readings/s on 2 cores, which broker, publisher and worker share here.

    .venv/bin/python benchmarks/mqtt_store.py [--seconds 10] [--per-message 500] [--tags 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import orjson
import paho.mqtt.client as mqtt
import psycopg
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, console, machine, markdown_table, rich_table  # noqa: E402
from hazardloop import db as hl_db  # noqa: E402
from hazardloop.auth import service as auth_service  # noqa: E402
from hazardloop.auth.models import UserCreate  # noqa: E402
from hazardloop.auth.roles import Role  # noqa: E402
from hazardloop.connectors.config import MqttConfig  # noqa: E402
from hazardloop.connectors.mqtt import MqttConnector  # noqa: E402
from hazardloop.plant import service as plant  # noqa: E402
from hazardloop.plant.models import AreaCreate, Sensor, SiteCreate  # noqa: E402
from hazardloop.readings.pgstore import PgReadingStore, libpq_url  # noqa: E402
from hazardloop.readings.sink import StoreSink  # noqa: E402
from hazardloop.readings.store import ReadingStore, now_ms  # noqa: E402

HOST, PORT = "127.0.0.1", 1883
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BATCH = 10_000  # readings per batch for the peers; the worker batches by itself (MqttConnector docstring)
SMALL_WINDOW = 20  # Mosquitto's max_inflight_messages: the window of a client that names none


def tag_names(tags: int) -> list[str]:
    return [f"T-{i:05d}" for i in range(tags)]


def make_plant(folder: Path, tags: int) -> Callable:
    """A migrated SQLite app database with `tags` 0..100 %LEL sensors; returns its session factory."""
    url = f"sqlite:///{folder / 'app.db'}"
    hl_db.upgrade(url)
    factory = hl_db.make_session_factory(hl_db.make_engine(url))
    with factory() as db:
        admin = auth_service.create_user(
            db, actor=None, data=UserCreate(username="admin", display_name="admin", role=Role.ADMIN,
                                            password="correct-horse-9")
        )
        plant.get_or_create_enterprise(db, actor=admin, code="BENCH", name_zh="基准")
        site = plant.create_site(db, actor=admin, data=SiteCreate(code="S1", name_zh="一厂"))
        area = plant.create_area(db, actor=admin, data=AreaCreate(site_id=site.id, code="A1", name_zh="罐区",
                                                                   risk_grade="red", polygon=[[0, 0], [1, 0], [1, 1]]))
        db.execute(insert(Sensor), [
            {"tag": t, "name": t, "kind": "combustible_gas", "unit": "%LEL", "area_id": area.id,
             "range_min": 0.0, "range_max": 100.0} for t in tag_names(tags)
        ])
        db.commit()
    return factory


def publish_forever(topic_root: str, per_message: int, tags: int, start_ms: int, stop: mp.Event) -> None:
    """Publisher process: round-robin over the tags, a new ts per round, QoS 1, 200 messages in flight."""
    names = tag_names(tags)
    rng = random.Random(1)
    chunks = [{t: round(rng.uniform(0, 100), 3) for t in names[s : s + per_message]}
              for s in range(0, tags, per_message)]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(400)
    client.connect(HOST, PORT)
    client.loop_start()
    i = 0
    while not stop.is_set():
        ts = start_ms + (i // len(chunks)) * 10  # every round of all tags 10 ms later: always a new key
        info = client.publish(f"{topic_root}/bulk", orjson.dumps({"ts": ts, "values": chunks[i % len(chunks)]}),
                              qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.001)
            continue
        i += 1
    client.disconnect()
    client.loop_stop()


class TimedSink:
    """Passes batches on to the StoreSink; adds up the seconds spent in its write (check + commit) and the batches."""

    def __init__(self, sink: StoreSink) -> None:
        self.sink, self.seconds, self.batches = sink, 0.0, 0
        self.concurrent_writes = sink.concurrent_writes  # as the StoreSink says: the connector asks
        self._lock = threading.Lock()

    def write(self, tags, ts, values, units=None) -> None:  # noqa: ANN001 - the ReadingSink protocol
        t0 = time.perf_counter()
        try:
            self.sink.write(tags, ts, values, units)
        finally:
            with self._lock:
                self.seconds += time.perf_counter() - t0
                self.batches += 1


def mqtt_rate(sink: StoreSink, args: argparse.Namespace, window: int | None) -> dict[str, float]:
    """Readings/s durably stored through MQTT with the worker `connectors run` builds (receive window
    `window`, None: the config default), the share of the time its writer spent in the sink, readings
    per batch, and the worker process's CPU seconds per second (all threads)."""
    root = f"hlbench/{uuid.uuid4().hex[:8]}"
    timed = TimedSink(sink)
    entry = {"receive_maximum": window} if window else {}
    config = MqttConfig(name="bench", host=HOST, port=PORT, topic=root + "/{site}",
                        group=f"bench{uuid.uuid4().hex[:6]}", **entry)
    connector: MqttConnector = config.build(timed)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(connector.run(),), daemon=True)
    thread.start()
    while not connector.status.connected:
        time.sleep(0.02)
    stop = mp.Event()
    start_ms = now_ms() - 86_400_000
    proc = mp.Process(target=publish_forever, args=(root, args.per_message, args.tags, start_ms, stop), daemon=True)
    proc.start()
    try:
        time.sleep(2.0)  # warm-up
        c0, w0, b0, cpu0, t0 = sink.inserted, timed.seconds, timed.batches, time.process_time(), time.perf_counter()
        time.sleep(args.seconds)
        c1, w1, b1, cpu1, t1 = sink.inserted, timed.seconds, timed.batches, time.process_time(), time.perf_counter()
    finally:
        stop.set()
        proc.join(10)
        connector.stop()
        thread.join(10)
    s = connector.status
    console.print(f"  window {connector.receive_maximum}: {s.messages:,} messages, {s.readings:,} readings delivered, "
                  f"{s.write_failures} store failures")
    return {"window": connector.receive_maximum, "rate": (c1 - c0) / (t1 - t0), "busy": (w1 - w0) / (t1 - t0),
            "per_batch": (c1 - c0) / max(b1 - b0, 1), "cpu": (cpu1 - cpu0) / (t1 - t0)}


def batches(tags: int, rounds: int, start_ms: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The same readings the publisher sends, cut into BATCH-sized (tag, sensor id, ts, value) arrays."""
    names = np.array(tag_names(tags), dtype=object)
    ids = np.arange(1, tags + 1, dtype=np.int32)  # make_plant inserts the sensors in tag order
    rng = np.random.default_rng(1)
    out = []
    for r in range(rounds):
        for s in range(0, tags, BATCH):
            chunk = names[s : s + BATCH]
            out.append((chunk, ids[s : s + BATCH], np.full(len(chunk), start_ms + r * 10, np.int64),
                        rng.uniform(0, 100, len(chunk))))
    return out


def direct_rate(write: Callable[..., None], args: argparse.Namespace) -> float:
    """Readings/s writing BATCH-sized batches back to back for `seconds` (after one warm-up batch)."""
    todo = batches(args.tags, 400, now_ms() - 2 * 86_400_000)
    write(*todo[0])
    done, t0 = 0, time.perf_counter()
    for tags, ids, ts, values in todo[1:]:
        write(tags, ids, ts, values)
        done += len(values)
        if time.perf_counter() - t0 >= args.seconds:
            break
    return done / (time.perf_counter() - t0)


def run_backend(name: str, open_store: Callable, factory: Callable, args: argparse.Namespace) -> list:
    """Four figures for one store kind, each on a fresh store: direct insert, StoreSink, MQTT → StoreSink with
    the default receive window, and with a window of 20."""
    console.print(f"{name}:")
    with open_store() as store:
        direct = direct_rate(lambda tags, ids, ts, values: store.insert(ids, ts, values), args)
    with open_store() as store:
        sink = StoreSink(factory, store)
        through_sink = direct_rate(lambda tags, ids, ts, values: sink.write(tags, ts, values), args)
    runs = []
    for window in (args.receive_maximum, SMALL_WINDOW):
        with open_store() as store:
            sink = StoreSink(factory, store)
            runs.append(mqtt_rate(sink, args, window))
            stored = store.count()
        console.print(f"  {sink.inserted:,} stored, {sink.rejected} rejected, {stored:,} rows at end")
        if sink.rejected:
            raise SystemExit(f"{name}: {sink.rejected} readings rejected; the figures would not mean what they say")
    return [name, direct, through_sink, *runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--per-message", type=int, default=500)
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--receive-maximum", type=int, default=None,
                        help="the worker's MQTT v5 receive window (default: the connector file's default)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        factory = make_plant(folder, args.tags)
        results = []
        counter = iter(range(100))
        results.append(run_backend("DuckDB", lambda: ReadingStore(folder / f"r{next(counter)}.duckdb"), factory, args))
        try:
            psycopg.connect(libpq_url(args.pg_url), connect_timeout=2).close()
        except psycopg.OperationalError:
            console.print(f"no PostgreSQL at {args.pg_url}: PostgreSQL figures skipped")
        else:
            table = f"bench_readings_{uuid.uuid4().hex[:8]}"

            def open_pg() -> PgReadingStore:
                store = PgReadingStore(args.pg_url, table=table)
                store.drop()
                store.close()
                return PgReadingStore(args.pg_url, table=table)

            try:
                results.append(run_backend("PostgreSQL", open_pg, factory, args))
            finally:
                with PgReadingStore(args.pg_url, table=table) as store:
                    store.drop()

    window = results[0][3]["window"]
    header = ["store", "store.insert (numpy)", "StoreSink.write (checks + insert)",
              f"MQTT → StoreSink → store (window {window})", "MQTT / insert", "readings per commit",
              "writer busy", "worker CPU (cores)", f"same, window {SMALL_WINDOW}", "goal"]
    rows = [[name, f"{d:,.0f}", f"{s:,.0f}", f"{m['rate']:,.0f}", f"{m['rate'] / d:.2f}", f"{m['per_batch']:,.0f}",
             f"{m['busy']:.0%}", f"{m['cpu']:.2f}", f"{small['rate']:,.0f}", "≥ 100,000 (MQTT)"]
            for name, d, s, m, small in results]
    console.print(rich_table("MQTT → durable store, readings/s", header, rows))

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    labels = ["store.insert", "StoreSink.write", f"MQTT, window {window}", f"MQTT, window {SMALL_WINDOW}"]
    width = 0.8 / len(results)
    for k, (name, d, s, m, small) in enumerate(results):
        ax.barh(np.arange(4) + k * width, [d, s, m["rate"], small["rate"]], height=width, label=name)
    ax.set_yticks(np.arange(4) + width * (len(results) - 1) / 2, labels)
    ax.axvline(100_000, color="#c0392b", linestyle="--", label="goal 100k/s")
    ax.set_xlabel("readings/s durably stored (2 cores shared with broker and publisher)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "mqtt_store.png", dpi=120)

    load_after = os.getloadavg()[0]
    command = (f"python benchmarks/mqtt_store.py --seconds {args.seconds:g} --per-message {args.per_message} "
               f"--tags {args.tags}" + (f" --receive-maximum {args.receive_maximum}" if args.receive_maximum else ""))
    (RESULTS / "mqtt_store.md").write_text(
        f"""# MQTT → durable reading store

Generated by `{command}` ({machine()}),
against Mosquitto at {HOST}:{PORT}{" and PostgreSQL" if len(results) > 1 else ""}.

A publisher process sends many-tag messages of {args.per_message} readings
(`{{"ts": t, "values": {{tag: v, ...}}}}`, {args.tags:,} sensor tags registered in the plant model, a new
`t` per round so every reading is a new row) at QoS 1 as fast as the broker takes them. The worker is
what `hazardloop connectors run` builds from an `[[mqtt]]` entry with its defaults and `[sink] kind =
"store"`: MqttConnector → StoreSink (tag lookup and the HTTP ingest checks) → the store, acknowledging
each message only after its batch committed. The figure is readings durably inserted per second over a
{args.seconds:g} s steady window after a 2 s warm-up. Broker, publisher and worker share the same 2 cores.

Peers in the same run, same store kind, batches of {BATCH:,}: `store.insert` from numpy arrays and
`StoreSink.write` without MQTT (adds tag lookup and checks). "MQTT / insert" compares the end-to-end
rate with the first peer; it can pass 1, because the worker's batches ("readings per commit") are
larger than the peers' and a larger batch costs the store less per reading.

{markdown_table(header, rows)}

![readings/s](mqtt_store.png)

1-minute load average {load_before:.1f} before and {load_after:.1f} after the run (2 CPUs: anything above
2 means other work competed for the cores; the ratios between columns of one run hold better than the
absolute figures then).

**How the worker gets there.** The store commits a batch in a writer thread while the network thread
receives, decodes and batches the next messages: DuckDB's insert and both stores' commit (the WAL
fsync) run outside the GIL, so receiving and committing overlap. The worker asks the broker for a
window of {window} unacknowledged messages (MQTT v5 Receive Maximum, `receive_maximum` in the
connector file; Mosquitto 2 honours it for v5 clients, its `max_inflight_messages` of 20 only applies
to clients that name no window). Whatever arrives while a batch commits forms the next batch, so
batches grow with the load (up to the connector's cap of 100,000 readings), each costing one commit.
Nothing is acknowledged before its batch committed. The column "same, window {SMALL_WINDOW}" is the
same worker asking for 20 messages in flight, what a broker that caps the window would allow. It is
not a strict 20 here: Mosquitto 2.0.11 was seen sending up to ~1,000 unacknowledged messages (its
`max_queued_messages`) once acks came in bulk, whatever window the client named, so after the first
commits both runs batch alike. "writer busy" is the share of the window the writer thread spent in
StoreSink.write (checks, insert and commit), summed over the writers (PostgreSQL takes two batches at
once, so up to 200 %); near 100 % per writer means the store is the bottleneck, not MQTT
or decoding. "worker CPU" is the CPU time of the whole worker process (all threads) per second of the
window, out of the 2 cores it shares with the broker, the publisher and the database.
"""
    )


if __name__ == "__main__":
    main()
