"""E-mail over SMTP: one message to the whole recipient batch, UTF-8 subject and body.

The outbox idempotency key becomes the Message-ID, so a retried mail that did arrive the first
time is recognisable as the same mail by the receiving side.
"""

from __future__ import annotations

import datetime as dt
import smtplib
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Literal

from pydantic import EmailStr, Field

from hazardloop.notify.channels.base import ChannelConfig, Message, Outcome, Result, Transport

DEFAULT_TIMEOUT_S = 15.0


class Config(ChannelConfig):
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: str | None = None
    from_addr: EmailStr
    to: list[EmailStr] = []  # always-on addresses (a shift mailbox) besides the resolved people

    SECRETS = ("password",)


def build_message(config: Config, message: Message, now: dt.datetime) -> EmailMessage:
    addresses = list(dict.fromkeys([*(r.email for r in message.recipients if r.email), *config.to]))
    mail = EmailMessage()
    mail["Subject"] = ("【紧急】" if message.urgent else "") + message.title
    mail["From"] = config.from_addr
    mail["To"] = ", ".join(addresses)
    mail["Date"] = format_datetime(now)
    domain = config.from_addr.split("@", 1)[-1]
    mail["Message-ID"] = make_msgid(idstring=_safe(message.idempotency_key), domain=domain)
    mail.set_content(message.text, charset="utf-8")
    return mail


def _safe(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "." for ch in key)[:120]


def send(config: Config, message: Message, transport: Transport, now: dt.datetime) -> Outcome:
    mail = build_message(config, message, now)
    if not mail["To"]:
        return Outcome(Result.PERMANENT, "no recipient has an e-mail address and the channel has no 'to' list")
    try:
        if config.security == "ssl":
            client = smtplib.SMTP_SSL(config.host, config.port, timeout=DEFAULT_TIMEOUT_S)
        else:
            client = transport.smtp(config.host, config.port, DEFAULT_TIMEOUT_S)
        with client:
            if config.security == "starttls":
                client.starttls()
            if config.username:
                client.login(config.username, config.password or "")
            refused = client.send_message(mail)
    except smtplib.SMTPAuthenticationError as exc:
        return Outcome(Result.PERMANENT, f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}")
    except smtplib.SMTPRecipientsRefused as exc:
        return _by_code(min(code for code, _ in exc.recipients.values()), f"all recipients refused: {exc.recipients}")
    except smtplib.SMTPResponseException as exc:
        return _by_code(exc.smtp_code, f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}")
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        return Outcome(Result.RETRY, f"SMTP connection failed: {exc}")
    if refused:
        return Outcome(Result.OK, f"sent; refused by the server for: {', '.join(refused)}")
    return Outcome(Result.OK, "250 sent")


def _by_code(code: int, detail: str) -> Outcome:
    """SMTP 4xx is temporary by definition (RFC 5321 §4.2.1); 5xx is permanent."""
    return Outcome(Result.RETRY if 400 <= code < 500 else Result.PERMANENT, detail)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
