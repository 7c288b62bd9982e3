"""The agents' conversations a sole writer keeps in memory (storage/assigned.py) stay
what the database holds through every write that moves them, and a write whose
outcome is unknown makes it read them again."""

from __future__ import annotations

import pymongo
import pytest
from pymongo.errors import PyMongoError

from storage.assigned import FIELDS, AssignedIndex, Latest, newest_first
from storage.conversations import Arrival
from storage.database import Storage
from storage.messages import inbound_document
from storage.models import Contact, Message, Status, conversation_id
from testkit.helpers import CommandCounter, seen

A, B = "agent-a", "agent-b"


@pytest.fixture
def sole_writer() -> bool:
    return True


async def _truth(storage: Storage, agent: str) -> list[Latest]:
    found = storage.conversations.collection.find({"assignee_id": agent}, projection=FIELDS)
    return newest_first(Latest.of(d) for d in await found.to_list())


async def _arrive(storage: Storage, contact: Contact, text: str, assignee: str | None = None):
    document = inbound_document(
        channel_id=contact.channel_id, contact=contact, dedupe_key=text, content=text
    )
    await storage.messages.insert_inbound_many([document])
    arrival = Arrival(contact, "mock", "mock", Message.of(document), 1, assignee)
    await storage.conversations.arrived([arrival])


async def test_every_write_that_moves_a_conversation_shows_without_a_read(
    counted_storage: Storage, commands: CommandCounter
) -> None:
    storage = counted_storage
    conversations = storage.conversations
    channel = await storage.channels.upsert("mock", "mock", "webhook", {})
    one, two = [await seen(storage, channel.id, str(n), name=f"C{n}") for n in (1, 2)]
    c1, c2 = conversation_id(one.id), conversation_id(two.id)
    assert await conversations.activity_of(A) == await conversations.activity_of(B) == []

    async def check(a: list[str], b: list[str]) -> None:
        commands.commands.clear()
        known = {x: await conversations.activity_of(x) for x in (A, B)}
        assert commands.count("find", "conversations") == 0  # from memory
        for agent, expected in ((A, a), (B, b)):
            assert known[agent] == await _truth(storage, agent)
            assert [conversation_id(latest.contact_id) for latest in known[agent]] == expected

    await _arrive(storage, one, "hello", assignee=A)  # a new contact's, given on arrival
    await check([c1], [])
    await _arrive(storage, two, "hi")
    await conversations.assign([(c2, A)], only_unassigned=True)  # the assigner
    await check([c2, c1], [])
    await conversations.assign([(c2, B)], only_unassigned=True)  # held already: no change
    await check([c2, c1], [])
    await conversations.update(c2, {"assignee_id": B})  # a transfer
    await check([c1], [c2])
    await conversations.release([c1, c2], A)  # A deleted: only A's go back to the queue
    await check([], [c2])
    await _arrive(storage, one, "again", assignee=B)  # nobody held it: B gets it
    await check([], [c1, c2])
    await _arrive(storage, two, "newer")  # the key moves: c2 first again
    await check([], [c2, c1])
    sent, _ = await storage.messages.insert_outbound(contact=two, content="oi", agent=None)
    await conversations.sent([sent])
    await check([], [c2, c1])
    await storage.messages.apply_status(channel.id, sent.id, Status.DELIVERED)
    changed = await storage.messages.get(sent.id)
    assert changed is not None
    await conversations.message_changed([changed])
    await check([], [c2, c1])
    [latest, _] = await conversations.activity_of(B)
    assert (latest.key, latest.shown["status"]) == (sent.id, "delivered")

    # A transfer whose reply never came: done or not, nobody can tell, so both agents'
    # conversations are read again.
    with pytest.raises(PyMongoError), pymongo.timeout(0.000001):
        await conversations.update(c1, {"assignee_id": A})
    commands.commands.clear()
    assert await conversations.activity_of(A) == await _truth(storage, A)
    assert await conversations.activity_of(B) == await _truth(storage, B)
    assert commands.count("find", "conversations") == 4  # two lookups, two truths


async def _looked_up(index: AssignedIndex, *agents: str) -> None:
    async def nothing() -> list[dict]:
        return []

    for agent in agents:
        assert await index.activity_of(agent, nothing) == []


def _document(assignee: str | None, version: int, key: str) -> dict:
    return {"_id": "c", "contact_id": "k", "assignee_id": assignee, "version": version,
            "list_key": key, "last_message": {"id": key}}  # fmt: skip


async def test_a_reply_older_than_what_is_known_keeps_the_assignee_and_the_newer_preview() -> None:
    index = AssignedIndex()
    await _looked_up(index, A, B)

    async def held() -> tuple[list[str], list[str]]:
        async def unread() -> list[dict]:
            raise AssertionError("looked up already")

        lists = [await index.activity_of(x, unread) for x in (A, B)]
        return [latest.key for latest in lists[0]], [latest.key for latest in lists[1]]

    index.put(_document(B, 2, "k1"))  # the transfer's reply came first
    index.put(_document(A, 1, "k2"))  # then an older read's, with a newer message
    assert await held() == ([], ["k2"])
    index.put(_document(None, 3, "k0"))  # released: an older key in it changes nothing
    assert await held() == ([], [])
    index.put(_document(A, 4, "k3"))
    assert await held() == (["k3"], [])
