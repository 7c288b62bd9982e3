"""The inbound pipeline: a verified, parsed message becomes a stored one, once.

contact upserted (by channel and external id) → message inserted (a provider's
retry is acknowledged, not stored twice) → an available agent assigned → if the
text asks an FAQ, its answer queued as an auto-reply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from channels.base import Channel, Inbound
from gateway.faq import FaqResponder, normalize
from storage.database import Storage

log = logging.getLogger("gateway.inbound")


@dataclass
class Received:
    stored: int = 0
    duplicates: int = 0
    auto_replies: int = 0


async def receive(
    storage: Storage,
    channel: Channel,
    messages: list[Inbound],
    faq: FaqResponder | None = None,
    outbox_changed: Callable[[], None] | None = None,
) -> Received:
    """Store what a channel received; returns once every message is durable."""
    result = Received()
    for message in messages:
        contact = await storage.contacts.record_seen(
            channel.id, message.contact_external_id, name=message.name, username=message.username
        )
        # Only plain text can ask a question: not a photo's placeholder, not an edit.
        plain = not message.extra
        found = None
        if plain and faq is not None and channel.faq_auto_reply:
            found = await faq.lookup(message.text)  # before the insert: stored with its FAQ
        extra = {"normalized": normalize(message.text)} if plain else {"meta": message.extra}
        if found is not None:
            extra["faq_id"] = found["faq_id"]  # suggestions leave answered questions out
        _, created = await storage.messages.insert_inbound(
            channel_id=channel.id,
            contact=contact,
            dedupe_key=message.dedupe_key,
            content=message.text,
            external_id=message.external_id,
            extra=extra,
        )
        if not created:
            result.duplicates += 1
            continue
        result.stored += 1
        if contact["assigned_agent_id"] is None:
            await _assign(storage, contact["id"])
        if found is not None and await faq.reply(contact, found):  # type: ignore[union-attr]
            result.auto_replies += 1
    if result.auto_replies and outbox_changed is not None:
        outbox_changed()
    return result


async def _assign(storage: Storage, contact_id: str) -> None:
    """Give the conversation to the available agent given one least recently."""
    agent = await storage.agents.take_next_available()
    if agent is None:
        return  # nobody available: the contact stays unassigned until someone picks it up
    if await storage.contacts.assign(contact_id, agent["id"]):
        log.info("contact %s assigned to agent %s", contact_id, agent["username"])
