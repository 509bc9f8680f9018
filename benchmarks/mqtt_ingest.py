"""Sustained MQTT ingest: readings/s through the HazardLoop MQTT connector into memory, vs a naive paho consumer.

A publisher process sends many-tag messages (``{"ts": ..., "values": {tag: v, ...}}``, 500 readings
each by default) at QoS 1 to the real broker (127.0.0.1:1883) as fast as the broker takes them.
The consumer under test runs in this process; we count readings that reached its sink during a
steady window (after a warm-up) and divide by the window. The goal (issue 5) is ≥ 100,000
readings/s on 2 cores; broker, publisher and consumer all share those 2 cores here, so the
figure is a floor for the consumer alone.

    .venv/bin/python benchmarks/mqtt_ingest.py [--seconds 10] [--per-message 500] [--tags 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import sys
import threading
import time
import uuid
from pathlib import Path

import matplotlib.pyplot as plt
import orjson
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, console, machine, markdown_table, rich_table  # noqa: E402
from hazardloop.connectors.mqtt import MqttConnector  # noqa: E402
from hazardloop.connectors.sinks import MemorySink  # noqa: E402

HOST, PORT = "127.0.0.1", 1883


def publish_forever(topic_root: str, per_message: int, tags: int, stop: mp.Event) -> None:
    """Publisher process: pre-built payloads round-robin over `tags` sensors, QoS 1, window of 200 in flight."""
    names = [f"T-{i:05d}" for i in range(tags)]
    rng = random.Random(1)
    payloads = []
    for start in range(0, tags, per_message):
        chunk = names[start : start + per_message]
        payloads.append(orjson.dumps({"ts": 1_718_000_000_000, "values": {t: rng.uniform(0, 100) for t in chunk}}))
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(400)
    client.connect(HOST, PORT)
    client.loop_start()
    i = 0
    while not stop.is_set():
        info = client.publish(f"{topic_root}/site1/bulk", payloads[i % len(payloads)], qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.001)
            continue
        i += 1
    client.disconnect()
    client.loop_stop()


def measure(count_fn, seconds: float, warmup: float = 2.0) -> float:  # noqa: ANN001
    time.sleep(warmup)
    c0, t0 = count_fn(), time.perf_counter()
    time.sleep(seconds)
    return (count_fn() - c0) / (time.perf_counter() - t0)


def run_with_publisher(topic_root: str, args: argparse.Namespace, body) -> float:  # noqa: ANN001
    stop = mp.Event()
    proc = mp.Process(target=publish_forever, args=(topic_root, args.per_message, args.tags, stop), daemon=True)
    proc.start()
    try:
        return body()
    finally:
        stop.set()
        proc.join(10)


def hazardloop_rate(args: argparse.Namespace) -> tuple[float, MqttConnector]:
    root = f"hlbench/{uuid.uuid4().hex[:8]}"
    sink = MemorySink()
    connector = MqttConnector(sink, topic=root + "/{site}/{tag}", group="bench", host=HOST, port=PORT)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(connector.run(),), daemon=True)
    thread.start()
    while not connector.status.connected:
        time.sleep(0.02)
    rate = run_with_publisher(root, args, lambda: measure(lambda: sink.count, args.seconds))
    connector.stop()
    thread.join(10)
    return rate, connector


def naive_rate(args: argparse.Namespace) -> float:
    """The way most first MQTT consumers look: json.loads in on_message, a dict per reading in a list."""
    root = f"hlbench/{uuid.uuid4().hex[:8]}"
    rows: list[dict] = []
    ready = threading.Event()

    def on_connect(client, userdata, flags, reason, properties):  # noqa: ANN001, ANN202
        client.subscribe(f"$share/naive/{root}/+/+", qos=1)

    def on_subscribe(client, userdata, mid, reasons, properties):  # noqa: ANN001, ANN202
        ready.set()

    def on_message(client, userdata, msg):  # noqa: ANN001, ANN202
        doc = json.loads(msg.payload)
        for tag, value in doc["values"].items():
            rows.append({"tag": tag, "ts": doc["ts"], "v": float(value)})

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(HOST, PORT)
    client.loop_start()
    ready.wait(10)
    rate = run_with_publisher(root, args, lambda: measure(lambda: len(rows), args.seconds))
    client.disconnect()
    client.loop_stop()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--per-message", type=int, default=500)
    parser.add_argument("--tags", type=int, default=5000)
    args = parser.parse_args()

    ours, connector = hazardloop_rate(args)
    naive = naive_rate(args)
    s = connector.status
    header = ["consumer", "readings/s (sustained)", "ratio", "goal"]
    rows = [
        ["HazardLoop MqttConnector → numpy MemorySink (QoS 1, acks after sink)", f"{ours:,.0f}", "1", "≥ 100,000"],
        ["naive paho on_message → list of dicts (QoS 1, auto-ack)", f"{naive:,.0f}", f"{ours / naive:.2f}× slower"
         if naive < ours else f"{naive / ours:.2f}× faster", ""],
    ]
    console.print(rich_table("MQTT ingest", header, rows))
    console.print(f"connector: {s.messages:,} messages, {s.readings:,} readings, {s.malformed} malformed, "
                  f"{s.reconnects} reconnects")

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh(["naive paho", "HazardLoop"], [naive, ours], color=["#999999", "#2a7ab0"])
    ax.axvline(100_000, color="#c0392b", linestyle="--", label="goal 100k/s")
    ax.set_xlabel("readings/s through MQTT (2 cores shared with broker and publisher)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "mqtt_ingest.png", dpi=120)

    (RESULTS / "mqtt_ingest.md").write_text(
        f"""# MQTT ingest

Generated by `python benchmarks/mqtt_ingest.py --seconds {args.seconds:g} --per-message {args.per_message}
--tags {args.tags}` ({machine()}), against Mosquitto at {HOST}:{PORT}.

A separate publisher process sends many-tag messages of {args.per_message} readings
(`{{"ts": ..., "values": {{tag: v, ...}}}}`, {args.tags:,} distinct tags) at QoS 1 as fast as the broker
takes them. Each consumer subscribes through an MQTT v5 shared subscription and is measured over a
{args.seconds:g} s steady window after a 2 s warm-up. Broker, publisher and consumer share the same
2 cores, so the consumer alone has less than the whole machine.

{markdown_table(header, rows)}

![readings/s](mqtt_ingest.png)

**What this measures:** decode → numpy batch → in-memory sink, with QoS 1 acknowledgements sent only
after the sink accepted each batch. **What it does not:** the durable store; the end-to-end figure into
the reading store (DuckDB and PostgreSQL, through StoreSink) is in [mqtt_store.md](mqtt_store.md).
"""
    )


if __name__ == "__main__":
    main()
