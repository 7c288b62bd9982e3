"""A provider outage: the Bot API fails for 20 s while agents keep replying.

Nothing else waits for it (the mock channel's replies leave at once), and once it
is back every message is delivered exactly once, in order per chat. The fake Bot
API's log of what it accepted is the evidence.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

from gateway.config import DeliveryConfig
from testkit.fakes.telegram import FakeBotAPI, make_update
from testkit.helpers import async_wait_until
from tests.channels.conftest import MOCK, MOCK_HEADERS, MOCK_URL, Gateway
from tests.channels.test_telegram import SIGNED, URL, telegram

# Enough replies to fill every send slot (32) and the client pool many times over; the
# embedded server records about 35 sends a second in this test, so more only costs time.
CHATS = 100
REPLIES = 5
OUTAGE_SECONDS = 20.0
# Retries every five seconds at most (four times in the outage), never giving up.
PATIENT = DeliveryConfig(backoff_seconds=0.5, max_backoff_seconds=5, max_attempts=100)


async def test_a_bot_api_outage_holds_back_nothing_else_and_loses_nothing(
    gateway, telegram_api: FakeBotAPI
) -> None:
    bot = telegram(telegram_api, messages_per_second=100, seconds_between_messages_to_a_chat=0.2)
    gw: Gateway = await gateway(bot, MOCK, delivery=PATIENT)
    for first in range(1, CHATS + 1, 50):
        updates = [make_update(chat, chat, "hi") for chat in range(first, first + 50)]
        answers = await asyncio.gather(*(gw.post(URL, json.dumps(u), SIGNED) for u in updates))
        assert {status for status, _ in answers} == {200}
    chats = {
        int(c["external_id"]): c["_id"]
        for c in await gw.storage.contacts.collection.find().to_list()
    }
    body = json.dumps({"contact_id": "m", "message": "hello"})
    assert (await gw.post(MOCK_URL, body, MOCK_HEADERS))[0] == 200
    [mock_contact] = await gw.storage.contacts.collection.find({"external_id": "m"}).to_list()

    # The outage: first every call answers 502, then connections are refused.
    outage_began = time.monotonic()
    telegram_api.failing = True

    async def mock_reply(n: int) -> None:
        # Sent while the Bot API is still down (the outage lasts until the test ends
        # it): a mock reply waits for no Telegram message.
        message = await gw.send(mock_contact["_id"], f"mock {n}")
        assert (await gw.final(message["id"], within=30))["status"] == "sent"

    # As many at once as the client has connections (10): a request's timeout then
    # counts its own time, not its wait in the client's queue on a busy machine.
    at_once = asyncio.Semaphore(10)

    async def send(contact_id: str, text: str) -> None:
        async with at_once:
            await gw.send(contact_id, text)

    for reply in range(REPLIES):  # each round after the last: order per chat is known
        await asyncio.gather(*(send(cid, f"{chat}:{reply}") for chat, cid in chats.items()))
        await mock_reply(reply)
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS / 2 - (time.monotonic() - outage_began)))
    await telegram_api.refuse()  # before failing ends: no call may slip through between
    telegram_api.failing = False
    await mock_reply(REPLIES)
    # Holding the fault for its full length (not waiting for an event).
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_began)))
    assert telegram_api.sent == []

    telegram_api.resume()

    async def all_delivered() -> bool:
        return len(telegram_api.sent) >= CHATS * REPLIES

    await async_wait_until(all_delivered, 120, "every message to be delivered after the outage")
    received: dict[int, list[str]] = defaultdict(list)
    for sent in telegram_api.sent:
        received[sent.chat_id].append(sent.text)
    expected = {chat: [f"{chat}:{r}" for r in range(REPLIES)] for chat in chats}
    assert dict(received) == expected  # each exactly once, in order per chat

    async def all_recorded() -> bool:
        out = await gw.storage.messages.collection.count_documents(
            {"direction": "out", "status": "sent", "contact_id": {"$in": list(chats.values())}}
        )
        return out == CHATS * REPLIES

    await async_wait_until(all_recorded, 30, "every send to be recorded")
