"""Each channel builds the exact request the platform documents, signs it, and reads its answer right."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterator

import httpx
import pytest
from notify_servers import DINGTALK_SECRET, FEISHU_SECRET, WEBHOOK_SECRET, Mailbox, RobotServer

from hazardloop.notify.channels import dingtalk, email, feishu, webhook, wecom
from hazardloop.notify.channels.base import Message, Recipient, Result, Transport, truncate_utf8

NOW = dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)  # epoch 1700000000, the infra.md vectors' time
WANG = Recipient(name="王青", user_id=1, mobile="13800001111", email="wang@example.cn", wecom_userid="wangqing",
                 feishu_open_id="ou_xxx")


@pytest.fixture
def transport() -> Iterator[Transport]:
    client = httpx.Client(timeout=5)
    yield Transport(http=client)
    client.close()


def msg(text: str = "罐区T-3 H2S 35ppm 超限", *, people: tuple[Recipient, ...] = (WANG,),
        urgent: bool = False) -> Message:
    return Message(title="重大隐患", text=text, idempotency_key="evt-1#3", urgent=urgent, recipients=people)


# ---------------------------------------------------------------- signatures (infra.md vectors)


def test_dingtalk_signature_matches_the_published_vector() -> None:
    assert dingtalk.sign("SECtestsecret0123456789", 1700000000000) == (
        "zrLWzK97t62y5CpqN8Ok9UIdPvX+jL1PNoW8nKT5a9k=",
        "zrLWzK97t62y5CpqN8Ok9UIdPvX%2BjL1PNoW8nKT5a9k%3D",
    )


def test_feishu_signature_matches_the_published_vector() -> None:
    assert feishu.sign("feishu_test_secret", 1700000000) == "taGE/ihlr19o9EOAGJbI4fjJSZ0Uf4n/bc8fWjnpkHM="


def test_webhook_signature_is_hmac_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhook.sign("k" * 16, 1700000000, body) == expected


def test_utf8_truncation_keeps_whole_characters_and_says_so() -> None:
    cut = truncate_utf8("隐" * 1000, 2048)
    assert len(cut.encode("utf-8")) <= 2048 and cut.endswith("…(内容过长已截断)")
    assert truncate_utf8("short", 2048) == "short"


# ---------------------------------------------------------------- WeCom


def test_wecom_text_mentions_userids_and_mobiles(robots: RobotServer, transport: Transport) -> None:
    config = wecom.Config(webhook_url=robots.url("wecom"), mention_all=True)
    outcome = wecom.send(config, msg(), transport, NOW)
    assert outcome.result is Result.OK
    assert robots.requests[0].json() == {"msgtype": "text", "text": {
        "content": "罐区T-3 H2S 35ppm 超限", "mentioned_list": ["wangqing", "@all"],
        "mentioned_mobile_list": ["13800001111", "@all"]}}


def test_wecom_text_over_2048_bytes_is_truncated_and_marked(robots: RobotServer, transport: Transport) -> None:
    wecom.send(wecom.Config(webhook_url=robots.url("wecom")), msg("超限" * 600, people=()), transport, NOW)
    content = robots.requests[0].json()["text"]["content"]
    assert len(content.encode("utf-8")) <= 2048 and content.endswith("(内容过长已截断)")


def test_wecom_markdown_mentions_inside_the_content(robots: RobotServer, transport: Transport) -> None:
    wecom.send(wecom.Config(webhook_url=robots.url("wecom"), format="markdown"), msg(">位置:罐区T-3"), transport, NOW)
    assert robots.requests[0].json() == {
        "msgtype": "markdown", "markdown": {"content": "### 重大隐患\n>位置:罐区T-3\n<@wangqing>"}}


def test_wecom_bad_key_is_permanent_with_the_platform_text(robots: RobotServer, transport: Transport) -> None:
    config = wecom.Config(webhook_url=robots.url("wecom").replace("wecom-key-1", "removed"))
    outcome = wecom.send(config, msg(), transport, NOW)
    assert outcome.result is Result.PERMANENT and outcome.detail.startswith("93000 invalid webhook url")


def test_wecom_rate_limit_is_retryable(robots: RobotServer, transport: Transport) -> None:
    robots.replies.append((200, {"errcode": 45009, "errmsg": "api freq out of limit"}))
    outcome = wecom.send(wecom.Config(webhook_url=robots.url("wecom")), msg(), transport, NOW)
    assert outcome.result is Result.RETRY and "45009" in outcome.detail and outcome.retry_after_s


# ---------------------------------------------------------------- DingTalk


def test_dingtalk_text_is_signed_and_appends_the_at_mobile(robots: RobotServer, transport: Transport) -> None:
    config = dingtalk.Config(webhook_url=robots.url("dingtalk"), secret=DINGTALK_SECRET, keyword="H2S")
    outcome = dingtalk.send(config, msg("H2S 超限,请处理"), transport, NOW)
    assert outcome.result is Result.OK, outcome.detail
    got = robots.requests[0]
    assert got.query["timestamp"] == "1700000000000"
    assert got.query["sign"] == "zrLWzK97t62y5CpqN8Ok9UIdPvX+jL1PNoW8nKT5a9k="  # sent URL-encoded, decoded here
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    assert got.json() == {"msgtype": "text", "text": {"content": "H2S 超限,请处理 @13800001111"},
                          "at": {"atMobiles": ["13800001111"], "isAtAll": False}}


def test_dingtalk_keyword_is_added_when_the_text_lacks_it(robots: RobotServer, transport: Transport) -> None:
    config = dingtalk.Config(webhook_url=robots.url("dingtalk"), secret=DINGTALK_SECRET, keyword="隐患")
    dingtalk.send(config, msg("H2S 超限", people=()), transport, NOW)
    assert robots.requests[0].json()["text"]["content"] == "【隐患】H2S 超限"


def test_dingtalk_markdown_has_title_and_at_line(robots: RobotServer, transport: Transport) -> None:
    config = dingtalk.Config(webhook_url=robots.url("dingtalk"), secret=DINGTALK_SECRET, format="markdown")
    dingtalk.send(config, msg("#### 罐区T-3\n> H2S 35 ppm"), transport, NOW)
    assert robots.requests[0].json() == {
        "msgtype": "markdown", "markdown": {"title": "重大隐患", "text": "#### 罐区T-3\n> H2S 35 ppm\n\n@13800001111"},
        "at": {"atMobiles": ["13800001111"], "isAtAll": False}}


def test_dingtalk_wrong_secret_is_permanent(robots: RobotServer, transport: Transport) -> None:
    config = dingtalk.Config(webhook_url=robots.url("dingtalk"), secret="SECwrong")
    outcome = dingtalk.send(config, msg(), transport, NOW)
    assert outcome.result is Result.PERMANENT and outcome.detail.startswith("310000 sign not match")


def test_dingtalk_send_too_fast_waits_ten_minutes(robots: RobotServer, transport: Transport) -> None:
    robots.replies.append((200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}))
    config = dingtalk.Config(webhook_url=robots.url("dingtalk"), secret=DINGTALK_SECRET)
    outcome = dingtalk.send(config, msg(), transport, NOW)
    assert outcome.result is Result.RETRY and outcome.retry_after_s == 600


# ---------------------------------------------------------------- Feishu


def test_feishu_text_carries_sign_in_the_body_and_at_by_open_id(robots: RobotServer, transport: Transport) -> None:
    config = feishu.Config(webhook_url=robots.url("feishu"), secret=FEISHU_SECRET, at_all=True)
    outcome = feishu.send(config, msg("H2S 超限"), transport, NOW)
    assert outcome.result is Result.OK, outcome.detail
    assert robots.requests[0].json() == {
        "timestamp": "1700000000", "sign": "taGE/ihlr19o9EOAGJbI4fjJSZ0Uf4n/bc8fWjnpkHM=", "msg_type": "text",
        "content": {"text": 'H2S 超限 <at user_id="ou_xxx">王青</at> <at user_id="all">所有人</at>'}}


def test_feishu_post_puts_mentions_in_the_line(robots: RobotServer, transport: Transport) -> None:
    config = feishu.Config(webhook_url=robots.url("feishu"), secret=FEISHU_SECRET, format="post")
    feishu.send(config, msg("罐区T-3: "), transport, NOW)
    body = robots.requests[0].json()
    assert body["msg_type"] == "post"
    assert body["content"] == {"post": {"zh_cn": {"title": "重大隐患", "content": [
        [{"tag": "text", "text": "罐区T-3: "}, {"tag": "at", "user_id": "ou_xxx"}]]}}}


@pytest.mark.parametrize(("code", "result"), [(19021, Result.PERMANENT), (19024, Result.PERMANENT),
                                              (9499, Result.PERMANENT), (11232, Result.RETRY)])
def test_feishu_error_codes(robots: RobotServer, transport: Transport, code: int, result: Result) -> None:
    robots.replies.append((200, {"code": code, "msg": "platform says no", "data": {}}))
    outcome = feishu.send(feishu.Config(webhook_url=robots.url("feishu")), msg(), transport, NOW)
    assert outcome.result is result and outcome.detail == f"{code} platform says no"


# ---------------------------------------------------------------- webhook and HTTP-level failures


def test_webhook_is_signed_and_carries_the_idempotency_key(robots: RobotServer, transport: Transport) -> None:
    outcome = webhook.send(webhook.Config(webhook_url=robots.url("webhook"), secret=WEBHOOK_SECRET), msg(),
                           transport, NOW)
    assert outcome.result is Result.OK  # the server verified the signature
    got = robots.requests[0]
    assert got.headers["idempotency-key"] == "evt-1#3"
    assert got.json()["text"] == "罐区T-3 H2S 35ppm 超限" and got.json()["recipients"][0]["mobile"] == "13800001111"


def test_webhook_wrong_secret_is_refused_permanently(robots: RobotServer, transport: Transport) -> None:
    config = webhook.Config(webhook_url=robots.url("webhook"), secret="x" * 16)
    assert webhook.send(config, msg(), transport, NOW).result is Result.PERMANENT


def test_http_5xx_and_a_dead_server_are_retryable(robots: RobotServer, transport: Transport) -> None:
    robots.replies.append((502, {"error": "bad gateway"}))
    assert wecom.send(wecom.Config(webhook_url=robots.url("wecom")), msg(), transport, NOW).result is Result.RETRY
    closed = wecom.Config(webhook_url="http://127.0.0.1:9/cgi-bin/webhook/send?key=k")
    outcome = wecom.send(closed, msg(), transport, NOW)
    assert outcome.result is Result.RETRY and "connection failed" in outcome.detail


# ---------------------------------------------------------------- e-mail


def test_email_arrives_with_a_chinese_subject_and_the_key_as_message_id(mailbox: Mailbox) -> None:
    config = email.Config(host=mailbox.host, port=mailbox.port, from_addr="alerts@plant.cn", to=["duty@plant.cn"])
    outcome = email.send(config, msg(urgent=True), Transport(http=httpx.Client()), NOW)
    assert outcome.result is Result.OK, outcome.detail
    sender, rcpts, mail = mailbox.messages[0]
    assert sender == "alerts@plant.cn" and rcpts == ["wang@example.cn", "duty@plant.cn"]
    assert mail["Subject"] == "【紧急】重大隐患"
    assert "evt-1.3" in mail["Message-ID"]
    assert mail.get_content().strip() == "罐区T-3 H2S 35ppm 超限"


def test_email_without_any_address_is_permanent(mailbox: Mailbox) -> None:
    config = email.Config(host=mailbox.host, port=mailbox.port, from_addr="alerts@plant.cn")
    outcome = email.send(config, msg(people=(Recipient(name="无邮箱"),)), Transport(http=httpx.Client()), NOW)
    assert outcome.result is Result.PERMANENT and not mailbox.messages
