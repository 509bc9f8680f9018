"""Helpers the connector tests share: a sink that keeps batches, a fake clock, polling for a condition."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

BROKER_HOST = "127.0.0.1"


def answers(port: int, host: str = BROKER_HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind((BROKER_HOST, 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    host: str
    port: int
    process: subprocess.Popen | None = None  # set when we started it ourselves


def start_mosquitto(folder: Path, port: int) -> subprocess.Popen:
    """A private Mosquitto on `port`, for tests that need to kill and restart a broker."""
    binary = shutil.which("mosquitto")
    if binary is None:
        pytest.fail(
            "no MQTT broker: nothing answers on 127.0.0.1:1883 and `mosquitto` is not installed "
            "(apt-get install mosquitto)"
        )
    conf = folder / f"mosquitto-{port}.conf"
    conf.write_text(f"listener {port} {BROKER_HOST}\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not answers(port):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"mosquitto did not start on port {port}")
        time.sleep(0.02)
    return process


class ListSink:
    """Keeps every batch; can be told to fail the next N writes."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], np.ndarray, np.ndarray, list[str | None] | None]] = []
        self.fail_next = 0

    def write(self, tags, ts, values, units=None) -> None:  # noqa: ANN001 - the ReadingSink protocol
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("store unavailable")
        self.batches.append((list(tags), np.asarray(ts).copy(), np.asarray(values).copy(), units))

    @property
    def readings(self) -> list[tuple[str, int, float]]:
        return [(t, int(s), float(v)) for tags, ts, vs, _ in self.batches for t, s, v in zip(tags, ts, vs, strict=True)]

    @property
    def count(self) -> int:
        return sum(len(b[0]) for b in self.batches)


class FakeClock:
    """Real time for batching, recorded instant sleeps for back-off."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0.01)


async def wait_until(predicate, timeout: float = 5.0, step: float = 0.02) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the condition")
        await asyncio.sleep(step)
