"""Agents' outbound messages: validated, stored as queued, then handed to delivery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.errors import Conflict, NotFound, ValidationError
from storage.database import Storage


async def enqueue(
    storage: Storage,
    agent: dict[str, Any],
    contact_id: str,
    content: str,
    idempotency_key: str | None = None,
    *,
    known: dict[str, Any] | None = None,
    text_limit: Callable[[str], int] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store an agent's message to a contact as ``queued``; returns ``(message, created)``.

    ``known`` is the contact if the caller has it already (contacts are never
    deleted), which saves reading it. ``text_limit`` gives the longest text the
    channel of an id takes. A retry with the same ``idempotency_key``
    returns the first message; the same key with a different request is a
    :class:`Conflict`.
    """
    contact = known or await storage.contacts.get(contact_id)
    if contact is None:
        raise NotFound(f"No such contact: {contact_id}")
    limit = text_limit(contact["channel_id"]) if text_limit else None
    if limit is not None and len(content) > limit:  # the channel's provider would refuse it
        raise ValidationError.of("content", f"at most {limit} characters on this channel")
    message, created = await storage.messages.insert_outbound(
        contact=contact, content=content, agent=agent, idempotency_key=idempotency_key
    )
    if not created and (message["contact_id"], message["content"]) != (contact_id, content):
        raise Conflict("this Idempotency-Key was used for a different message")
    return message, created
