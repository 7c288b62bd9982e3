"""Listing messages with many stored: page 1, a deep cursor page and a contact filter.

The bench seeds the messages (200,000; 20,000 with --quick) over the last 29 days
before the gateway starts, then times sequential GETs through its API and counts
the database queries each one made.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from urllib.parse import urlsplit

from pymongo import MongoClient

from bench.harness import Api, summary_ms
from storage.contacts import Sighting
from storage.database import Storage
from storage.messages import inbound_document
from storage.records import utcnow

CONTACTS = 200
DEPTH = 10_000


async def seed(uri: str, database: str, count: int) -> list[str]:
    """``count`` inbound messages from CONTACTS contacts, in bulk; returns contact ids."""
    storage = Storage.connect(uri, database)
    await storage.ensure_indexes(30 * 86400)
    channel = await storage.channels.upsert("bench", "mock", "webhook", {})
    sightings = [Sighting(channel.id, f"user-{i}", f"User {i}") for i in range(CONTACTS)]
    contacts = list((await storage.contacts.record_seen_many(sightings)).values())
    now = utcnow()
    span_ms = 29 * 86_400_000
    batch: list[dict] = []
    for i in range(count):
        at = now - timedelta(milliseconds=span_ms * i // count)
        contact = contacts[random.randrange(CONTACTS)]
        batch.append(
            inbound_document(
                channel_id=channel.id,
                contact=contact,
                dedupe_key=f"bench-{i}",
                content=f"message {i}",
                at=at,
            )
        )
        if len(batch) == 5000:  # the inbound path's own bulk write, in bigger batches
            await storage.messages.insert_inbound_many(batch)
            batch.clear()
    if batch:
        await storage.messages.insert_inbound_many(batch)
    await storage.close()
    return [c.id for c in contacts]


def queries(probe: MongoClient) -> int:
    return int(probe.admin.command("serverStatus")["opcounters"]["query"])


def measure(api: Api, probe: MongoClient, path: str, rounds: int) -> dict[str, float]:
    api.reconnect()  # not timed
    samples = []
    before = queries(probe)
    for _ in range(rounds):
        started = time.perf_counter()
        status, page = api.call("GET", path)
        samples.append(time.perf_counter() - started)
        assert status == 200, page
        assert len(page["results"]) == 20
    per_request = (queries(probe) - before) / rounds
    return {**summary_ms(samples), "queries_per_request": round(per_request, 2)}


def deep_cursor(api: Api, depth: int) -> str:
    """Walk the list 100 at a time to ``depth`` and return that page's path."""
    path = "/api/v1/messages/?page_size=100"
    for _ in range(depth // 100):
        status, page = api.call("GET", path)
        assert status == 200, page
        parts = urlsplit(page["next"])
        path = f"{parts.path}?{parts.query}"
    return path.replace("page_size=100", "page_size=20")


def find_one_ms(api: Api, probe: MongoClient, database: str, rounds: int) -> float:
    """p50 of one indexed ``find_one`` by ``_id``, straight to the database: the unit
    the list target is stated in, so that it holds on a slower or faster machine."""
    messages = probe[database].messages
    # The ids from the API's first page: a bare find({}).limit(n) on the embedded
    # server reads the whole collection before the limit, and its process kept most
    # of that memory (the 550 MB peak and +115 MB after it in a full round).
    status, page = api.call("GET", f"/api/v1/messages/?page_size={min(rounds, 100)}")
    assert status == 200, page
    found = [m["id"] for m in page["results"]]
    ids = [found[i % len(found)] for i in range(rounds)]
    samples = []
    for message_id in ids:
        started = time.perf_counter()
        messages.find_one({"_id": message_id})
        samples.append(time.perf_counter() - started)
    return summary_ms(samples)["p50_ms"]


def measure_all(
    api: Api, uri: str, database: str, contact_id: str, count: int, quick: bool
) -> dict:
    """p50/p99 and queries per request of page 1, a deep page and one contact's page 1,
    and the p50 of a bare indexed read of one message."""
    rounds = 50 if quick else 200
    depth = min(DEPTH, count // 2)
    with MongoClient(uri) as probe:
        return {
            "find_one_p50_ms": find_one_ms(api, probe, database, rounds),
            "page_1": measure(api, probe, "/api/v1/messages/?page_size=20", rounds),
            f"page_at_{depth}": measure(api, probe, deep_cursor(api, depth), rounds),
            "contact_page_1": measure(
                api, probe, f"/api/v1/messages/?page_size=20&contact_id={contact_id}", rounds
            ),
        }
