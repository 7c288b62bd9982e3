"""The inbound pipeline's durability, and the dispatcher's takeover (assignment:
test_conversations.py)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from storage.database import Storage
from storage.models import Message
from storage.records import utcnow
from testkit.helpers import free_port, seen
from tests.channels.conftest import MOCK, MOCK_HEADERS, MOCK_URL, Gateway

URL, JSON = MOCK_URL, MOCK_HEADERS


async def _write(gw: Gateway, contact: int, text: str = "hi") -> int:
    body = json.dumps({"contact_id": contact, "message": text})
    return (await gw.post(URL, body, JSON))[0]


async def test_concurrent_webhooks_share_bulk_writes_and_each_is_stored_once(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    messages = gw.services.inbound.storage.messages
    batches: list[int] = []
    insert_many = messages.insert_inbound_many

    async def counting(documents):  # the real write, counted
        batches.append(len(documents))
        return await insert_many(documents)

    messages.insert_inbound_many = counting  # type: ignore[method-assign]
    bodies = [
        json.dumps({"contact_id": n % 5, "message": f"m{n}", "message_id": n}) for n in range(30)
    ]
    bodies += bodies[:6]  # provider retries that arrive together with the originals
    answers = await asyncio.gather(*(gw.post(URL, body, JSON) for body in bodies))
    assert [status for status, _ in answers] == [200] * 36
    assert sum(batches) == 36
    assert len(batches) < 36  # webhooks that arrived together were written together
    stored = await gw.messages(direction="in")
    assert sorted(m["content"] for m in stored) == sorted(f"m{n}" for n in range(30))
    for contact in range(5):  # one contact each, whatever the batch they arrived in
        mine = [m["content"] for m in stored if m["contact"]["external_id"] == str(contact)]
        assert len(mine) == 6


async def test_a_reply_to_a_contact_who_just_wrote_needs_no_contact_read(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    assert await _write(gw, 7) == 200
    [inbound] = await gw.messages()
    contacts = gw.services.storage.contacts
    reads: list[str] = []
    get = contacts.get

    async def counting(contact_id: str):  # the real read, counted
        reads.append(contact_id)
        return await get(contact_id)

    contacts.get = counting  # type: ignore[method-assign]
    sent = await gw.send(inbound["contact_id"], "hello")
    assert reads == []
    assert sent["contact"] == inbound["contact"]
    assert (await gw.final(sent["id"]))["status"] == "sent"


async def test_a_webhook_is_503_when_the_database_is_down_and_nothing_is_acknowledged(
    gateway,
) -> None:
    gw: Gateway = await gateway(MOCK)
    down = Storage.connect(
        f"mongodb://127.0.0.1:{free_port()}/?directConnection=true&serverSelectionTimeoutMS=300",
        "x",
    )
    real, gw.services.storage = gw.services.storage, down
    gw.services.inbound.storage = down
    try:
        status, body = await gw.post(URL, json.dumps({"contact_id": 1, "message": "hi"}), JSON)
    finally:
        gw.services.storage = gw.services.inbound.storage = real
        await down.close()
    assert status == 503
    assert json.loads(body)["error"]["code"] == "unavailable"
    assert await gw.messages() == []


async def _unsent_before_start(storage: Storage, *contents: str) -> list[Message]:
    """Messages to a mock contact, queued before the gateway starts (by an earlier run)."""
    channel = await storage.channels.upsert("mock", "mock", "webhook", {})
    contact = await seen(storage, channel.id, "1")
    return [
        (await storage.messages.insert_outbound(contact=contact, content=text, agent=None))[0]
        for text in contents
    ]


async def test_a_stopped_process_claims_are_put_back_once_they_expire_and_sent_once(
    gateway, storage: Storage
) -> None:
    # Another process claimed the first of two messages and stopped; its claim runs
    # out in a second. Until then the contact's second message waits behind it.
    first, second = await _unsent_before_start(storage, "a", "b")
    expires = utcnow() + timedelta(seconds=1)
    claim = {"status": "sending", "claim": "t", "claimed_by": "gone", "claimed_until": expires}
    await storage.messages.collection.update_one(
        {"_id": first.id}, {"$set": {**claim, "attempts": 1}}
    )
    gw: Gateway = await gateway(MOCK)
    final = [await gw.final(m.id) for m in (first, second)]
    assert [m["status"] for m in final] == ["sent", "sent"]
    assert final[0]["updated_at"] >= expires  # not before the claim ran out
    assert final[0]["updated_at"] <= final[1]["updated_at"]  # and in order
    assert [m["attempts"] for m in final] == [2, 1]
