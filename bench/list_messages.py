"""Listing messages with many stored: page 1, a deep cursor page and a contact filter.

    python -m bench.list_messages [--quick] [--messages N]

Seeds N messages (default 200,000; --quick 20,000) over the last 29 days, starts a
real `bot-gateway serve` on the same database, and times sequential GETs through
its API. Each figure is compared with the Django reference (p50 51 ms for page 1,
23 queries per page) and with the target (p50 <= 10 ms at any depth).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from pymongo import MongoClient

from bench.harness import Api, database, gateway, machine, summary_ms, workdir
from storage.database import Storage
from storage.records import new_id, utcnow

DATABASE = "bench_list"
CONTACTS = 200
DEPTH = 10_000
REFERENCE_P50_MS = 51.0
TARGET_P50_MS = 10.0


async def seed(uri: str, count: int) -> list[str]:
    """``count`` inbound messages from CONTACTS contacts, in bulk; returns contact ids."""
    storage = Storage.connect(uri, DATABASE)
    await storage.ensure_indexes(30 * 86400)
    channel = await storage.channels.upsert("bench", "mock", "webhook", {})
    contacts = [
        await storage.contacts.record_seen(channel["id"], f"user-{i}", name=f"User {i}")
        for i in range(CONTACTS)
    ]
    now = utcnow()
    span_ms = 29 * 86_400_000
    batch: list[dict] = []
    for i in range(count):
        at = now - timedelta(milliseconds=span_ms * i // count)
        contact = contacts[random.randrange(CONTACTS)]
        key = new_id(at)
        batch.append(
            {
                "_id": key,
                "list_key": key,
                "channel_id": channel["id"],
                "contact_id": contact["id"],
                "contact": {
                    "id": contact["id"],
                    "external_id": contact["external_id"],
                    "name": contact["name"],
                },
                "agent_id": None,
                "agent": None,
                "direction": "in",
                "content": f"message {i}",
                "status": "received",
                "dedupe_key": f"bench-{i}",
                "external_id": "",
                "created_at": at,
                "updated_at": at,
            }
        )
        if len(batch) == 5000:
            await storage.messages.collection.insert_many(batch, ordered=False)
            batch.clear()
    if batch:
        await storage.messages.collection.insert_many(batch, ordered=False)
    await storage.close()
    return [c["id"] for c in contacts]


def queries(probe: MongoClient) -> int:
    return int(probe.admin.command("serverStatus")["opcounters"]["query"])


def measure(api: Api, probe: MongoClient, path: str, rounds: int) -> dict[str, float]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 messages, fewer rounds")
    parser.add_argument("--messages", type=int, help="how many messages to store")
    args = parser.parse_args()
    count = args.messages or (20_000 if args.quick else 200_000)
    rounds = 50 if args.quick else 200
    depth = min(DEPTH, count // 2)

    with workdir() as tmp, database(Path(tmp)) as (uri, label):
        started = time.perf_counter()
        contacts = asyncio.run(seed(uri, count))
        seeded_s = time.perf_counter() - started
        with gateway(uri, DATABASE, Path(tmp)) as (port, _pid):
            api = Api(port)
            api.sign_up("bench", "bench password")
            probe = MongoClient(uri)
            results = {
                "page_1": measure(api, probe, "/api/v1/messages/?page_size=20", rounds),
                f"page_at_{depth}": measure(api, probe, deep_cursor(api, depth), rounds),
                "contact_page_1": measure(
                    api, probe, f"/api/v1/messages/?page_size=20&contact_id={contacts[0]}", rounds
                ),
            }
            probe.close()

    print(f"\nList messages: {count:,} stored on {label} ({machine()}), seeded in {seeded_s:.0f} s")
    print(f"Reference p50 {REFERENCE_P50_MS} ms for page 1; target p50 <= {TARGET_P50_MS} ms")
    print(f"{'query':<18}{'p50 ms':>8}{'p99 ms':>8}{'queries':>9}{'vs ref':>8}  target")
    for name, figures in results.items():
        speedup = REFERENCE_P50_MS / figures["p50_ms"]
        verdict = "met" if figures["p50_ms"] <= TARGET_P50_MS else "MISSED"
        print(
            f"{name:<18}{figures['p50_ms']:>8}{figures['p99_ms']:>8}"
            f"{figures['queries_per_request']:>9}{speedup:>7.1f}x  {verdict}"
        )
    print("queries: every database query a request made, the auth lookup included")
    print(json.dumps({"bench": "list_messages", "messages": count, "database": label, **results}))


if __name__ == "__main__":
    main()
