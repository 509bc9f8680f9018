"""DingTalk (钉钉) custom robot: HMAC-SHA256 signed URL, text or markdown, @ by mobile.

Format, signature and error codes: docs/infra.md §3. DingTalk only highlights an @ when
"@<mobile>" also appears in the text, so it is appended (as zhuifengshen/DingtalkChatbot does).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Literal
from urllib.parse import quote_plus

import httpx
from pydantic import field_validator

from hazardloop.notify.channels.base import (
    HttpRequest,
    Message,
    Outcome,
    Result,
    Transport,
    WebhookUrlConfig,
    body_json,
    dumps,
    http_url,
    post,
    with_keyword,
)

RETRYABLE = {-1, 130101}  # system busy; send too fast (20/min, then throttled for 10 minutes)
PERMANENT = {310000, 300001, 400013}  # security check failed; token does not exist; robot disabled
THROTTLE_S = 600.0


class Config(WebhookUrlConfig):
    secret: str | None = None  # the SEC… string when "加签" security is on
    keyword: str | None = None  # when "自定义关键词" security is on
    format: Literal["text", "markdown"] = "text"
    at_all: bool = False

    SECRETS = ("secret",)

    @field_validator("webhook_url")
    @classmethod
    def _token(cls, value: str) -> str:
        return http_url(value, query="access_token")

    @field_validator("secret")
    @classmethod
    def _sec(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("SEC"):
            raise ValueError("a DingTalk signing secret starts with 'SEC' (copy it from the robot's security settings)")
        return value


def sign(secret: str, timestamp_ms: int) -> tuple[str, str]:
    """(base64 signature, URL-encoded signature) for `timestamp_ms`; DingTalk signs TS + "\\n" + secret."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), string_to_sign, hashlib.sha256).digest()
    encoded = base64.b64encode(digest).decode("ascii")
    return encoded, quote_plus(encoded)


def signed_url(config: Config, now: dt.datetime) -> str:
    if not config.secret:
        return config.webhook_url
    timestamp_ms = int(now.timestamp() * 1000)
    _, signature = sign(config.secret, timestamp_ms)
    return f"{config.webhook_url}&timestamp={timestamp_ms}&sign={signature}"


def build_request(config: Config, message: Message, now: dt.datetime) -> HttpRequest:
    mobiles = [r.mobile for r in message.recipients if r.mobile]
    at = {"atMobiles": mobiles, "isAtAll": config.at_all}
    missing = " ".join(f"@{m}" for m in mobiles if f"@{m}" not in message.text)
    if config.format == "markdown":
        text = with_keyword(message.text, config.keyword) + (f"\n\n{missing}" if missing else "")
        payload = {"msgtype": "markdown", "markdown": {"title": message.title, "text": text}, "at": at}
    else:
        content = with_keyword(message.text, config.keyword) + (f" {missing}" if missing else "")
        payload = {"msgtype": "text", "text": {"content": content}, "at": at}
    return HttpRequest(signed_url(config, now), dumps(payload), {"Content-Type": "application/json; charset=utf-8"})


def classify(response: httpx.Response) -> Outcome:
    data = body_json(response)
    code = data.get("errcode")
    detail = f"{code} {data.get('errmsg', '')}".strip()
    if code == 0:
        return Outcome(Result.OK, detail)
    if code in PERMANENT:
        return Outcome(Result.PERMANENT, detail)
    return Outcome(Result.RETRY, detail or f"unreadable answer: {response.text[:200]}",
                   THROTTLE_S if code == 130101 else None)


def send(config: Config, message: Message, transport: Transport, now: dt.datetime) -> Outcome:
    return post(transport, build_request(config, message, now), classify)
