"""The channels a notification can leave by, keyed by ChannelKind."""

from __future__ import annotations

import datetime as dt
from types import ModuleType
from typing import Any

from hazardloop.errors import InvalidInput
from hazardloop.notify.channels import dingtalk, email, feishu, webhook, wecom
from hazardloop.notify.channels.base import ChannelConfig, Message, Outcome, Transport, parse_config

MODULES: dict[str, ModuleType] = {
    "wecom": wecom,
    "dingtalk": dingtalk,
    "feishu": feishu,
    "email": email,
    "webhook": webhook,
}


def module_for(kind: str) -> ModuleType:
    try:
        return MODULES[kind]
    except KeyError:
        raise InvalidInput("kind", f"unknown channel kind '{kind}'; known: {', '.join(MODULES)}") from None


def validate_config(kind: str, raw: dict[str, Any]) -> ChannelConfig:
    return parse_config(module_for(kind).Config, raw)


def send(kind: str, raw_config: dict[str, Any], message: Message, transport: Transport, now: dt.datetime) -> Outcome:
    module = module_for(kind)
    return module.send(parse_config(module.Config, raw_config), message, transport, now)
