"""WeCom (企业微信) group robot: text with mentions by userid and mobile, or markdown with <@userid>.

Format and error codes: docs/infra.md §3. The key in the URL is the only credential (no signing),
so the whole URL is treated as a secret.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

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
    truncate_utf8,
)

TEXT_LIMIT_BYTES = 2048  # official limit of text.content
MARKDOWN_LIMIT_BYTES = 4096  # commonly cited; infra.md notes the official line was not seen
RETRYABLE = {-1, 45009}  # -1 system busy; 45009 api freq out of limit (20/min per robot)
PERMANENT = {93000, 40008, 40058, 44004}  # invalid webhook url; bad msgtype; bad param; empty content


class Config(WebhookUrlConfig):
    format: Literal["text", "markdown"] = "text"
    mention_all: bool = False  # text only: markdown cannot mention everyone

    @field_validator("webhook_url")
    @classmethod
    def _key(cls, value: str) -> str:
        return http_url(value, query="key")


def build_request(config: Config, message: Message, now: dt.datetime) -> HttpRequest:
    """The exact JSON WeCom expects; mentions go where each msgtype supports them."""
    headers = {"Content-Type": "application/json"}
    people = message.recipients
    if config.format == "markdown":
        mentions = " ".join(f"<@{r.wecom_userid}>" for r in people if r.wecom_userid)
        title = f'### <font color="warning">{message.title}</font>' if message.urgent else f"### {message.title}"
        content = f"{title}\n{message.text}" + (f"\n{mentions}" if mentions else "")
        content = truncate_utf8(content, MARKDOWN_LIMIT_BYTES)
        return HttpRequest(config.webhook_url, dumps({"msgtype": "markdown", "markdown": {"content": content}}),
                           headers)
    text: dict[str, object] = {"content": truncate_utf8(message.text, TEXT_LIMIT_BYTES)}
    userids = [r.wecom_userid for r in people if r.wecom_userid]
    mobiles = [r.mobile for r in people if r.mobile]
    if config.mention_all:
        userids.append("@all")
        mobiles.append("@all")
    if userids:
        text["mentioned_list"] = userids
    if mobiles:
        text["mentioned_mobile_list"] = mobiles
    return HttpRequest(config.webhook_url, dumps({"msgtype": "text", "text": text}), headers)


def classify(response: httpx.Response) -> Outcome:
    data = body_json(response)
    code = data.get("errcode")
    detail = f"{code} {data.get('errmsg', '')}".strip()
    if code == 0:
        return Outcome(Result.OK, detail)
    if code in PERMANENT:
        return Outcome(Result.PERMANENT, detail)
    # 45009 and unknown codes: retrying is bounded by the attempt limit, losing a message is not
    return Outcome(Result.RETRY, detail or f"unreadable answer: {response.text[:200]}", 60.0 if code == 45009 else None)


def send(config: Config, message: Message, transport: Transport, now: dt.datetime) -> Outcome:
    return post(transport, build_request(config, message, now), classify)
