"""The inbound group commit over in-memory contacts and messages: what arrives while a
batch is written goes out together in the next, a provider's repeat is acknowledged
once, one refused message fails alone, a database that is away fails every waiting
webhook, and a contact is written again only when it changed or a minute passed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from channels.base import Inbound
from gateway.inbound import CONTACT_REFRESH_SECONDS, InboundWriter
from storage.contacts import Sighting
from storage.conversations import Arrival
from storage.errors import Refused
from storage.models import Contact, Message
from tests.unit.fakes import FakeClock, until


class MemoryContacts:
    def __init__(self) -> None:
        self.writes: list[list[str]] = []

    async def record_seen_many(
        self, sightings: list[Sighting], seen_at: Any = None, *, unknown: Any = frozenset()
    ) -> dict[str, Contact]:
        self.writes.append([s.external_id for s in sightings])
        return {
            s.contact_id: Contact(
                s.contact_id, s.channel_id, s.external_id, s.name, s.username, None, seen_at
            )
            for s in sightings
        }


class MemoryMessages:
    """Inbound inserts, unique by (channel, dedupe key); ``gate`` holds a write open."""

    def __init__(self) -> None:
        self.keys: set[tuple[str, str]] = set()
        self.writes: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.refuse: set[str] = set()  # texts the server would not store
        self.away = False

    async def insert_inbound_many(self, documents: list[dict[str, Any]]) -> list[Any]:
        if self.away:
            raise AutoReconnect("the database is away")
        self.writes.append([d["content"] for d in documents])
        if self.gate is not None:
            await self.gate.wait()
        created: list[Any] = []
        for d in documents:
            key = (d["channel_id"], d["dedupe_key"])
            if d["content"] in self.refuse:
                created.append(Refused("document too large"))
            elif key in self.keys:
                created.append(False)
            else:
                self.keys.add(key)
                created.append(True)
        return created


class Received:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrivals: list[Arrival] = []

    async def received(self, arrivals: list[Arrival], messages: list[Message]) -> None:
        self.arrivals += arrivals
        self.messages += messages


CHANNEL: Any = SimpleNamespace(id="chan", name="fake", type="mock")


def writer() -> tuple[InboundWriter, MemoryContacts, MemoryMessages, Received, FakeClock]:
    contacts, messages, told, clock = MemoryContacts(), MemoryMessages(), Received(), FakeClock()
    storage: Any = SimpleNamespace(contacts=contacts, messages=messages)
    w = InboundWriter(storage, told, lambda n: ["ana"] * n, clock=clock)  # type: ignore[arg-type]
    return w, contacts, messages, told, clock


def text(contact: str, key: str, body: str = "", name: str = "") -> tuple[Inbound, dict]:
    return Inbound(contact, key, body or f"hi {key}", name=name), {}


async def test_what_arrives_during_a_write_goes_out_together_in_the_next() -> None:
    w, _, messages, told, _ = writer()
    messages.gate = asyncio.Event()
    first = asyncio.ensure_future(w.write(CHANNEL, [text("7", "1")]))
    await until(lambda: messages.writes)  # the first batch is being written
    later = [asyncio.ensure_future(w.write(CHANNEL, [text(str(n), str(n))])) for n in (8, 9)]
    await asyncio.sleep(0)
    messages.gate.set()
    await asyncio.gather(first, *later)
    assert messages.writes == [["hi 1"], ["hi 8", "hi 9"]]
    assert len(told.messages) == 3


async def test_a_providers_repeat_is_acknowledged_not_stored_twice() -> None:
    w, _, _, told, _ = writer()
    [(_, created)] = await w.write(CHANNEL, [text("7", "1")])  # type: ignore[misc]
    [(_, again)] = await w.write(CHANNEL, [text("7", "1")])  # type: ignore[misc]
    assert (created, again) == (True, False)
    assert len(told.messages) == 1


async def test_one_refused_message_fails_alone() -> None:
    w, _, messages, told, _ = writer()
    messages.refuse = {"poison"}
    results = await w.write(CHANNEL, [text("7", "1"), text("7", "2", "poison"), text("8", "3")])
    assert [type(r).__name__ for r in results] == ["tuple", "Refused", "tuple"]
    assert [m.content for m in told.messages] == ["hi 1", "hi 3"]


async def test_a_database_away_fails_every_waiting_webhook() -> None:
    w, _, messages, told, _ = writer()
    messages.away = True
    results = await w.write(CHANNEL, [text("7", "1"), text("8", "2")])
    assert all(isinstance(r, AutoReconnect) for r in results)
    assert told.messages == []


async def test_new_contacts_get_their_agent_in_the_write_that_creates_them() -> None:
    w, _, _, told, _ = writer()
    await w.write(CHANNEL, [text("7", "1"), text("7", "2")])
    [arrival] = told.arrivals  # one conversation, however many of its messages came
    assert (arrival.assignee, arrival.count) == ("ana", 2)


@pytest.mark.parametrize(
    ("later", "seconds", "written_again"),
    [
        (text("7", "2"), 1.0, False),  # the same contact a second later
        (text("7", "2", name="Ana Maria"), 1.0, True),  # renamed
        (text("7", "2"), CONTACT_REFRESH_SECONDS + 1, True),  # a minute on: last_message_at
    ],
)
async def test_a_contact_is_written_again_only_when_it_changed_or_a_minute_passed(
    later: tuple[Inbound, dict], seconds: float, written_again: bool
) -> None:
    w, contacts, _, _, clock = writer()
    await w.write(CHANNEL, [text("7", "1")])
    clock.advance(seconds)
    await w.write(CHANNEL, [later])
    assert len(contacts.writes) == (2 if written_again else 1)
