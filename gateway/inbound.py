"""The inbound pipeline: a verified, parsed message becomes a stored one, once.

contact recorded (by channel and external id) → message inserted (a provider's
retry is acknowledged, not stored twice) → its conversation reopened and its
events written (gateway/conversation_updates.py). gateway/channel_inbox.py hands
messages in and queues the FAQ answers after; agents are assigned off this path
(gateway/assignment.py).

Writes are group-committed: the messages of every webhook that arrives while a
batch is being written go out together in the next one, as one bulk write per
collection, and each webhook is answered once its batch is durable. Contacts
already seen in the last minute with the same profile are not written again, so
a contact's ``last_message_at`` is exact to within that minute.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from channels.base import Channel, Inbound
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.conversation_updates import ConversationUpdates
from gateway.group_commit import GroupCommit
from storage.contacts import Sighting
from storage.conversations import Arrival
from storage.database import Storage
from storage.errors import is_unavailable
from storage.messages import inbound_document
from storage.models import Contact, Message

log = logging.getLogger("gateway.inbound")

CONTACT_REFRESH_SECONDS = 60.0  # how stale a cached contact (and last_message_at) may be
KNOWN_CONTACTS = 100_000  # contacts remembered, least recently seen forgotten first
KNOWN_CONTACT_CHARS = 16_000_000  # and the characters of their names, ids and usernames
MAX_BATCH = 256  # messages per bulk write


@dataclass
class _Arriving:
    """A message waiting for its batch's write; ``done`` answers its webhook."""

    channel: Channel
    message: Inbound
    extra: dict[str, Any]
    sighting: Sighting = field(init=False)
    done: asyncio.Future[tuple[Contact, bool]] = field(init=False)

    def __post_init__(self) -> None:
        m = self.message
        self.sighting = Sighting(self.channel.id, m.contact_external_id, m.name, m.username)
        self.done = asyncio.get_running_loop().create_future()

    def answer(self, result: tuple[Contact, bool] | Exception) -> None:
        if self.done.done():  # its webhook went away (the client hung up)
            return
        if isinstance(result, Exception):
            self.done.set_exception(result)
        else:
            self.done.set_result(result)


class _ContactCache:
    """Contacts as last written here, by id, least recently seen forgotten first once
    there are too many of them or their texts take too much room."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[Contact, float]] = OrderedDict()
        self._chars = 0

    def get(self, contact_id: str) -> tuple[Contact, float] | None:
        return self._entries.get(contact_id)

    def __getitem__(self, contact_id: str) -> tuple[Contact, float]:
        return self._entries[contact_id]

    def touch(self, contact_id: str) -> None:
        self._entries.move_to_end(contact_id)

    def put(self, contact: Contact, written_at: float) -> None:
        self.pop(contact.id)
        self._entries[contact.id] = (contact, written_at)
        self._chars += _size(contact)
        while len(self._entries) > KNOWN_CONTACTS or self._chars > KNOWN_CONTACT_CHARS:
            _, (oldest, _) = self._entries.popitem(last=False)
            self._chars -= _size(oldest)

    def pop(self, contact_id: str) -> None:
        entry = self._entries.pop(contact_id, None)
        if entry is not None:
            self._chars -= _size(entry[0])


def _size(contact: Contact) -> int:
    return len(contact.id) + len(contact.external_id) + len(contact.name) + len(contact.username)


class InboundWriter:
    """Stores inbound messages in batches; ``write`` returns once its batch is durable."""

    def __init__(
        self,
        storage: Storage,
        updates: ConversationUpdates,
        propose: Callable[[int], list[str | None]],
        clock: Clock = SYSTEM_CLOCK,
        bot_of: Callable[[str], str | None] = lambda channel_id: None,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.updates = updates
        self.propose = propose  # agents for new conversations (gateway/assignment.py)
        self.bot_of = bot_of  # a channel's bot, whose conversations start with it
        # What arrives while a batch is written waits for the next: one write at a time.
        self._writes = GroupCommit(self._flush_batch, "inbound group commit", MAX_BATCH)
        # contact id → (the contact as stored, monotonic time it was last written)
        self._contacts = _ContactCache()

    def known_contact(self, contact_id: str) -> Contact | None:
        """The contact as last written here, if it wrote lately (its name may lag a minute)."""
        known = self._contacts.get(contact_id)
        return known[0] if known else None

    async def write(
        self, channel: Channel, messages: list[tuple[Inbound, dict[str, Any]]]
    ) -> list[tuple[Contact, bool] | BaseException]:
        """``(contact, created)`` for each ``(message, extra fields)``, in order, or
        the exception that kept that one from being stored."""
        pending = [_Arriving(channel, message, extra) for message, extra in messages]
        self._writes.add(pending)
        return list(await asyncio.gather(*(p.done for p in pending), return_exceptions=True))

    async def _flush_batch(self, batch: list[_Arriving]) -> None:
        await self._flush(batch)

    async def _flush(self, batch: list[_Arriving]) -> Exception | None:
        """Store ``batch`` and answer its members; returns the error if the database is away."""
        try:
            results = await self._store(batch)
        except Exception as exc:
            if is_unavailable(exc):
                # Whoever waits now would wait as long to fail: all of them answer 503.
                for p in batch + self._writes.take_waiting():
                    p.answer(exc)
                return exc
            if len(batch) == 1:
                batch[0].answer(exc)
                return None
            # Not the database being away: one member is to blame. Write each alone,
            # so that only the offender fails.
            log.warning("a batch of %d inbound messages failed (%s); writing them one by one",
                        len(batch), type(exc).__name__)  # fmt: skip
            for n, p in enumerate(batch):
                away = await self._flush([p])
                if away is not None:
                    for rest in batch[n + 1 :]:
                        rest.answer(away)
                    return away
            return None
        for p, result in zip(batch, results, strict=True):
            p.answer(result)
        return None

    async def _store(self, batch: list[_Arriving]) -> list[tuple[Contact, bool] | Exception]:
        now = self.clock.now()
        await self._record_contacts(batch, now)
        contacts = [self._contacts[p.sighting.contact_id][0] for p in batch]
        documents = [
            inbound_document(
                channel_id=p.channel.id,
                contact=contact,
                dedupe_key=p.message.dedupe_key,
                content=p.message.text,
                external_id=p.message.external_id,
                extra=p.extra,
                at=now,
            )
            for p, contact in zip(batch, contacts, strict=True)
        ]
        created = await self.storage.messages.insert_inbound_many(documents)
        stored = [
            (p, contact, Message.of(document))
            for p, contact, document, new in zip(batch, contacts, documents, created, strict=True)
            if new is True
        ]
        newest: dict[str, Arrival] = {}
        for p, contact, message in stored:
            earlier = newest.get(contact.id)
            count = earlier.count + 1 if earlier else 1
            bot = self.bot_of(p.channel.id) is not None
            newest[contact.id] = Arrival(
                contact, p.channel.name, p.channel.type, message, count, bot=bot
            )
        arrivals = self._assign_new(list(newest.values()), now)
        await self.updates.received(arrivals, [m for _, _, m in stored])
        return [
            new if isinstance(new, Exception) else (contact, new)
            for contact, new in zip(contacts, created, strict=True)
        ]

    def _assign_new(self, arrivals: list[Arrival], now: datetime) -> list[Arrival]:
        """A contact first seen in this batch has a new conversation: it gets its agent
        in the write that creates it."""
        new = [n for n, a in enumerate(arrivals) if a.contact.created_at == now and not a.bot]
        for n, agent_id in zip(new, self.propose(len(new)), strict=True):
            arrivals[n] = dataclasses.replace(arrivals[n], assignee=agent_id)
        return arrivals

    async def _record_contacts(self, batch: list[_Arriving], now: datetime) -> None:
        """Write the contacts that are new, changed, or not written for a minute."""
        due = [p.sighting for p in batch if self._needs_write(p.sighting)]
        if not due:
            return
        unknown = frozenset(s.contact_id for s in due if self._contacts.get(s.contact_id) is None)
        stored = await self.storage.contacts.record_seen_many(due, now, unknown=unknown)
        written_at = self.clock.monotonic()
        for contact in stored.values():
            self._contacts.put(contact, written_at)

    def _needs_write(self, sighting: Sighting) -> bool:
        known = self._contacts.get(sighting.contact_id)
        if known is None:
            return True
        contact, written_at = known
        self._contacts.touch(sighting.contact_id)
        return (
            self.clock.monotonic() - written_at > CONTACT_REFRESH_SECONDS
            or bool(sighting.name and sighting.name != contact.name)
            or bool(sighting.username and sighting.username != contact.username)
        )
