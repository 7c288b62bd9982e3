"""The inbound pipeline: a verified, parsed message becomes a stored one, once.

contact upserted (by channel and external id) → message inserted (a provider's
retry is acknowledged, not stored twice) → an available agent assigned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from channels.base import Channel, Inbound
from storage.database import Storage

log = logging.getLogger("gateway.inbound")


@dataclass
class Received:
    stored: int = 0
    duplicates: int = 0


async def receive(storage: Storage, channel: Channel, messages: list[Inbound]) -> Received:
    """Store what a channel received; returns once every message is durable."""
    result = Received()
    for message in messages:
        contact = await storage.contacts.record_seen(
            channel.id, message.contact_external_id, name=message.name, username=message.username
        )
        _, created = await storage.messages.insert_inbound(
            channel_id=channel.id,
            contact=contact,
            dedupe_key=message.dedupe_key,
            content=message.text,
            external_id=message.external_id,
            extra={"meta": message.extra} if message.extra else None,
        )
        if not created:
            result.duplicates += 1
            continue
        result.stored += 1
        if contact["assigned_agent_id"] is None:
            await _assign(storage, contact["id"])
    return result


async def _assign(storage: Storage, contact_id: str) -> None:
    """Give the conversation to the available agent given one least recently."""
    agent = await storage.agents.take_next_available()
    if agent is None:
        return  # nobody available: the contact stays unassigned until someone picks it up
    if await storage.contacts.assign(contact_id, agent["id"]):
        log.info("contact %s assigned to agent %s", contact_id, agent["username"])
