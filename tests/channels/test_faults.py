"""Delivery under faults: each test injects one fault that once broke a promise.

The numbers are those of the issue that found them: a blocked outbox (1), a long
flood wait (2, 7), a claim left behind (3), a poisoned batch (4), a Bot API that
answers HTML (5), a Twilio callback that overtakes the send (8). The embedded
database's death (6) is in tests/gateway/test_database_outage.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from channels.base import ChannelContext, Inbound
from channels.mock import MockChannel, MockSettings
from gateway.config import DeliveryConfig
from gateway.runtime import build_services
from storage.database import Storage
from storage.records import utcnow
from testkit.fakes.script import Fail
from testkit.fakes.telegram import FakeBotAPI, make_update
from testkit.fakes.twilio import FakeTwilio
from testkit.helpers import TEST_CONFIG, CommandCounter, async_wait_until, seen
from tests.channels.conftest import MOCK, MOCK_HEADERS, MOCK_URL, PUBLIC_URL, Gateway
from tests.channels.test_telegram import SIGNED, URL, telegram
from tests.channels.test_whatsapp import PATH, inbound, signed, whatsapp

JSON = MOCK_HEADERS


async def _telegram_chats(gw: Gateway, chats: list[int]) -> dict[int, str]:
    """Each chat writes once through the webhook; returns contact ids by chat."""
    for chat in chats:
        body = json.dumps(make_update(chat, chat, "hi"))
        assert (await gw.post(URL, body, SIGNED))[0] == 200
    contacts = await gw.storage.contacts.collection.find().to_list()
    return {int(c["external_id"]): c["_id"] for c in contacts}


async def _mock_contact(gw: Gateway, external: str = "m1") -> str:
    body = json.dumps({"contact_id": external, "message": "hello"})
    assert (await gw.post(MOCK_URL, body, JSON))[0] == 200
    [contact] = await gw.storage.contacts.collection.find({"external_id": external}).to_list()
    return contact["_id"]


@pytest.fixture
async def storage(counted_storage: Storage, request: pytest.FixtureRequest) -> Storage:
    """The gateway's database, with every command it is sent counted in ``commands``;
    shared with other gateways (claims are written), or, with the parameter "sole
    writer", this gateway's alone as the embedded server's is (claims stay in memory)."""
    counted_storage.outbox.sole_writer = getattr(request, "param", "shared") == "sole writer"
    return counted_storage


both_outboxes = pytest.mark.parametrize("storage", ["shared", "sole writer"], indirect=True)


@both_outboxes
async def test_1_a_blocked_channel_does_not_hold_back_another_and_costs_little(
    gateway, telegram_api: FakeBotAPI, commands: CommandCounter
) -> None:
    slow_retries = DeliveryConfig(backoff_seconds=30, max_backoff_seconds=60)
    gw: Gateway = await gateway(telegram(telegram_api), MOCK, delivery=slow_retries)
    chats = await _telegram_chats(gw, list(range(1, 41)))
    telegram_api.down = True  # the Bot API is unreachable
    for _ in range(4):  # 160 replies: more than any one read of the outbox used to take
        await asyncio.gather(*(gw.send(contact, "reply") for contact in chats.values()))

    async def every_chat_tried() -> bool:
        return telegram_api.calls.count("sendMessage") >= 40

    await async_wait_until(every_chat_tried, 20, "one send to each chat to fail")
    mock_reply = await gw.send(await _mock_contact(gw), "for the mock contact")
    assert (await gw.final(mock_reply["id"], within=5))["status"] == "sent"
    # What the gateway asks of the database over three seconds while 160 messages
    # wait on a dead provider: one cheap outbox query per channel a second.
    before = len(commands.commands)
    await asyncio.sleep(3)  # a window to measure a rate over, not a wait for an event
    reads = commands.commands[before:].count(("find", "messages"))
    assert reads <= 2 * 4, f"{reads} outbox reads in 3 s while nothing was due"
    assert telegram_api.calls.count("sendMessage") == 40  # the followers were not tried


@both_outboxes
async def test_2_a_long_flood_wait_never_sends_a_message_twice(
    gateway, telegram_api: FakeBotAPI
) -> None:
    # Claims last a second; the provider asks for a wait of two.
    short_claims = DeliveryConfig(stale_sending_seconds=1, backoff_seconds=0.05)
    gw: Gateway = await gateway(telegram(telegram_api), delivery=short_claims)
    chats = await _telegram_chats(gw, [1, 2])
    telegram_api.send_script = [Fail(429, retry_after=2)]
    first = await gw.send(chats[1], "to one")
    second = await gw.send(chats[2], "to two")
    for message in (first, second):
        assert (await gw.final(message["id"], within=15))["status"] == "sent"
    assert telegram_api.sent_to(1) == ["to one"]
    assert telegram_api.sent_to(2) == ["to two"]
    [refused] = telegram_api.refused
    # The bot waited before its next send (one already under way when the 429 came
    # may land, as on Telegram).
    resent = next(s for s in telegram_api.sent if s.chat_id == refused.chat_id)
    assert resent.at - refused.at >= 2.0
    assert all(s.at - refused.at >= 2.0 or s.at - refused.at < 1.0 for s in telegram_api.sent)


@both_outboxes
async def test_3_a_claim_left_behind_is_taken_back_only_once_it_runs_out(
    gateway, storage: Storage
) -> None:
    channel = await storage.channels.upsert("mock", "mock", "webhook", {})
    contact = await seen(storage, channel.id, "1")
    message, _ = await storage.messages.insert_outbound(contact=contact, content="a", agent=None)
    expires = utcnow() + timedelta(seconds=1.5)
    await storage.messages.collection.update_one(
        {"_id": message.id},
        {"$set": {"status": "sending", "claim": "old", "claimed_by": "gone",
                  "claimed_until": expires, "attempts": 1}},
    )  # fmt: skip
    gw: Gateway = await gateway(MOCK)
    final = await gw.final(message.id)
    assert final["status"] == "sent"
    assert final["updated_at"] >= expires
    assert final.get("claim") != "old"  # the old claim ended; the send had its own
    assert final["attempts"] == 2


async def test_4_one_bad_message_fails_alone_and_the_others_of_its_batch_are_stored(
    gateway, telegram_api: FakeBotAPI, twilio_api: FakeTwilio
) -> None:
    gw: Gateway = await gateway(telegram(telegram_api), whatsapp(twilio_api), MOCK)
    good = [gw.post(URL, json.dumps(make_update(100 + n, 7, f"tg {n}")), SIGNED) for n in range(10)]
    forms = [inbound(sid=f"SM{n}", body=f"wa {n}") for n in range(10)]
    good += [gw.post(PATH, urlencode(form), signed(form)) for form in forms]
    lone_surrogate = json.dumps({"contact_id": "x", "message": "x \ud800"})  # JSON "\ud800"
    answers = await asyncio.gather(*good, gw.post(MOCK_URL, lone_surrogate, JSON))
    assert [status for status, _ in answers] == [200] * 20 + [400]
    assert "message: not valid Unicode text" in json.loads(answers[-1][1])["error"]["message"]
    stored = sorted(m["content"] for m in await gw.messages(direction="in"))
    assert stored == sorted([f"tg {n}" for n in range(10)] + [f"wa {n}" for n in range(10)])


async def test_4_a_document_the_database_refuses_fails_alone(storage: Storage) -> None:
    writer = build_services(TEST_CONFIG, storage).inbound
    record = await storage.channels.upsert("chan", "mock", "webhook", {})
    channel = MockChannel(record, MockSettings(), ChannelContext(""))
    messages = [Inbound(str(n), f"k{n}", f"text {n}") for n in range(5)]
    # Past the channel's check, as a bug might let through: no UTF-8 form.
    object.__setattr__(messages[2], "text", "bad \udc80")
    results = await writer.write(channel, [(m, {}) for m in messages])
    assert [isinstance(r, Exception) for r in results] == [False, False, True, False, False]
    stored = await storage.messages.collection.find().to_list()
    assert sorted(d["content"] for d in stored) == ["text 0", "text 1", "text 3", "text 4"]


async def test_5_a_poller_that_gets_html_logs_it_and_keeps_polling(
    gateway, telegram_api: FakeBotAPI, caplog
) -> None:
    telegram_api.updates_script = ["html", "html"]  # Telegram's front end, having a moment
    telegram_api.user_writes(42, "still there?")
    gw: Gateway = await gateway(telegram(telegram_api, mode="polling", poll_timeout_seconds=1))

    async def stored() -> bool:
        return len(await gw.messages(direction="in")) == 1

    await async_wait_until(stored, 15, "the update after the HTML answers to be stored")
    [message] = await gw.messages(direction="in")
    assert message["content"] == "still there?"
    assert telegram_api.calls.count("getUpdates") >= 3
    assert await _metric(gw, 'gateway_telegram_poll_errors_total{channel="tg"}') == 2
    assert await _metric(gw, 'gateway_telegram_poll_lag_seconds{channel="tg"}') >= 0
    assert any("getUpdates failed" in r.getMessage() for r in caplog.records)


@both_outboxes
async def test_7_flood_waits_are_not_attempts_and_show_in_metrics(
    gateway, telegram_api: FakeBotAPI
) -> None:
    two_attempts = DeliveryConfig(max_attempts=2, backoff_seconds=0.05, max_backoff_seconds=0.1)
    gw: Gateway = await gateway(telegram(telegram_api), delivery=two_attempts)
    chats = await _telegram_chats(gw, [5])
    telegram_api.send_script = [Fail(429, retry_after=1)] * 3
    message = await gw.send(chats[5], "patience")

    async def paused() -> bool:
        return await _metric(gw, 'gateway_channel_paused_seconds{channel="tg"}') > 0

    await async_wait_until(paused, 5, "the flood wait to show in /metrics")
    final = await gw.final(message["id"], within=15)
    assert (final["status"], final["attempts"]) == ("sent", 1)
    assert telegram_api.sent_to(5) == ["patience"]
    assert await _metric(gw, 'gateway_flood_waits_total{channel="tg"}') == 3


async def _metric(gw: Gateway, series: str) -> float:
    value = await gw.anonymous.metric(series)
    assert value is not None, f"{series} is not in /metrics"
    return value


@both_outboxes
async def test_8_a_status_callback_that_overtakes_the_send_keeps_its_news_and_the_sid(
    gateway, twilio_api: FakeTwilio
) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api))
    form = inbound()
    assert (await gw.post(PATH, urlencode(form), signed(form)))[0] == 200
    [contact] = await gw.storage.contacts.collection.find().to_list()
    answers: list[int] = []

    async def delivered_first(request: dict[str, str], sid: str) -> None:
        # Twilio reports "delivered" before our create call has its answer.
        callback = urlsplit(request["StatusCallback"])
        path = callback.path + "?" + callback.query
        assert PUBLIC_URL + path == request["StatusCallback"]
        news = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": form["AccountSid"]}
        answers.append((await gw.post(path, urlencode(news), signed(news, path)))[0])

    twilio_api.before_answer = delivered_first
    message = await gw.send(contact["_id"], "hi")

    async def settled() -> bool:
        stored = await gw.stored(message["id"])
        return stored.status == "delivered" and stored.external_id != ""

    await async_wait_until(settled, 10, "the message to be delivered with its sid")
    [request] = twilio_api.sent
    stored: Any = await gw.stored(message["id"])
    assert (stored.status, stored.external_id, answers) == (
        "delivered",
        request["sid"],
        [200],
    )


async def test_a_worker_that_fails_is_restarted_counted_and_named_by_readyz(
    gateway, caplog
) -> None:
    gw: Gateway = await gateway(MOCK)
    runs: list[float] = []

    async def doomed() -> None:
        runs.append(time.monotonic())
        raise RuntimeError("a bug in a worker")

    gw.services.supervisor.start("doomed", doomed)

    async def named() -> bool:
        status, body = await gw.anonymous.fetch("GET", "/readyz")
        return status == 503 and "doomed" in body["error"]["message"]

    await async_wait_until(named, 20, "/readyz to name the failing worker")
    assert len(runs) >= 2  # restarted, with backoff
    assert await _metric(gw, 'gateway_worker_restarts_total{worker="doomed"}') >= 2
    failures = [r for r in caplog.records if "worker 'doomed' failed" in r.getMessage()]
    assert failures
    assert "a bug in a worker" in (failures[0].exc_text or "")  # with its traceback
    await gw.services.supervisor.stop("doomed")
    assert (await gw.anonymous.fetch("GET", "/readyz"))[0] == 200
