"""A real server on a free port and a real Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser() -> Iterator[object]:
    executable = _chromium()
    if executable is None:
        if os.environ.get("HAZARDLOOP_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (HAZARDLOOP_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("Chromium not installed: apt-get install chromium fonts-wqy-zenhei (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(app) -> Iterator[str]:  # noqa: ANN001
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def screenshot(tmp_path):  # noqa: ANN001, ANN201
    """Take a screenshot of what the viewport shows (the screen as a person sees it, and a PNG of a few
    hundred KB at most rather than a metre-long page); with HAZARDLOOP_SCREENSHOT_DIR set (e.g.
    docs/screenshots) keep a copy there, which is how the README pictures are refreshed."""
    keep = os.environ.get("HAZARDLOOP_SCREENSHOT_DIR")

    def take(page, name: str) -> int:  # noqa: ANN001
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path))
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copyfile(path, os.path.join(keep, f"{name}.png"))
        return path.stat().st_size

    return take
