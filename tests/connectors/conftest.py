"""The world the connector tests run in: a real MQTT broker, a list sink, a fake clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from connector_world import BROKER_HOST, Broker, ListSink, answers, free_port, start_mosquitto


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The real Mosquitto on 1883 if it answers (it does here and in CI), else our own one."""
    if answers(1883):
        yield Broker(BROKER_HOST, 1883)
        return
    port = free_port()
    process = start_mosquitto(tmp_path_factory.mktemp("mqtt"), port)
    yield Broker(BROKER_HOST, port, process)
    process.terminate()
    process.wait(5)


@pytest.fixture
def prefix() -> str:
    """A topic root of its own per test, so tests never see each other's (or anyone's) messages."""
    return f"hltest/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sink() -> ListSink:
    return ListSink()
