"""Each filter of the message and conversation lists, page 1, at 200,000 messages.

    python -m bench.filters [--messages N] [--rounds R] [--quiet-hours H]

Seeds the gateway's own embedded database (opened as the gateway opens it, in a
temporary data dir), or MONGODB_URI (and reuses the traffic an earlier run left
there), with five agents and a month of traffic through the repositories' own
document shapes (2,000 contacts in two channels, 70 % inbound, 30 % sent by the
agents: read, delivered, sent, and exactly five failed; one contact who wrote three
times three weeks ago; the newest message H hours old, a quiet night, 0 by
default), then starts a real `bot-gateway serve` on it, whose assigner shares the
conversations among the agents; 1 % are then resolved through the API.

Each filter's page 1 is fetched once cold (its first request since the gateway
started) and R times warm; the figures are the warm p50/p99 and the database
queries each request made beyond its sign-in check. Target: every filter's p50 at
most 3 x its list's unfiltered p50, and at most 2 queries.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import random
import statistics
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pymongo
from pymongo import MongoClient

from bench.harness import Api, gateway, gateway_config, machine, summary_ms, workdir
from gateway.config import load_config
from gateway.passwords import hash_password
from storage.contacts import Sighting
from storage.conversations import Arrival
from storage.database import Storage
from storage.messages import inbound_document, outbound_document
from storage.models import Message, Status
from storage.pages import KEY
from storage.records import utcnow

DATABASE = "bench_filters"
CONTACTS = 2_000
AGENTS = 5
TARGET_RATIO = 3.0
TARGET_QUERIES = 2
OUTCOMES = [Status.READ] * 60 + [Status.DELIVERED] * 35 + [Status.SENT] * 5
FAILED = 5
PASSWORD = "bench password"


async def seed(storage: Storage, count: int, quiet_hours: float) -> dict[str, str]:
    """The agents and the month of traffic, ending ``quiet_hours`` ago; returns the
    ids the filters name."""
    await storage.ensure_indexes(30 * 86400)
    password = await hash_password(PASSWORD)
    agents = [
        await storage.agents.create(f"agent{n}", password, bootstrap=n == 0) for n in range(AGENTS)
    ]
    support = await storage.channels.upsert("support", "mock", "webhook", {})
    sales = await storage.channels.upsert("sales", "mock", "webhook", {})
    sightings = [
        Sighting((support, sales)[i % 2].id, f"user-{i}", f"Contact {i}") for i in range(CONTACTS)
    ]
    sightings.append(Sighting(sales.id, "whatsapp:+5511999", "Quiet Quintana"))
    contacts = list((await storage.contacts.record_seen_many(sightings)).values())
    quiet = next(c for c in contacts if c.external_id == "whatsapp:+5511999")
    busy = [c for c in contacts if c is not quiet]
    now, span_ms = utcnow() - timedelta(hours=quiet_hours), 29 * 86_400_000
    failed_at = set(random.sample(range(count), FAILED))
    newest: dict[str, Message] = {}
    received: Counter[str] = Counter()
    batch: list[dict] = []
    for i in range(count):
        at = now - timedelta(milliseconds=span_ms * i // count)
        contact = random.choice(busy)
        if i in failed_at or random.random() < 0.3:
            outcome = Status.FAILED if i in failed_at else random.choice(OUTCOMES)
            document = outbound_document(
                contact=contact, content=f"reply {i}", agent=random.choice(agents).ref, at=at
            )
            document["status"] = outcome.value
        else:
            document = inbound_document(
                channel_id=contact.channel_id,
                contact=contact,
                dedupe_key=f"bench-{i}",
                content=f"message {i}",
                at=at,
            )
            received[contact.id] += 1
            newest.setdefault(contact.id, Message.of(document))
        batch.append(document)
        if len(batch) == 5000:
            await _insert(storage, batch)
            batch.clear()
    for n in range(3):
        document = inbound_document(
            channel_id=quiet.channel_id,
            contact=quiet,
            dedupe_key=f"quiet-{n}",
            content=f"hello {n}",
            at=now - timedelta(days=21, minutes=n),
        )
        batch.append(document)
        received[quiet.id] += 1
        newest.setdefault(quiet.id, Message.of(document))
    await _insert(storage, batch)
    by_id = {c.id: c for c in contacts}
    channels = {support.id: support, sales.id: sales}
    arrivals = [
        Arrival(by_id[cid], channels[m.channel_id].name, "mock", m, received[cid])
        for cid, m in newest.items()
    ]
    for start in range(0, len(arrivals), 500):
        await storage.conversations.arrived(arrivals[start : start + 500])
    return {"quiet": quiet.id, "sales": sales.id}


async def _insert(storage: Storage, documents: list[dict]) -> None:
    """Messages stored in bulk, and told to the page reader as the writers tell it
    (storage/newest.py): the gateway then knows where the newest are."""
    await storage.messages.collection.insert_many(documents)
    storage.pages.newest.wrote("messages", [d[KEY] for d in documents])


async def seeded_here(uri: str | None, config: Path, count: int, quiet_hours: float) -> dict:
    """Seed the database at ``uri``, or (None) the gateway's own embedded one, opened
    as the gateway opens it (the gateway, not yet started, then starts it again)."""
    if uri is not None:
        storage = Storage.connect(uri, DATABASE)
    else:
        settings = load_config(config)
        storage = Storage.open(settings.storage, settings.data_dir)
    try:
        with pymongo.timeout(3600):  # bulk writes, not a request's 3 s
            return await seed(storage, count, quiet_hours)
    finally:
        await storage.close()


def resolve_some(api: Api) -> None:
    """1 % of the conversations resolved, through the API as agents do."""
    status, page = api.call("GET", f"/api/v1/conversations/?page_size={CONTACTS // 100}")
    assert status == 200, page
    for conversation in page["results"]:
        path = f"/api/v1/conversations/{conversation['id']}/"
        status, changed = api.call("PATCH", path, {"status": "resolved"})
        assert status == 200, changed


class Refused(Exception):
    """The gateway answered a page with an error."""


def queries(port: int) -> int:
    """The database commands the gateway has sent (its /metrics), of every kind: a
    search's aggregation is a command, not a query, in the server's own counters."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("gateway_database_commands_total{")
    )


def measure(api: Api, path: str, rounds: int, auth: float) -> dict:
    """Warm p50/p99, the cold time, and the queries beyond sign-in: each request's count
    from the server's counters, whose background work (the event log's tail, the
    assigner) adds one now and then; the median of the warm counts is the figure."""

    def timed() -> tuple[float, float]:
        before = queries(api.port)
        started = time.perf_counter()
        status, page = api.call("GET", path)
        if status != 200:
            raise Refused(f"{status} {page}")
        return time.perf_counter() - started, queries(api.port) - before - auth

    try:
        cold, cold_queries = timed()
    except Refused as exc:  # reported as missed, and the other filters still run
        return {"error": str(exc)}
    samples = [timed() for _ in range(rounds)]
    return {
        **summary_ms([seconds for seconds, _ in samples]),
        "cold_ms": round(cold * 1000, 1),
        "cold_queries": round(cold_queries),
        "queries": round(statistics.median(q for _, q in samples)),
    }


MESSAGE_FILTERS = {
    "none": {},
    "contact (busy)": {"contact_id": "{busy}"},
    "contact (3 messages, weeks ago)": {"contact_id": "{quiet}"},
    "conversation": {"conversation_id": "{busy_conversation}"},
    "assignee_id = me": {"assignee_id": "{me}"},
    "agent_id = me": {"agent_id": "{me}"},
    "direction = in (70 %)": {"direction": "in"},
    "direction = out (30 %)": {"direction": "out"},
    "status = received": {"status": "received"},
    "status = read": {"status": "read"},
    "status = sent (1.5 %)": {"status": "sent"},
    "status = failed (5)": {"status": "failed"},
    "contact + direction = out": {"contact_id": "{busy}", "direction": "out"},
    "contact + status = failed": {"contact_id": "{busy}", "status": "failed"},
    "agent + status = failed": {"agent_id": "{me}", "status": "failed"},
    "agent + contact": {"agent_id": "{me}", "contact_id": "{busy}"},
    "assignee + direction = in": {"assignee_id": "{me}", "direction": "in"},
    "assignee + status = failed": {"assignee_id": "{me}", "status": "failed"},
    "created in the last day": {"created_after": "{day_ago}"},
    "created before 3 weeks ago": {"created_before": "{weeks_ago}"},
}
CONVERSATION_FILTERS = {
    "none": {},
    "assignee = me": {"assignee": "me"},
    "assignee = none": {"assignee": "none"},
    "status = open": {"status": "open"},
    "status = resolved (1 %)": {"status": "resolved"},
    "channel": {"channel_id": "{sales}"},
    "channel + status = resolved": {"channel_id": "{sales}", "status": "resolved"},
    "assignee = me + status = open": {"assignee": "me", "status": "open"},
    "assignee = me + channel": {"assignee": "me", "channel_id": "{sales}"},
    "q = one name": {"q": "quintana"},
    "q = many names": {"q": "contact 1"},
}


def seeded(uri: str) -> dict[str, str] | None:
    """The ids the filters name, if an earlier run left its traffic at ``uri``."""
    with MongoClient(uri) as client:
        db = client[DATABASE]
        quiet = db.contacts.find_one({"external_id": "whatsapp:+5511999"})
        sales = db.channels.find_one({"name": "sales"})
        if quiet is None or sales is None or not db.messages.find_one({}):
            return None
        return {"quiet": quiet["_id"], "sales": sales["_id"]}


def run(count: int, rounds: int, quiet_hours: float) -> dict[str, dict[str, dict]]:
    uri = os.environ.get("MONGODB_URI")
    label = "MongoDB at MONGODB_URI" if uri else "the gateway's own embedded secantusdb"
    with workdir() as tmp:
        print(f"{label}, {count:,} messages, {machine()}")
        started = time.perf_counter()
        ids = seeded(uri) if uri else None
        if ids is None:
            config = gateway_config(Path(tmp), DATABASE, uri=uri)
            ids = asyncio.run(seeded_here(uri, config, count, quiet_hours))
            print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
        else:
            print("the traffic an earlier run left at MONGODB_URI, as it is", flush=True)
        with gateway(uri, DATABASE, Path(tmp)) as (port, _):
            api = Api(port)
            status, pair = api.call(
                "POST", "/auth/token/", {"username": "agent0", "password": PASSWORD}
            )
            assert status == 200, pair
            api.token = pair["access"]
            status, me = api.call("GET", "/api/v1/agents/me/")
            assert status == 200, me
            deadline = time.monotonic() + 300
            while api.call("GET", "/api/v1/conversations/?assignee=none&page_size=1")[1]["results"]:
                assert time.monotonic() < deadline, "the assigner did not catch up in 300 s"
                time.sleep(0.5)
            resolve_some(api)
            status, busy = api.call("GET", "/api/v1/conversations/?page_size=1&assignee=me")
            now = utcnow()
            values = {
                **ids,
                "me": me["id"],
                "busy": busy["results"][0]["contact"]["id"],
                "busy_conversation": busy["results"][0]["id"],
                "day_ago": (now - timedelta(days=1)).isoformat(),
                "weeks_ago": (now - timedelta(days=21)).isoformat(),
            }
            counts = []
            for _ in range(20):  # the sign-in check is all /me/ reads
                before = queries(api.port)
                api.call("GET", "/api/v1/agents/me/")
                counts.append(queries(api.port) - before)
            auth = statistics.median(counts)
            results: dict[str, dict[str, dict]] = {}
            for path, filters in (
                ("/api/v1/messages/", MESSAGE_FILTERS),
                ("/api/v1/conversations/", CONVERSATION_FILTERS),
            ):
                results[path] = {}
                for name, query in filters.items():
                    filled = {k: v.format(**values) for k, v in query.items()}
                    url = f"{path}?{urlencode({**filled, 'page_size': 20})}"
                    results[path][name] = figures = measure(api, url, rounds, auth)
                    print(f"  {path} {name}: {figures}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument(
        "--quiet-hours", type=float, default=0.0, help="how long ago the newest message came"
    )
    args = parser.parse_args()
    results = run(args.messages, args.rounds, args.quiet_hours)
    ok = True
    for path, figures in results.items():
        if "error" in figures["none"]:  # nothing to compare with
            print(f"\n{path}: the unfiltered page failed: {figures['none']['error']}")
            ok = False
            continue
        base = figures["none"]["p50_ms"]
        print(f"\n{path} page 1 (20 items), warm p50 / p99 / cold, queries beyond sign-in")
        print("  (the median of the warm requests' counts; the cold one's may include background)")
        for name, f in figures.items():
            if "error" in f:
                ok = False
                print(f"  {name:34} {f['error']}  MISSED")
                continue
            ratio = f["p50_ms"] / base
            met = ratio <= TARGET_RATIO and f["queries"] <= TARGET_QUERIES
            ok &= met
            print(
                f"  {name:34} {f['p50_ms']:7.2f} / {f['p99_ms']:7.2f} / {f['cold_ms']:7.1f} ms"
                f"  {ratio:4.1f} x  {f['queries']} q (cold {f['cold_queries']})"
                f"  {'' if met else 'MISSED'}"
            )
    print(f"\ntarget: p50 <= {TARGET_RATIO:g} x the unfiltered page's, <= {TARGET_QUERIES} queries")
    print("met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
