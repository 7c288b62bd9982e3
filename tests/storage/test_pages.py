"""Keyset pages over UUIDv7 keys, with and without the embedded server's windows."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest

from storage.database import Storage
from storage.pages import KEY, PageReader, ReadPlan
from storage.records import key_floor, key_millis, millis, new_id, utcnow
from testkit.helpers import CommandCounter, received, seen


def test_ids_are_uuid7_and_sort_by_creation_time() -> None:
    now = utcnow()
    offsets = random.sample(range(10**9), 200)  # distinct milliseconds
    times = [now - timedelta(milliseconds=offset) for offset in offsets]
    ids = [new_id(t) for t in times]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert [key_millis(i) for i in ids] == [millis(t) for t in times]
    assert sorted(ids) == [i for _, i in sorted(zip(times, ids, strict=True))]
    for t, i in zip(times, ids, strict=True):
        assert key_floor(millis(t)) < i < key_floor(millis(t) + 1)


@pytest.fixture
async def sparse(storage: Storage) -> list[str]:
    """Messages in bursts with quiet days between them, newest first."""
    now = utcnow()
    created = [
        now - timedelta(days=day, seconds=second)
        for day in (0, 1, 2, 9, 10, 25)
        for second in range(0, 7 * (day + 1), day + 1)
    ]
    keys = [new_id(at) for at in created]
    documents = [
        {"_id": key, "list_key": key, "contact_id": "k", "created_at": at}
        for key, at in zip(keys, created, strict=True)
    ]
    await storage.messages.collection.insert_many(documents)
    return [d["_id"] for d in sorted(documents, key=lambda d: d["_id"], reverse=True)]


def _id(document: dict) -> str:
    return document["_id"]


@pytest.mark.parametrize("windowed", [True, False])
@pytest.mark.parametrize("page_size", [1, 5, 7, 100])
async def test_pages_return_everything_once_in_order(
    storage: Storage, sparse: list[str], windowed: bool, page_size: int
) -> None:
    reader = PageReader()
    reader.windowed = windowed
    seen: list[str] = []
    after = None
    while True:
        page = await reader.fetch(
            storage.messages.collection, _id, {"contact_id": "k"}, after, page_size
        )
        assert len(page.items) <= page_size
        seen += page.items
        if page.next is None:
            break
        after = page.next
    assert seen == sparse


@pytest.mark.parametrize("windowed", [True, False])
async def test_time_bounds_are_exact(storage: Storage, sparse: list[str], windowed: bool) -> None:
    documents = await storage.messages.collection.find().to_list()
    created = sorted({d["created_at"] for d in documents})
    newer_than, older_than = created[5], created[-5]
    expected = [
        d["_id"]
        for d in sorted(documents, key=lambda d: d["_id"], reverse=True)
        if newer_than < d["created_at"] < older_than
    ]
    reader = PageReader()
    reader.windowed = windowed
    seen, after = [], None
    while True:
        page = await reader.fetch(
            storage.messages.collection,
            _id,
            {},
            after,
            4,
            ReadPlan(newer_than=newer_than, older_than=older_than),
        )
        seen += page.items
        if page.next is None:
            break
        after = page.next
    assert seen == expected


class Finds(CommandCounter):
    @property
    def filters(self) -> list[dict]:
        """The filter of every find on the messages since ``clear``."""
        return [f["filter"] for f in self.finds if f["find"] == "messages"]

    def clear(self) -> None:
        self.finds.clear()


@pytest.fixture
def commands() -> Finds:  # what counted_storage reports to, here
    return Finds()


async def test_a_common_filter_seen_first_reads_two_windows_not_all_its_matches(
    counted_storage: Storage, commands: Finds
) -> None:
    # One message a minute for 33 hours, every fifth one read: a window sized from
    # the unfiltered density holds too few of them, and a lookup of `status` would
    # read all 400 (at 200,000 messages that was 36,000 and a 503).
    finds, storage = commands, counted_storage
    now = utcnow()
    documents = []
    for i in range(2000):
        key = new_id(now - timedelta(minutes=i, seconds=random.uniform(0, 30)))
        documents.append({"_id": key, KEY: key, "status": "sent" if i % 5 else "read"})
    await storage.messages.collection.insert_many(documents)
    reader = PageReader()
    reader.windowed = True
    collection, horizon = storage.messages.collection, now - timedelta(days=30)
    await reader.fetch(collection, _id, {}, None, 5, ReadPlan(horizon=horizon))  # the density
    expected = sorted((d["_id"] for d in documents if d["status"] == "read"), reverse=True)

    seen, after, pages = [], None, 0
    read = {"status": "read"}
    while True:
        finds.clear()
        plan = ReadPlan(lead="status", horizon=horizon)
        page = await reader.fetch(collection, _id, read, after, 5, plan)
        # Full pages but the last, each read in one or two windows; the last one's
        # second window finds the matches end, and the rest is looked up below it.
        assert len(finds.filters) <= (2 if page.next else 3)
        assert len(page.items) == 5 or page.next is None
        if pages == 0:
            assert page.items == expected[:5]
            assert all("$gte" in f.get(KEY, {}) for f in finds.filters)  # windows only
        seen += page.items
        pages += 1
        if page.next is None:
            break
        after = page.next
    assert seen == expected  # each once, in order, through to the last


# -- where the newest documents are (storage/newest.py) ---------------------------


async def _quiet_for_two_hours(storage: Storage, count: int = 300) -> list[dict]:
    """``count`` messages a second apart, the newest two hours old: longer ago than a
    first window reaches back from now; every fifth one read."""
    start = utcnow() - timedelta(hours=2)
    documents = []
    for i in range(count):
        key = new_id(start - timedelta(seconds=i))
        documents.append({"_id": key, KEY: key, "status": "sent" if i % 5 else "read"})
    await storage.messages.collection.insert_many(documents)
    return documents


async def _tracking(storage: Storage) -> PageReader:
    reader = PageReader()
    reader.windowed = True
    await reader.newest.track(storage.messages.collection, stable=True)
    return reader


def _newest(documents: list[dict], **query: str) -> list[str]:
    matches = (d["_id"] for d in documents if all(d[k] == v for k, v in query.items()))
    return sorted(matches, reverse=True)


async def _first_page(reader: PageReader, storage: Storage, finds: Finds, **query: str) -> list:
    finds.clear()
    horizon = utcnow() - timedelta(days=30)
    lead = "status" if query else None
    plan = ReadPlan(lead=lead, horizon=horizon)
    page = await reader.fetch(storage.messages.collection, _id, query, None, 20, plan)
    assert all("$gte" in f.get(KEY, {}) for f in finds.filters), finds.filters  # windows only
    return page.items


async def test_a_first_page_of_a_quiet_collection_reads_a_window_at_its_newest_key(
    counted_storage: Storage, commands: Finds
) -> None:
    # Its first window, measured back from now, held nothing, and the page then read
    # every message (at 200,000 of them: a 503, and the requests behind it too).
    storage, finds = counted_storage, commands
    documents = await _quiet_for_two_hours(storage)
    await storage.db["newest_keys"].delete_many({})  # a database from before the marker
    reader = await _tracking(storage)  # finds the newest keys once

    assert await _first_page(reader, storage, finds) == _newest(documents)[:20]
    assert len(finds.filters) == 1  # the newest keys say where a page lies
    assert (
        await _first_page(reader, storage, finds, status="read")
        == _newest(documents, status="read")[:20]
    )
    assert len(finds.filters) <= 2


async def test_a_restarted_reader_knows_the_newest_keys_without_looking_for_them(
    counted_storage: Storage, commands: Finds
) -> None:
    storage, finds = counted_storage, commands
    writer = await _tracking(storage)
    documents = await _quiet_for_two_hours(storage)
    writer.newest.wrote("messages", [d[KEY] for d in documents])
    await writer.newest.flush()  # the gateway stopped

    finds.commands.clear()
    restarted = await _tracking(storage)
    assert finds.count("find", "messages") == 0  # the saved marker, one small document
    assert await _first_page(restarted, storage, finds) == _newest(documents)[:20]
    assert len(finds.filters) == 1


async def test_newest_keys_that_are_wrong_still_give_every_message_once(storage: Storage) -> None:
    # Another gateway wrote newer messages this one was never told of, and the newest
    # it knows were deleted since: the keys are a hint, the pages stay exact.
    reader = await _tracking(storage)
    documents = await _quiet_for_two_hours(storage)
    reader.newest.wrote("messages", [d[KEY] for d in documents])
    known = _newest(documents)
    await storage.messages.collection.delete_many({"_id": {"$in": known[:30]}})
    others = [{"_id": k, KEY: k, "status": "sent"} for k in (new_id() for _ in range(7))]
    await storage.messages.collection.insert_many(others)
    alive = [d for d in documents if d["_id"] not in known[:30]] + others

    seen, after = [], None
    while True:
        page = await reader.fetch(storage.messages.collection, _id, {}, after, 20)
        seen += page.items
        if page.next is None:
            break
        after = page.next
    assert seen == _newest(alive)


async def test_the_writers_tell_where_the_newest_message_is(
    storage: Storage, uses_embedded: bool
) -> None:
    if not uses_embedded:
        pytest.skip("MongoDB stops at the limit: no page windows, nothing to tell")
    channel = await storage.channels.upsert("mock", "mock", "webhook", {})
    contact = await seen(storage, channel.id, "7", name="Zé")
    inbound, _ = await received(storage, contact, "m1", "olá")
    outbound, _ = await storage.messages.insert_outbound(contact=contact, content="oi", agent=None)
    newest = storage.pages.newest
    assert newest.of("messages")[-2:] == [inbound, outbound.id]
    stored = await storage.contacts.collection.find_one({"_id": contact.id})
    assert newest.of("contacts")[-1] == stored[KEY]


async def test_a_write_does_not_wait_for_its_newest_keys_to_be_saved(
    counted_storage: Storage, commands: Finds, uses_embedded: bool
) -> None:
    if not uses_embedded:
        pytest.skip("MongoDB stops at the limit: no page windows, nothing to save")
    storage = counted_storage
    channel = await storage.channels.upsert("mock", "mock", "webhook", {})
    contact = await seen(storage, channel.id, "7", name="Zé")
    await storage.pages.newest.flush()
    commands.commands.clear()
    sent, _ = await storage.messages.insert_outbound(contact=contact, content="oi", agent=None)
    # Back from the write, and the marker's save has not even been sent: it runs after.
    assert commands.commands == [("insert", "messages")]
    await storage.pages.newest.flush()
    assert commands.count("update", "newest_keys") == 1
    marker = await storage.db["newest_keys"].find_one({"_id": "messages"})
    assert marker is not None
    assert marker["keys"][-1] == sent.id
