"""Real local servers playing the channels: one HTTP server (WeCom, DingTalk, Feishu, webhook) that
checks credentials and signatures the way the platforms do and answers with their error codes,
and an aiosmtpd sink for e-mail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))

from world import World, build_world  # noqa: E402

WECOM_KEY = "wecom-key-1"
DINGTALK_TOKEN = "ding-token-1"
DINGTALK_SECRET = "SECtestsecret0123456789"
FEISHU_HOOK = "hook-abc"
FEISHU_SECRET = "feishu_test_secret"
WEBHOOK_SECRET = "webhook-secret-0123456789"


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RobotServer:
    """Records every request; `replies` (status, json) are served first, else the platform's own verdict."""

    base: str = ""
    requests: list[Received] = field(default_factory=list)
    replies: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    delay_s: float = 0.0

    def url(self, kind: str) -> str:
        return {
            "wecom": f"{self.base}/cgi-bin/webhook/send?key={WECOM_KEY}",
            "dingtalk": f"{self.base}/robot/send?access_token={DINGTALK_TOKEN}",
            "feishu": f"{self.base}/open-apis/bot/v2/hook/{FEISHU_HOOK}",
            "webhook": f"{self.base}/hook",
        }[kind]

    def verdict(self, got: Received) -> tuple[int, dict[str, Any]]:
        """What the real platform would answer to this request (docs/infra.md §3)."""
        if got.path == "/cgi-bin/webhook/send":
            if got.query.get("key") != WECOM_KEY:
                return 200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [x], from ip: 127.0.0.1"}
            return 200, {"errcode": 0, "errmsg": "ok"}
        if got.path == "/robot/send":
            ts, sign = got.query.get("timestamp", ""), got.query.get("sign", "")
            key = f"{ts}\n{DINGTALK_SECRET}".encode()
            expected = base64.b64encode(hmac.new(DINGTALK_SECRET.encode(), key, hashlib.sha256).digest()).decode()
            if got.query.get("access_token") != DINGTALK_TOKEN or sign != expected:  # parse_qs decoded it
                return 200, {"errcode": 310000, "errmsg": "sign not match, more: [https://ding-doc]"}
            return 200, {"errcode": 0, "errmsg": "ok"}
        if got.path.startswith("/open-apis/bot/v2/hook/"):
            body = got.json()
            key = f"{body.get('timestamp')}\n{FEISHU_SECRET}".encode()
            expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            if body.get("sign") != expected:
                return 200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour", "data": {}}
            return 200, {"code": 0, "msg": "success", "data": {}, "StatusCode": 0, "StatusMessage": "success"}
        if got.path == "/hook":
            ts = got.headers.get("x-hazardloop-timestamp", "")
            mac = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.".encode() + got.body, hashlib.sha256).hexdigest()
            if got.headers.get("x-hazardloop-signature") != f"sha256={mac}":
                return 401, {"error": "bad signature"}
            return 200, {"received": True}
        return 404, {"error": "no such path"}


class _Handler(BaseHTTPRequestHandler):
    server_state: RobotServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        got = Received(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                       {k.lower(): v for k, v in self.headers.items()}, body)
        state = self.server.state  # type: ignore[attr-defined]
        state.requests.append(got)
        status, payload = state.replies.popleft() if state.replies else state.verdict(got)
        if state.delay_s:
            threading.Event().wait(state.delay_s)
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def _robot_server() -> Iterator[tuple[ThreadingHTTPServer, RobotServer]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    state = RobotServer(base=f"http://127.0.0.1:{server.server_address[1]}")
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, state
    server.shutdown()
    server.server_close()


@pytest.fixture
def robots(_robot_server: tuple[ThreadingHTTPServer, RobotServer]) -> RobotServer:
    state = _robot_server[1]
    state.requests.clear()
    state.replies.clear()
    state.delay_s = 0.0
    return state


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)


class _Sink:
    def __init__(self, box: Mailbox):
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's naming
        mail = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.box.messages.append((envelope.mail_from, list(envelope.rcpt_tos), mail))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def _smtp() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox("127.0.0.1", _free_port())
    controller = Controller(_Sink(box), hostname=box.host, port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def mailbox(_smtp: Mailbox) -> Mailbox:
    _smtp.messages.clear()
    return _smtp
