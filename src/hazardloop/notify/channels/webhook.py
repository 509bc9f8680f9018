"""Generic webhook: HMAC-SHA256-signed JSON for systems we do not know (an MES, a DCS gateway, n8n).

Signature scheme (Stripe-like, so receivers can reuse known code):
    X-HazardLoop-Timestamp: <epoch seconds>
    X-HazardLoop-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>
    Idempotency-Key: <outbox idempotency key>   (the same on every retry; receivers dedupe on it)
Signing the timestamp with the body lets a receiver refuse replays older than a few minutes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import httpx
from pydantic import Field

from hazardloop.notify.channels.base import (
    HttpRequest,
    Message,
    Outcome,
    Result,
    Transport,
    WebhookUrlConfig,
    dumps,
    post,
)


class Config(WebhookUrlConfig):
    secret: str = Field(min_length=16)  # required: an unsigned alert endpoint invites forged alarms

    SECRETS = ("secret",)

    def masked(self) -> dict[str, object]:
        data = super().masked()
        data["webhook_url"] = self.webhook_url  # a plain URL here; the secret is the credential
        return data


def sign(secret: str, timestamp_s: int, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()


def build_request(config: Config, message: Message, now: dt.datetime) -> HttpRequest:
    payload = {
        "idempotency_key": message.idempotency_key,
        "title": message.title,
        "text": message.text,
        "urgent": message.urgent,
        "recipients": [r.as_dict() for r in message.recipients],
    }
    body = dumps(payload)
    timestamp_s = int(now.timestamp())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-HazardLoop-Timestamp": str(timestamp_s),
        "X-HazardLoop-Signature": f"sha256={sign(config.secret, timestamp_s, body)}",
        "Idempotency-Key": message.idempotency_key,
    }
    return HttpRequest(config.webhook_url, body, headers)


def classify(response: httpx.Response) -> Outcome:
    return Outcome(Result.OK, f"HTTP {response.status_code}")  # non-2xx was decided by classify_http


def send(config: Config, message: Message, transport: Transport, now: dt.datetime) -> Outcome:
    return post(transport, build_request(config, message, now), classify)
