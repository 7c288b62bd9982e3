"""``?q=`` finds conversations by the starts of their contact's words: a rare old name
in at most two queries that read only its matches, a renamed contact by the new name,
and contacts stored before words existed once the gateway starts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage.contacts import WORDS, Sighting
from storage.conversations import Arrival
from storage.database import Storage
from storage.messages import inbound_document
from storage.models import Contact, Message, conversation_id
from storage.records import utcnow
from testkit.helpers import CommandCounter

BUSY = 300  # contacts heard from in the last minutes, before the quiet one's weeks


def _arrival(contact: Contact, ago: timedelta) -> Arrival:
    document = inbound_document(
        channel_id=contact.channel_id, contact=contact, dedupe_key=f"{contact.id}-{ago}",
        content="hello", at=utcnow() - ago,
    )  # fmt: skip
    return Arrival(contact, "mock", "mock", Message.of(document), 1)


async def _contacts(storage: Storage, *people: tuple[str, str, str]) -> list[Contact]:
    sightings = [Sighting("channel-1", external_id, name, username)
                 for external_id, name, username in people]  # fmt: skip
    stored = await storage.contacts.record_seen_many(sightings)
    return [stored[s.contact_id] for s in sightings]


async def _found(storage: Storage, q: str, **filters: str) -> list[str]:
    page = await storage.conversations.list_page(None, 20, q=q, **filters)  # type: ignore[arg-type]
    return [c.contact.name for c in page.items]


async def test_a_rare_old_name_takes_two_queries_reading_only_its_matches(
    counted_storage: Storage, commands: CommandCounter
) -> None:
    storage = counted_storage
    people = [(f"busy-{n}", f"Contact {n}", f"user{n}") for n in range(BUSY)]
    people.append(("whatsapp:+5511999", "Quiet Quintana", ""))
    *busy, quiet = await _contacts(storage, *people)
    arrivals = [_arrival(c, timedelta(seconds=n)) for n, c in enumerate(busy)]
    await storage.conversations.arrived([*arrivals, _arrival(quiet, timedelta(days=21))])
    await storage.conversations.list_page(None, 20)  # the page reader learns the density

    commands.commands.clear()
    assert await _found(storage, "QUINT") == ["Quiet Quintana"]
    assert len(commands.commands) <= 2, commands.commands
    if storage.pages.windowed:  # the embedded server: the window, then the word index
        assert commands.commands[-1] == ("aggregate", "contacts")

    assert await _found(storage, "quiet quin") == ["Quiet Quintana"]  # every word
    assert await _found(storage, "5511") == ["Quiet Quintana"]  # a word of the number
    assert await _found(storage, "+5511") == ["Quiet Quintana"]
    assert await _found(storage, "uint") == []  # inside a word, starting none
    assert await _found(storage, "quintana contact") == []
    assert await _found(storage, "quint", channel_id="another channel") == []
    assert len(await _found(storage, "contact")) == 20  # a common word: the window's
    assert len(await _found(storage, "contact 29")) == 11  # 29 and 290-299


async def test_a_renamed_contact_is_found_by_the_new_name_only(storage: Storage) -> None:
    [contact] = await _contacts(storage, ("7", "Ana Old", "ana"))
    await storage.conversations.arrived([_arrival(contact, timedelta(days=3))])
    assert await _found(storage, "old") == ["Ana Old"]

    [renamed] = await _contacts(storage, ("7", "Ana Newname", ""))  # username kept
    await storage.conversations.arrived([_arrival(renamed, timedelta(days=2))])
    assert await _found(storage, "newn") == ["Ana Newname"]
    assert await _found(storage, "old") == []
    assert await _found(storage, "ana") == ["Ana Newname"]  # the username's word too


async def test_contacts_stored_before_words_are_given_them_when_the_gateway_starts(
    storage: Storage,
) -> None:
    [contact] = await _contacts(storage, ("9", "Zoë Earlier", "zoe"))
    await storage.conversations.arrived([_arrival(contact, timedelta(days=5))])
    # As a version before schema step 4 left them: no words, the old search text.
    await storage.contacts.collection.update_one(
        {"_id": contact.id}, {"$unset": {"words": "", "conversation_id": ""}}
    )
    await storage.conversations.collection.update_one(
        {"_id": conversation_id(contact.id)}, {"$set": {"search": "zoë earlier\nzoe\n9"}}
    )
    await storage.db["meta"].update_one({"_id": "schema"}, {"$set": {"version": 3}})
    await storage.ensure_indexes(30 * 86400)

    stored = await storage.contacts.collection.find_one({"_id": contact.id})
    assert stored is not None
    assert (stored["words"], stored["conversation_id"]) == (
        ["9", "earlier", "zoe"],  # zoë and zoe: one word without its accent
        conversation_id(contact.id),
    )
    assert await _found(storage, "zoë earl") == ["Zoë Earlier"]
    assert await _found(storage, "ZOE EARL") == ["Zoë Earlier"]
    assert WORDS in await storage.contacts.collection.index_information()


@pytest.mark.parametrize(
    ("name", "typed"),
    [
        ("João Silva", "joao"),
        ("JOÃO SILVA", "João"),
        ("Łucja Żółć", "łucja zoł"),  # ż and ó carry marks; ł is a letter of its own
        ("\uff26\uff55\uff4c\uff4c width", "full"),  # full-width forms
        ("Renée", "renee"),
    ],
)
async def test_search_finds_a_name_with_or_without_its_accents(
    storage: Storage, name: str, typed: str
) -> None:
    [contact] = await _contacts(storage, ("77", name, ""))
    await storage.conversations.arrived([_arrival(contact, timedelta(minutes=1))])
    assert await _found(storage, typed) == [name]
