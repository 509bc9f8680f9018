"""Polling for tests of work done on other threads and processes (feeds, brokers, followers)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_for(check: Callable[[], object], timeout: float = 30.0, interval: float = 0.1) -> object:
    """Poll until ``check`` gives something truthy and return it; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(interval)
    pytest.fail(f"nothing after {timeout} s")
