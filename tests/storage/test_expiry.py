"""The sweep on a real server: thousands of expired messages go in small deletes,
newer ones and other collections' documents stay, and the next sweep starts where
this one ended."""

from __future__ import annotations

from datetime import timedelta

from storage.database import Storage
from storage.expiry import TARGET
from storage.messages import inbound_document
from storage.records import utcnow
from testkit.helpers import received, seen

RETENTION = 30 * 86400


async def test_thousands_of_expired_messages_go_in_small_deletes(storage: Storage) -> None:
    if storage.server_expires:
        return  # MongoDB's TTL monitor deletes them (tests/storage/test_indexes.py)
    contact = await seen(storage, "chan", "42")
    newest = utcnow() - timedelta(seconds=RETENTION + 60)
    expired = [
        inbound_document(
            channel_id="chan", contact=contact, dedupe_key=f"old-{n}", content="old",
            at=newest - timedelta(milliseconds=500 * n),  # two a second, for 50 minutes
        )
        for n in range(6_000)
    ]  # fmt: skip
    for start in range(0, len(expired), 1_000):
        await storage.messages.collection.insert_many(expired[start : start + 1_000])
    fresh, _ = await received(storage, contact, "new", "still here")
    storage.expiry.pause = 0  # no requests to let through here

    assert await storage.sweep_expired() == 6_000
    assert await storage.messages.collection.count_documents({}) == 1
    assert await storage.messages.get(fresh) is not None
    assert storage.expiry.largest <= 4 * TARGET  # no delete held the server for long
    assert storage.expiry.pending["messages.list_key"] == 0
    assert await storage.sweep_expired() == 0  # from its mark: nothing new expired
