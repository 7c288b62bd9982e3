"""A conversation's one write per inbound batch: created or reopened, unread counted,
the newest message previewed whatever order batches land in, and outside text kept
as text."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from storage.contacts import Sighting
from storage.conversations import Arrival
from storage.database import Storage
from storage.messages import inbound_document
from storage.models import Contact, ConversationStatus, Message, conversation_id
from storage.records import utcnow


def _arrival(contact: Contact, text: str, ago: float = 0.0) -> Arrival:
    at = utcnow() - timedelta(seconds=ago)
    document = inbound_document(
        channel_id=contact.channel_id, contact=contact, dedupe_key=f"{text}-{ago}",
        content=text, at=at,
    )  # fmt: skip
    return Arrival(contact, "mock", "mock", Message.of(document), 1)


async def _key(storage: Storage, conversation_id: str) -> str:
    """What lists sort the conversation by: its newest message's id."""
    stored = await storage.conversations.collection.find_one({"_id": conversation_id})
    return stored["list_key"]


async def test_an_older_batch_landing_late_counts_but_keeps_the_newer_preview(
    storage: Storage,
) -> None:
    sighting = Sighting("channel-1", "42", "$name", "$$ROOT")  # looks like expressions
    contact = (await storage.contacts.record_seen_many([sighting]))[sighting.contact_id]
    repo = storage.conversations
    [first] = await repo.arrived([_arrival(contact, "$last_message")])
    assert (first.status, first.assignee_id) == (ConversationStatus.OPEN, None)
    assert (first.inbound_count, first.last_message.content) == (1, "$last_message")
    assert (first.contact.name, first.channel.name) == ("$name", "mock")

    await repo.assign([(first.id, "agent-1")], only_unassigned=True)
    await repo.update(first.id, {"status": ConversationStatus.RESOLVED.value})
    older = _arrival(contact, "written before, landed after", ago=60)
    [late] = await repo.arrived([older])
    assert late.inbound_count == 2
    assert late.last_message.content == "$last_message"  # still the newest's
    assert late.status is ConversationStatus.RESOLVED  # an old message reopens nothing
    assert (late.assignee_id, late.created_at) == ("agent-1", first.created_at)
    assert late.last_message_at == first.last_message_at
    assert await _key(storage, late.id) == first.last_message.id

    newer = _arrival(contact, "$$NOW again")
    [reopened] = await repo.arrived([newer])
    assert reopened.status is ConversationStatus.OPEN
    assert (reopened.inbound_count, reopened.last_message.content) == (3, "$$NOW again")
    assert await _key(storage, reopened.id) == reopened.last_message.id == newer.newest.id
    assert reopened.last_message_at == newer.newest.created_at
    assert reopened.assignee_id == "agent-1"  # an assignee is kept


async def test_gateways_recording_a_new_conversation_at_once_count_both(
    storage: Storage, mongo_uri: str
) -> None:
    # The same new contact's first messages, handed to two gateways at the same time
    # (a provider's retry through a load balancer): one creates the conversation, the
    # other's upsert may lose that race; both messages count.
    others = [Storage.connect(mongo_uri, storage.db.name) for _ in range(3)]
    try:
        sighting = Sighting("channel-1", "7", "Race")
        contact = (await storage.contacts.record_seen_many([sighting]))[sighting.contact_id]
        arrivals = [_arrival(contact, f"from gateway {n}", ago=n) for n in range(4)]
        stores = [storage, *others]
        await asyncio.gather(
            *(s.conversations.arrived([a]) for s, a in zip(stores, arrivals, strict=True))
        )
        [conversation] = await storage.conversations.get_many([conversation_id(contact.id)])
        assert conversation.inbound_count == 4
        assert conversation.last_message.content == "from gateway 0"  # the newest
    finally:
        for other in others:
            await other.close()
