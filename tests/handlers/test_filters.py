"""Every filter of the message and conversation lists, alone and combined: page 1 is
right and costs at most two database round trips, at every selectivity; walking the
`next` links gives every match once, in full pages but the last, each at most three
round trips (storage/pages.py).

The data is spread as a month of traffic is: one busy contact, one who wrote a few
times weeks ago, outbound messages of every outcome, conversations in two channels.
On the embedded server a rare filter is what makes a page need more than its first
query (storage/pages.py), so the table has rare and common ones side by side.
"""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from gateway.runtime import build_services
from storage.conversations import Arrival
from storage.database import Storage
from storage.messages import inbound_document
from storage.models import Contact, Message, Status
from storage.records import utcnow
from testkit.helpers import TEST_CONFIG, Client, CommandCounter, seen, sign_up

PAGE = 5
BEAS = 120  # an agent's conversations in the quiet test
AUTH = {"agents", "signins", "revocations"}  # every request's sign-in check, not the list's


@pytest.fixture(params=[False, True], ids=["shared", "sole writer"])
def sole_writer(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)  # the agents' conversations read, or known (storage/assigned.py)


async def _inbound(storage: Storage, contact: Contact, count: int, days_ago: float) -> Message:
    now = utcnow()
    documents = [
        inbound_document(
            channel_id=contact.channel_id,
            contact=contact,
            dedupe_key=f"{contact.id}-{days_ago}-{i}",
            content=f"hello {i}",
            at=now - timedelta(days=days_ago, minutes=count - i),
        )
        for i in range(count)
    ]
    await storage.messages.insert_inbound_many(documents)
    return Message.of(documents[-1])


@pytest.fixture
async def world(counted_storage: Storage, serve_app) -> dict[str, Any]:
    storage = counted_storage
    api = await sign_up(await serve_app(build_services(TEST_CONFIG, storage)), "ana")
    await sign_up(api, "bea")
    ana = await storage.agents.get_by_username("ana")
    bea = await storage.agents.get_by_username("bea")
    assert ana is not None
    assert bea is not None
    telegram = await storage.channels.upsert("support", "telegram", "polling", {})
    whatsapp = await storage.channels.upsert("sales", "twilio", "webhook", {})
    busy = await seen(storage, telegram.id, "1", name="Zé Busy", username="zebusy")
    quiet = await seen(storage, whatsapp.id, "whatsapp:+5511", name="Quiet Q")
    other = await seen(storage, telegram.id, "3", name="Other")
    arrivals = []
    for contact, channel, count, days_ago in (
        (busy, telegram, 60, 0.01),
        (quiet, whatsapp, 3, 20),
        (other, telegram, 10, 2),
    ):
        newest = await _inbound(storage, contact, count, days_ago)
        arrivals.append(Arrival(contact, channel.name, channel.type, newest, count))
    conversations = {c.contact_id: c.id for c in await storage.conversations.arrived(arrivals)}
    await storage.conversations.assign(
        [(conversations[busy.id], ana.id), (conversations[quiet.id], bea.id)],
        only_unassigned=False,
    )
    await storage.conversations.update(conversations[quiet.id], {"status": "resolved"})
    outcomes = [Status.DELIVERED] * 20 + [Status.FAILED] * 2 + [Status.SENT] * 5
    for i, outcome in enumerate(outcomes):
        agent, to = (ana, busy) if i % 3 else (bea, other)
        message, _ = await storage.messages.insert_outbound(
            contact=to, content="hi", agent=agent.ref
        )
        await storage.messages.apply_status(to.channel_id, message.id, outcome)
    await storage.messages.insert_outbound(contact=quiet, content="faq", agent=None)  # queued
    return {
        "api": api,
        "ana": ana.id,
        "bea": bea.id,
        "contacts": {"busy": busy.id, "quiet": quiet.id},
        "conversations": conversations,
        "channels": {"telegram": telegram.id, "whatsapp": whatsapp.id},
    }


async def _everything(api: Client, path: str) -> list[dict[str, Any]]:
    found, url = [], f"{path}?page_size=100"
    while url:
        status, page = await api.fetch("GET", url)
        assert status == 200, page
        found += page["results"]
        url = page["next"]
    return found


async def _page_one(
    api: Client, commands: CommandCounter, path: str, query: dict[str, str]
) -> tuple[list[str], bool, int]:
    commands.commands.clear()
    status, page = await api.fetch("GET", f"{path}?{urlencode({**query, 'page_size': PAGE})}")
    assert status == 200, (query, page)
    trips = sum(1 for _, collection in commands.commands if collection not in AUTH)
    return [r["id"] for r in page["results"]], page["next"] is not None, trips


async def _walk(
    api: Client, commands: CommandCounter, path: str, query: dict[str, str], size: int
) -> list[str]:
    """Every page of ``query`` through its ``next`` links: each full but the last,
    each read in at most three round trips (storage/pages.py)."""
    found: list[str] = []
    url: str | None = f"{path}?{urlencode({**query, 'page_size': size})}"
    while url:
        commands.commands.clear()
        status, page = await api.fetch("GET", url)
        assert status == 200, (query, page)
        trips = sum(1 for _, collection in commands.commands if collection not in AUTH)
        assert trips <= 3, (query, commands.commands)
        found += [r["id"] for r in page["results"]]
        url = page["next"]
        assert len(page["results"]) == size or url is None, (query, len(found))
    return found


def _singles_and_pairs(options: dict[str, list[str | None]]) -> list[dict[str, str]]:
    """Each filter's values alone, and every two filters' together."""
    chosen = [(name, v) for name, values in options.items() for v in values if v is not None]
    pairs = [dict(pair) for pair in itertools.combinations(chosen, 2) if pair[0][0] != pair[1][0]]
    return [{}, *({name: v} for name, v in chosen), *pairs]


async def test_every_message_filter_and_pair_pages_through_every_match_once(
    world: dict[str, Any], counted_storage: Storage, commands: CommandCounter
) -> None:
    # Bursts days apart, so a window sized from one stretch holds too few of the next.
    storage = counted_storage
    channel = await storage.channels.upsert("support", "telegram", "polling", {})
    for n in range(8):
        contact = await seen(storage, channel.id, f"burst-{n}", name=f"Burst {n}")
        await _inbound(storage, contact, 9, days_ago=1 + n * 2.5)
    api = world["api"]
    everything = await _everything(api, "/api/v1/messages/")
    busy, quiet = world["contacts"]["busy"], world["contacts"]["quiet"]
    options: dict[str, list[str | None]] = {
        "contact_id": [busy, quiet],
        "conversation_id": [world["conversations"][quiet]],
        "assignee_id": [world["ana"], world["bea"]],
        "agent_id": [world["ana"], world["bea"]],
        "direction": ["in", "out"],
        "status": ["received", "delivered", "failed"],
    }
    assignees = {busy: world["ana"], quiet: world["bea"]}
    for query in _singles_and_pairs(options):

        def wanted(m: dict[str, Any], query: dict[str, str] = query) -> bool:
            contact = m["contact"]["id"]
            seen_as = {
                "contact_id": contact,
                "conversation_id": world["conversations"].get(contact),
                "assignee_id": assignees.get(contact),
                "agent_id": (m["agent"] or {}).get("id"),
                "direction": m["direction"],
                "status": m["status"],
            }
            return all(seen_as[name] == value for name, value in query.items())

        expected = [m["id"] for m in everything if wanted(m)]
        assert await _walk(api, commands, "/api/v1/messages/", query, 7) == expected, query


async def test_every_conversation_filter_and_pair_pages_through_every_match_once(
    world: dict[str, Any], counted_storage: Storage, commands: CommandCounter
) -> None:
    storage = counted_storage
    channel = await storage.channels.upsert("support", "telegram", "polling", {})
    arrivals = []
    for n in range(40):  # in bursts of ten, days apart
        contact = await seen(storage, channel.id, f"burst-{n}", name=f"Burst {n % 3}")
        newest = await _inbound(storage, contact, 1, days_ago=(n // 10) * 3 + n / 100)
        arrivals.append(Arrival(contact, channel.name, channel.type, newest, 1))
    conversations = await storage.conversations.arrived(arrivals)
    await storage.conversations.assign([(c.id, world["bea"]) for c in conversations[::2]],
                                       only_unassigned=False)  # fmt: skip
    for c in conversations[::5]:
        await storage.conversations.update(c.id, {"status": "resolved"})
    api = world["api"]
    everything = await _everything(api, "/api/v1/conversations/")
    assert len(everything) == 43
    options: dict[str, list[str | None]] = {
        "assignee": ["me", "none", world["bea"]],
        "status": ["open", "resolved"],
        "channel_id": list(world["channels"].values()),
        "q": ["burst", "burst 1", "quiet"],
    }
    me = {"me": world["ana"], "none": None}
    for query in _singles_and_pairs(options):

        def wanted(c: dict[str, Any], query: dict[str, str] = query) -> bool:
            contact = c["contact"]
            text = re.findall(r"\w+", f"{contact['name']} {contact['external_id']}".casefold())
            return all(
                (
                    "assignee" not in query
                    or me.get(query["assignee"], query["assignee"]) == c["assignee_id"],
                    query.get("status") in (None, c["status"]),
                    query.get("channel_id") in (None, c["channel"]["id"]),
                    all(any(w.startswith(p) for w in text) for p in query.get("q", "").split()),
                )
            )

        expected = [c["id"] for c in everything if wanted(c)]
        assert await _walk(api, commands, "/api/v1/conversations/", query, 4) == expected, query


async def test_every_message_filter_and_combination(
    world: dict[str, Any], commands: CommandCounter
) -> None:
    api = world["api"]
    everything = await _everything(api, "/api/v1/messages/")
    assert len(everything) == 60 + 3 + 10 + 27 + 1
    assignees = {world["contacts"]["busy"]: world["ana"], world["contacts"]["quiet"]: world["bea"]}
    options: dict[str, list[str | None]] = {
        "contact_id": [None, world["contacts"]["busy"], world["contacts"]["quiet"]],
        "conversation_id": [None, world["conversations"][world["contacts"]["quiet"]]],
        "assignee_id": [None, world["ana"]],
        "agent_id": [None, world["ana"], world["bea"]],
        "direction": [None, "in", "out"],
        "status": [None, "received", "delivered", "failed", "queued"],
    }
    most = 0
    for values in itertools.product(*options.values()):
        query = {k: v for k, v in zip(options, values, strict=True) if v is not None}

        def wanted(m: dict[str, Any], query: dict[str, str] = query) -> bool:
            contact = m["contact"]["id"]
            return all(
                (
                    query.get("contact_id") in (None, contact),
                    query.get("conversation_id") in (None, world["conversations"].get(contact)),
                    query.get("assignee_id") in (None, assignees.get(contact)),
                    query.get("agent_id") in (None, (m["agent"] or {}).get("id")),
                    query.get("direction") in (None, m["direction"]),
                    query.get("status") in (None, m["status"]),
                )
            )

        expected = [m["id"] for m in everything if wanted(m)]
        ids, more, trips = await _page_one(api, commands, "/api/v1/messages/", query)
        assert (ids, more) == (expected[:PAGE], len(expected) > PAGE), query
        assert trips <= 2, (query, commands.commands)
        most = max(most, trips)
    assert most >= 2  # the conversation and assignee filters read conversations first


async def test_every_conversation_filter_and_combination(
    world: dict[str, Any], commands: CommandCounter
) -> None:
    api = world["api"]
    everything = await _everything(api, "/api/v1/conversations/")
    assert len(everything) == 3
    options: dict[str, list[str | None]] = {
        "assignee": [None, "me", "none", world["bea"]],
        "status": [None, "open", "resolved"],
        "channel_id": [None, *world["channels"].values()],
        # Word prefixes: "usy" is inside "busy" but starts no word.
        "q": [None, "zé", "QUIET", "+5511", "zebusy", "bus zé", "usy", "nobody"],
    }
    me = {"me": world["ana"], "none": None}
    for values in itertools.product(*options.values()):
        query = {k: v for k, v in zip(options, values, strict=True) if v is not None}

        def wanted(c: dict[str, Any], query: dict[str, str] = query) -> bool:
            contact = c["contact"]
            username = {"Zé Busy": "zebusy"}.get(contact["name"], "")
            text = re.findall(r"\w+", f"{contact['name']} {username} {contact['external_id']}")
            wanted = re.findall(r"\w+", query.get("q", ""))
            return all(
                (
                    "assignee" not in query
                    or me.get(query["assignee"], query["assignee"]) == c["assignee_id"],
                    query.get("status") in (None, c["status"]),
                    query.get("channel_id") in (None, c["channel"]["id"]),
                    all(any(w.casefold().startswith(p.casefold()) for w in text) for p in wanted),
                )
            )

        expected = [c["id"] for c in everything if wanted(c)]
        ids, more, trips = await _page_one(api, commands, "/api/v1/conversations/", query)
        assert (ids, more) == (expected[:PAGE], len(expected) > PAGE), query
        assert trips <= 2, (query, commands.commands)
    status, refused = await api.fetch("GET", "/api/v1/conversations/?q=%2B%2B")  # "++"
    assert status == 400
    assert "letter or a digit" in str(refused), refused


async def test_an_agents_quiet_conversations_amid_busy_ones_are_two_round_trips(
    world: dict[str, Any], counted_storage: Storage, commands: CommandCounter
) -> None:
    # Bea's conversations last heard of days ago, while Ana's contact writes every
    # minute: a window sized from the traffic would hold none of Bea's messages. More
    # of them than the server's first reply holds (101): still one read.
    storage = counted_storage
    channel = await storage.channels.upsert("support", "telegram", "polling", {})  # the world's
    arrivals, written = [], []
    for n in range(BEAS):
        contact = await seen(storage, channel.id, f"bea-{n}", name=f"Bea's {n}")
        newest = await _inbound(storage, contact, 2, days_ago=3 + n / 10)
        arrivals.append(Arrival(contact, channel.name, channel.type, newest, 2))
        written.append(contact.id)
    conversations = await storage.conversations.arrived(arrivals)
    await storage.conversations.assign([(c.id, world["bea"]) for c in conversations],
                                       only_unassigned=False)  # fmt: skip
    everything = await _everything(world["api"], "/api/v1/messages/")
    beas = {*written, world["contacts"]["quiet"]}
    for more_filters in ({}, {"direction": "in"}, {"status": "received"}, {"status": "read"}):
        query = {"assignee_id": world["bea"], **more_filters}
        wanted = [m["id"] for m in everything if m["contact"]["id"] in beas
                  and all(m[k] == v for k, v in more_filters.items())]  # fmt: skip
        ids, more, trips = await _page_one(world["api"], commands, "/api/v1/messages/", query)
        assert (ids, more) == (wanted[:PAGE], len(wanted) > PAGE), query
        assert trips <= 2, (query, commands.commands)
    # Bea's conversations in each channel: many in one, one in the other.
    conversations = await _everything(world["api"], "/api/v1/conversations/")
    for channel_id in (channel.id, world["channels"]["whatsapp"]):
        query = {"assignee": world["bea"], "channel_id": channel_id}
        bea = world["bea"]
        wanted = [c["id"] for c in conversations
                  if c["assignee_id"] == bea and c["channel"]["id"] == channel_id]  # fmt: skip
        path = "/api/v1/conversations/"
        ids, more, trips = await _page_one(world["api"], commands, path, query)
        assert (ids, more) == (wanted[:PAGE], len(wanted) > PAGE), query
        assert trips <= 2, (query, commands.commands)


async def test_one_contact_of_an_agents_is_looked_up_not_windowed(
    world: dict[str, Any], commands: CommandCounter
) -> None:
    # Their conversation is read first, and one contact's messages are few: looked up
    # in one query, not windowed.
    api = world["api"]
    await _everything(api, "/api/v1/messages/")  # the reader now knows the traffic's density
    query = {"contact_id": world["contacts"]["busy"], "assignee_id": world["ana"]}
    commands.finds.clear()
    ids, more, trips = await _page_one(
        api, commands, "/api/v1/messages/", {**query, "status": "failed"}
    )
    assert (len(ids), more, trips) == (1, False, 2)
    (find,) = [f for f in commands.finds if f["find"] == "messages"]
    assert "$gte" not in str(find["filter"].get("list_key", {})), find
