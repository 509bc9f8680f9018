"""Connectors turn outside sources (MQTT, OPC UA, Modbus TCP) into batches of readings for a sink.

See README.md in this folder for the MQTT topic/payload convention and the connector file.
Protocol libraries are imported by the submodules only, so ``from hazardloop.connectors import
ReadingSink`` stays cheap for code that just implements a sink.
"""

from hazardloop.connectors.base import Backoff, Batcher, ConnectorStatus, ReadingSink
from hazardloop.connectors.status import REGISTRY, SilentSensor, StatusRegistry, silent_sensors

__all__ = [
    "REGISTRY",
    "Backoff",
    "Batcher",
    "ConnectorStatus",
    "ReadingSink",
    "SilentSensor",
    "StatusRegistry",
    "silent_sensors",
]
