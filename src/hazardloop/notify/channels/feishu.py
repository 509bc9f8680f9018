"""Feishu / Lark custom bot: signature in the JSON body, text or post, @ by open_id.

Format, signature and error codes: docs/infra.md §3. Feishu's signature differs from
DingTalk's: TS + "\\n" + secret is the HMAC *key* and the message is empty; there is no @ by
phone number, so people without an open_id are named in plain text.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Any, Literal

import httpx

from hazardloop.notify.channels.base import (
    HttpRequest,
    Message,
    Outcome,
    Result,
    Transport,
    WebhookUrlConfig,
    body_json,
    dumps,
    post,
    truncate_utf8,
    with_keyword,
)

BODY_LIMIT_BYTES = 20 * 1024  # larger bodies are refused with 9499
TEXT_BUDGET_BYTES = 16 * 1024  # leaves room for the envelope, mentions and signature
RETRYABLE = {11232}  # rate limited: 100/min and 5/s per bot
PERMANENT = {19021, 19022, 19024, 9499, 19001, 19002}  # sign/time; IP; keyword; bad request; bad hook


class Config(WebhookUrlConfig):
    secret: str | None = None
    keyword: str | None = None
    format: Literal["text", "post"] = "text"
    at_all: bool = False

    SECRETS = ("secret",)


def sign(secret: str, timestamp_s: int) -> str:
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def build_request(config: Config, message: Message, now: dt.datetime) -> HttpRequest:
    text = truncate_utf8(with_keyword(message.text, config.keyword), TEXT_BUDGET_BYTES)
    people = [r for r in message.recipients if r.feishu_open_id]
    payload: dict[str, Any] = {}
    if config.secret:
        timestamp_s = int(now.timestamp())
        payload = {"timestamp": str(timestamp_s), "sign": sign(config.secret, timestamp_s)}
    if config.format == "post":
        line: list[dict[str, str]] = [{"tag": "text", "text": text}]
        line += [{"tag": "at", "user_id": r.feishu_open_id or ""} for r in people]
        if config.at_all:
            line.append({"tag": "at", "user_id": "all"})
        payload |= {"msg_type": "post", "content": {"post": {"zh_cn": {"title": message.title, "content": [line]}}}}
    else:
        mentions = [f'<at user_id="{r.feishu_open_id}">{r.name}</at>' for r in people]
        if config.at_all:
            mentions.append('<at user_id="all">所有人</at>')
        payload |= {"msg_type": "text", "content": {"text": " ".join([text, *mentions])}}
    return HttpRequest(config.webhook_url, dumps(payload), {"Content-Type": "application/json"})


def classify(response: httpx.Response) -> Outcome:
    data = body_json(response)
    code = data.get("code", data.get("StatusCode"))
    detail = f"{code} {data.get('msg', data.get('StatusMessage', ''))}".strip()
    if code == 0:
        return Outcome(Result.OK, detail)
    if code in PERMANENT:
        return Outcome(Result.PERMANENT, detail)
    return Outcome(Result.RETRY, detail or f"unreadable answer: {response.text[:200]}",
                   60.0 if code == 11232 else None)


def send(config: Config, message: Message, transport: Transport, now: dt.datetime) -> Outcome:
    return post(transport, build_request(config, message, now), classify)
