"""The inbound pipeline's assignment and durability, and the dispatcher's takeover."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from gateway.config import ChannelConfig, DeliveryConfig
from storage.database import Storage
from storage.records import utcnow
from tests.channels.conftest import Gateway
from tests.helpers import async_wait_until, free_port, sign_up

MOCK = ChannelConfig(name="mock", type="mock")
URL = "/webhooks/mock/mock/"
JSON = {"Content-Type": "application/json"}


async def _write(gw: Gateway, contact: int, text: str = "hi") -> int:
    body = json.dumps({"contact_id": contact, "message": text})
    return (await gw.post(URL, body, JSON))[0]


async def _assigned(gw: Gateway) -> dict[str, str | None]:
    contacts = await gw.storage.contacts.collection.find().to_list()
    agents = {a["_id"]: a["username"] for a in await gw.storage.agents.collection.find().to_list()}
    return {c["external_id"]: agents.get(c["assigned_agent_id"]) for c in contacts}


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


async def test_conversations_go_to_the_least_recently_assigned_available_agent(gateway) -> None:
    gw: Gateway = await gateway(MOCK)  # ana exists
    bob = await sign_up(gw.agent, "bob")
    carla = await sign_up(gw.agent, "carla")
    _, me = await carla.fetch("GET", "/api/v1/agents/")
    carla_id = next(a["id"] for a in me["results"] if a["username"] == "carla")
    await carla.fetch("PATCH", f"/api/v1/agents/{carla_id}/", json_body={"is_available": False})
    assert bob.token
    for contact in (1, 2, 3):
        assert await _write(gw, contact) == 200
    # Round robin among the available (ana, bob); carla is away.
    assignments = await _assigned(gw)
    assert sorted(a for a in assignments.values() if a) == ["ana", "ana", "bob"]
    assert assignments["1"] != assignments["2"]
    # A contact keeps its agent for the next messages.
    before = await _assigned(gw)
    for contact in (1, 2, 3):
        await _write(gw, contact, "again")
    assert await _assigned(gw) == before


async def test_with_nobody_available_the_contact_waits_unassigned(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    _, page = await gw.agent.fetch("GET", "/api/v1/agents/")
    await gw.agent.fetch(
        "PATCH", f"/api/v1/agents/{page['results'][0]['id']}/", json_body={"is_available": False}
    )
    assert await _write(gw, 1) == 200
    assert await _assigned(gw) == {"1": None}


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


async def test_a_dead_process_sends_are_taken_over_without_sending_twice(gateway) -> None:
    gw: Gateway = await gateway(MOCK, delivery=DeliveryConfig(stale_sending_seconds=0.5))
    await _write(gw, 1)
    [inbound] = await gw.messages()
    contact = await gw.storage.contacts.get(inbound["contact_id"])
    agent = await gw.storage.agents.get_by_username("ana")
    messages = gw.storage.messages
    # Two messages another process claimed, then died: one after the provider took it.
    delivered, _ = await messages.insert_outbound(contact=contact, content="a", agent=agent)
    lost, _ = await messages.insert_outbound(contact=contact, content="b", agent=agent)
    long_ago = utcnow() - timedelta(minutes=5)
    for message, external_id in ((delivered, "mock-provider-id"), (lost, "")):
        await messages.collection.update_one(
            {"_id": message["id"]},
            {
                "$set": {
                    "status": "sending",
                    "claimed_by": "dead-process",
                    "claimed_at": long_ago,
                    "external_id": external_id,
                    "attempts": 1,
                }
            },
        )
    gw.services.outbox_changed()

    async def both_sent() -> bool:
        statuses = [(await messages.get(m["id"]))["status"] for m in (delivered, lost)]
        return statuses == ["sent", "sent"]

    await async_wait_until(both_sent, 10, "the stale sends to be taken over")
    # The one the provider had is not sent again; the other is sent once more.
    assert (await messages.get(delivered["id"]))["attempts"] == 1
    resent = await messages.get(lost["id"])
    assert (resent["attempts"], resent["external_id"].startswith("mock-")) == (2, True)
