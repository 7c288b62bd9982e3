"""Indexes, the TTL expiry of messages and the repositories' write rules."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest

from storage.contacts import Sighting, contact_id
from storage.database import Storage
from storage.errors import DuplicateKey
from storage.messages import inbound_document
from storage.models import AgentRef, Contact, Direction, Status
from storage.records import EXPIRY_INDEX, TTL_INDEX, utcnow
from testkit.helpers import RETENTION_SECONDS, async_wait_until, received, seen


async def _indexes(storage: Storage, collection: str) -> dict:
    return await storage.db[collection].index_information()


async def test_every_designed_index_exists(storage: Storage) -> None:
    messages = await _indexes(storage, "messages")
    assert messages["list_key"]["key"] == [("list_key", 1)]
    assert messages["contact_key"]["key"] == [("contact_id", 1), ("list_key", 1)]
    assert messages["agent_key"]["key"] == [("agent_id", 1), ("list_key", 1)]
    assert messages["outbound_idempotency"]["key"] == [("agent_id", 1), ("idempotency_key", 1)]
    assert messages["outbound_idempotency"]["unique"] is True
    assert messages["inbound_dedupe"]["key"] == [("channel_id", 1), ("dedupe_key", 1)]
    assert messages["inbound_dedupe"]["unique"] is True
    outbox = [("channel_id", 1), ("status", 1), ("list_key", 1)]
    assert messages["channel_outbox"]["key"] == outbox
    assert "outbox" not in messages  # an earlier version's: dropped
    if storage.server_expires:
        assert messages[TTL_INDEX]["key"] == [("created_at", 1)]
    else:  # expired through list_key, the time it was made: no index more to write
        assert EXPIRY_INDEX not in messages
        assert EXPIRY_INDEX not in await _indexes(storage, "events")


async def test_the_outbox_reads_go_through_the_outbox_index(storage: Storage) -> None:
    # Once a second for what other gateways queued: it must not scan the messages.
    recent = {"channel_id": "c", "status": "queued", "list_key": {"$gte": "0"}}
    plan = (await storage.messages.collection.find(recent).explain())["queryPlanner"]
    assert plan["winningPlan"]["inputStage"]["indexName"] == "channel_outbox"

    agents = await _indexes(storage, "agents")
    assert agents["username_unique"]["unique"] is True
    channels = await _indexes(storage, "channels")
    assert channels["name_unique"]["unique"] is True
    assert (await _indexes(storage, "revoked_tokens"))["expires_at_ttl"]["expireAfterSeconds"] == 0
    contacts = await _indexes(storage, "contacts")
    assert contacts["channel_list_key"]["key"] == [("channel_id", 1), ("list_key", 1)]
    assert contacts["channel_external_unique"]["key"] == [("channel_id", 1), ("external_id", 1)]
    assert contacts["channel_external_unique"]["unique"] is True


async def test_messages_expire_after_exactly_the_retention(storage: Storage) -> None:
    indexes = await _indexes(storage, "messages")
    if storage.server_expires:  # MongoDB: a TTL index
        assert indexes[TTL_INDEX]["expireAfterSeconds"] == RETENTION_SECONDS == 2_592_000
    else:  # the embedded server: no TTL index for it to scan the collection by
        assert TTL_INDEX not in indexes
        assert storage.messages.retention_seconds == RETENTION_SECONDS
        # A data dir from an earlier version has the TTL index, or the plain one on
        # created_at: the next start drops them.
        for name, ttl in (
            (TTL_INDEX, {"expireAfterSeconds": RETENTION_SECONDS}),
            (EXPIRY_INDEX, {}),
        ):
            await storage.messages.collection.create_index([("created_at", 1)], name=name, **ttl)
            await storage.ensure_indexes(RETENTION_SECONDS)
            assert name not in await _indexes(storage, "messages")


async def _backdated(storage: Storage, contact: Contact, at: datetime) -> str:
    """A message stored as if it had come at ``at``: its created_at and its ids (the
    time the embedded server expires it by) both that old."""
    document = inbound_document(
        channel_id=contact.channel_id, contact=contact, dedupe_key=f"old-{at}", content="old", at=at
    )
    [created] = await storage.messages.insert_inbound_many([document])
    assert created is True
    return str(document["_id"])


async def test_changed_retention_applies_at_the_next_start(storage: Storage) -> None:
    contact = await seen(storage, "chan", "42")
    message_id = await _backdated(storage, contact, utcnow() - timedelta(days=8))
    await storage.ensure_indexes(7 * 86400)
    await storage.ensure_indexes(7 * 86400)  # idempotent when nothing changed
    if storage.server_expires:
        assert (await _indexes(storage, "messages"))[TTL_INDEX]["expireAfterSeconds"] == 604_800
    else:
        assert await storage.sweep_expired() == 1
        assert await storage.messages.get(message_id) is None


async def test_an_expired_message_really_disappears(storage: Storage, uses_embedded) -> None:
    contact = await seen(storage, "chan", "42", name="Ana")
    # One message from past the 30-day retention; MongoDB's TTL monitor removes it.
    old = await _backdated(storage, contact, utcnow() - timedelta(seconds=RETENTION_SECONDS + 60))
    fresh, _ = await received(storage, contact, "u2", "fresh")

    async def expired() -> bool:
        if uses_embedded:
            await storage.sweep_expired()  # one pass now instead of in 60 s
        return await storage.messages.get(old) is None

    # A real mongod's TTL monitor runs every 60 s.
    await async_wait_until(expired, 10 if uses_embedded else 120, "the TTL monitor")
    assert await storage.messages.get(fresh) is not None


async def test_an_upload_expires_with_the_messages_file_and_chunks_alike(
    storage: Storage, uses_embedded
) -> None:
    for collection in ("uploads", "upload_chunks"):  # the messages' retention, both
        expiry = (await _indexes(storage, collection))[
            TTL_INDEX if storage.server_expires else EXPIRY_INDEX
        ]
        assert expiry.get("expireAfterSeconds") == (
            RETENTION_SECONDS if storage.server_expires else None
        )
    old = await storage.uploads.put(b"x" * 600_000, "application/pdf", "old.pdf")  # 3 chunks
    fresh = await storage.uploads.put(b"fresh", "text/plain", "fresh.txt")
    past = utcnow() - timedelta(seconds=RETENTION_SECONDS + 60)
    for collection, key in ((storage.uploads.files, "_id"), (storage.uploads.chunks, "file_id")):
        await collection.update_many({key: old.id}, {"$set": {"created_at": past}})

    async def expired() -> bool:
        if uses_embedded:
            await storage.sweep_expired()
        left = await storage.uploads.chunks.count_documents({"file_id": old.id})
        return await storage.uploads.get(old.id) is None and left == 0

    await async_wait_until(expired, 10 if uses_embedded else 120, "the upload to expire")
    kept = await storage.uploads.get(fresh.id)
    assert kept is not None
    assert [chunk async for chunk in storage.uploads.chunks_of(kept)] == [b"fresh"]


async def test_inbound_duplicate_is_acknowledged_not_stored_twice(storage: Storage) -> None:
    contact = await seen(storage, "chan", "42")
    first, created = await received(storage, contact, "update-7", "hi")
    again, created_again = await received(storage, contact, "update-7", "hi")
    assert (created, created_again) == (True, False)
    assert again == first
    # The same provider id on another channel is another message.
    _, other = await received(storage, contact, "update-7", "hi", channel_id="chan-2")
    assert other is True
    assert await storage.messages.collection.count_documents({}) == 2


async def test_a_batch_stores_each_message_once_and_reports_repeats(storage: Storage) -> None:
    contact = await seen(storage, "chan", "42")
    await received(storage, contact, "u1", "stored before")
    documents = [
        inbound_document(channel_id="chan", contact=contact, dedupe_key=key, content=key)
        for key in ("u1", "u2", "u2", "u3")
    ]
    created = await storage.messages.insert_inbound_many(documents)
    assert created == [False, True, False, True]  # repeats of earlier, and of the batch
    assert await storage.messages.collection.count_documents({}) == 3


async def test_outbound_messages_do_not_collide_on_the_dedupe_index(storage: Storage) -> None:
    contact = await seen(storage, "chan", "42")
    agent = await storage.agents.create("ana", "hash")
    for text in ("one", "two"):
        message, created = await storage.messages.insert_outbound(
            contact=contact, content=text, agent=agent.ref
        )
        assert created
        assert (message.status, message.direction) == (Status.QUEUED, Direction.OUT)
        assert message.agent == AgentRef(agent.id, "ana")
    assert await storage.messages.collection.count_documents({"direction": "out"}) == 2


async def test_contact_id_is_derived_and_profile_follows_renames(storage: Storage) -> None:
    first = await seen(storage, "chan", "42", name="Ana", username="ana")
    renamed = await seen(storage, "chan", "42", name="Ana Maria", username="ana")
    assert first.id == renamed.id == contact_id("chan", "42")
    assert contact_id("other", "42") != first.id
    stored = await storage.contacts.get(first.id)
    assert stored is not None
    assert (stored.name, stored.external_id) == ("Ana Maria", "42")


async def test_one_bulk_write_records_each_contact_once_with_its_latest_profile(
    storage: Storage,
) -> None:
    sightings = [
        Sighting("chan", "1", "Ana"),
        Sighting("chan", "2", "Bo"),
        Sighting("chan", "1", "Ana M"),
    ]
    stored = await storage.contacts.record_seen_many(sightings)
    assert sorted(c.name for c in stored.values()) == ["Ana M", "Bo"]
    assert await storage.contacts.collection.count_documents({}) == 2


async def test_contacts_believed_new_are_inserted_and_those_that_existed_refreshed(
    storage: Storage,
) -> None:
    # After a restart the writer knows no contact: every one is "unknown" once.
    earlier = utcnow() - timedelta(hours=2)
    [old] = (
        await storage.contacts.record_seen_many([Sighting("chan", "1", "Ana")], earlier)
    ).values()
    sightings = [Sighting("chan", "1", "Ana M", "ana"), Sighting("chan", "2", "Bo")]
    unknown = frozenset(s.contact_id for s in sightings)
    stored = await storage.contacts.record_seen_many(sightings, unknown=unknown)
    for contact in stored.values():
        assert await storage.contacts.get(contact.id) == contact  # as written, no read
    ana, bo = stored[old.id], stored[sightings[1].contact_id]
    assert (ana.name, ana.username, ana.created_at) == ("Ana M", "ana", old.created_at)
    assert (ana.last_message_at or earlier) > earlier
    assert (bo.name, bo.username) == ("Bo", "")
    assert await storage.contacts.collection.count_documents({}) == 2


async def test_last_message_at_never_moves_backwards(storage: Storage) -> None:
    now = utcnow()
    contact = await seen(storage, "chan", "1", at=now)
    await seen(storage, "chan", "1", at=now - timedelta(hours=1))
    stored = await storage.contacts.get(contact.id)
    assert stored is not None
    assert stored.last_message_at == now


async def test_duplicate_username_is_refused(storage: Storage) -> None:
    await storage.agents.create("ana", "hash")
    with pytest.raises(DuplicateKey):
        await storage.agents.create("ana", "hash")


async def test_channel_upsert_keeps_its_id(storage: Storage) -> None:
    created = await storage.channels.upsert("support-bot", "telegram", "polling", {"a": 1})
    updated = await storage.channels.upsert("support-bot", "telegram", "webhook", {"a": 2})
    assert updated.id == created.id
    assert (updated.mode, updated.settings) == ("webhook", {"a": 2})
    assert await storage.channels.get(created.id) == updated


async def test_gateways_starting_at_once_record_one_channel(mongo_uri: str) -> None:
    # Gateways on one database upsert the same channel as they start: one inserts,
    # every other must get that very record back, never nothing (a gateway of the
    # cluster test once crashed on a None here).
    database = f"test_{uuid.uuid4().hex[:16]}"
    stores = [Storage.connect(mongo_uri, database) for _ in range(4)]

    async def start(store: Storage) -> list[dict]:  # what each gateway does first
        await store.ensure_indexes(RETENTION_SECONDS)
        upserts = (store.channels.upsert("shared-bot", "telegram", "polling", {}) for _ in range(5))
        return await asyncio.gather(*upserts)

    try:
        records = [r for rs in await asyncio.gather(*map(start, stores)) for r in rs]
        assert all(r is not None for r in records)
        assert len({r.id for r in records}) == 1
        assert len({r.webhook_secret for r in records}) == 1
        assert await stores[0].channels.collection.count_documents({"name": "shared-bot"}) == 1
    finally:
        await stores[0].client.drop_database(database)
        for store in stores:
            await store.close()
