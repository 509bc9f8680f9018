"""What every channel shares: the message, its recipients, the outcome of one attempt, and config checks.

A channel module is three small steps, each testable alone: build the exact request, send it
with a timeout, and classify the answer as ok / retry / permanent, keeping the channel's own
error text so that an admin reads "93000 invalid webhook url", not "failed".
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from hazardloop.errors import InvalidInput

MASK = "***"
DEFAULT_TIMEOUT_S = 10.0


class Result(enum.StrEnum):
    OK = "ok"
    RETRY = "retry"  # worth trying again later: 5xx, timeouts, rate limits
    PERMANENT = "permanent"  # the same request will fail again: bad key, bad signature, missing keyword


@dataclass(frozen=True)
class Outcome:
    result: Result
    detail: str = ""
    retry_after_s: float | None = None  # the channel told us (or is known) to wait at least this long


@dataclass(frozen=True)
class Recipient:
    """One person as each channel addresses them; any identifier may be missing."""

    name: str
    user_id: int | None = None
    mobile: str | None = None
    email: str | None = None
    wecom_userid: str | None = None
    feishu_open_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipient:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    idempotency_key: str
    urgent: bool = False
    recipients: tuple[Recipient, ...] = ()


@dataclass(frozen=True)
class HttpRequest:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


SmtpFactory = Callable[[str, int, float], smtplib.SMTP]


@dataclass
class Transport:
    """How requests leave the process; tests pass their own clock-free client or SMTP factory."""

    http: httpx.Client
    smtp: SmtpFactory = field(default=lambda host, port, timeout: smtplib.SMTP(host, port, timeout=timeout))

    @classmethod
    def default(cls) -> Transport:
        return cls(http=httpx.Client(timeout=DEFAULT_TIMEOUT_S, follow_redirects=False))


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON: Chinese stays readable and byte limits are counted on what is sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def truncate_utf8(text: str, limit: int, marker: str = "…(内容过长已截断)") -> str:
    """Cut text to at most `limit` UTF-8 bytes on a character boundary, and say that it was cut."""
    if len(text.encode("utf-8")) <= limit:
        return text
    room = limit - len(marker.encode("utf-8"))
    cut = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return cut + marker


def with_keyword(text: str, keyword: str | None) -> str:
    """DingTalk and Feishu robots with keyword security drop messages that lack the keyword."""
    if keyword and keyword not in text:
        return f"【{keyword}】{text}"
    return text


# ---------------------------------------------------------------- config checks


class ChannelConfig(BaseModel):
    """Base of each channel's config schema; `SECRETS` name the fields the API never shows."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    SECRETS: ClassVar[tuple[str, ...]] = ()

    def masked(self) -> dict[str, Any]:
        data = self.model_dump(exclude_none=True)
        for name in self.SECRETS:
            if data.get(name):
                data[name] = MASK
        return data


def http_url(value: str, *, query: str | None = None) -> str:
    """A usable http(s) URL, optionally with a required query parameter (the robot's credential)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    if query and not dict(parse_qsl(parts.query)).get(query):
        raise ValueError(f"must carry the robot's '{query}=' parameter (copy the whole webhook URL)")
    return value


class WebhookUrlConfig(ChannelConfig):
    webhook_url: str

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)

    def masked(self) -> dict[str, Any]:
        data = super().masked()
        data["webhook_url"] = mask_url(self.webhook_url)
        return data


def mask_url(url: str) -> str:
    """Hide what works as a credential in a robot URL: query values and the last path segment of a hook."""
    parts = urlsplit(url)
    query = urlencode([(k, MASK) for k, _ in parse_qsl(parts.query)], safe="*")
    path = parts.path
    if "/hook/" in path:
        path = path.rsplit("/", 1)[0] + "/" + MASK
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def parse_config(schema: type[ChannelConfig], raw: dict[str, Any]) -> ChannelConfig:
    """Validate a config dict, turning the first problem into a 422 that names config.<field>."""
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())) or "config"
        message = error.get("msg", "invalid").removeprefix("Value error, ")
        raise InvalidInput(f"config.{where}", message) from None


def classify_http(response: httpx.Response) -> Outcome | None:
    """The HTTP-level verdict, or None when the body must decide (a 2xx)."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    detail = f"HTTP {status}: {response.text[:300]}"
    if status == 429 or status == 408 or status >= 500:
        retry_after = response.headers.get("retry-after")
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        return Outcome(Result.RETRY, detail, seconds)
    return Outcome(Result.PERMANENT, detail)


def post(transport: Transport, request: HttpRequest, classify: Callable[[httpx.Response], Outcome]) -> Outcome:
    """Send one request; a timeout or a refused connection is worth retrying, never a crash."""
    try:
        response = transport.http.post(request.url, content=request.body, headers=request.headers)
    except httpx.TimeoutException as exc:
        return Outcome(Result.RETRY, f"timeout: {exc.__class__.__name__}")
    except httpx.TransportError as exc:
        return Outcome(Result.RETRY, f"connection failed: {exc}")
    return classify_http(response) or classify(response)


def body_json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def epoch(now: dt.datetime) -> float:
    return now.timestamp()
