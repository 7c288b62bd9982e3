"""Keyset pages over UUIDv7 keys, with and without the embedded server's windows."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from pymongo import monitoring

from storage.database import Storage
from storage.pages import KEY, PageReader
from storage.records import key_floor, key_millis, millis, new_id, utcnow
from testkit.helpers import CommandCounter


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
            newer_than=newer_than,
            older_than=older_than,
        )
        seen += page.items
        if page.next is None:
            break
        after = page.next
    assert seen == expected


class Finds(CommandCounter):
    """Also the filter of every find."""

    def __init__(self) -> None:
        super().__init__()
        self.filters: list[dict] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.filters.append(event.command["filter"])


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
    await reader.fetch(collection, _id, {}, None, 5, horizon=horizon)  # the density
    expected = sorted((d["_id"] for d in documents if d["status"] == "read"), reverse=True)

    seen, after, pages = [], None, 0
    read = {"status": "read"}
    while True:
        finds.filters.clear()
        page = await reader.fetch(collection, _id, read, after, 5, lead="status", horizon=horizon)
        assert len(finds.filters) <= 2
        if pages == 0:
            assert page.items == expected[:5]
            assert all("$gte" in f.get(KEY, {}) for f in finds.filters)  # windows only
        seen += page.items
        pages += 1
        if page.next is None:
            break
        after = page.next
    assert seen == expected  # each once, in order, through to the last
