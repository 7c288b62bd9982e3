"""Agents' outbound messages: validated, stored as queued, then handed to delivery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.errors import Conflict, NotFound, ValidationError
from storage.database import Storage
from storage.models import Agent, Contact, Message


class Sender:
    """Sends as an agent. ``known_contact`` gives a contact the inbound path wrote
    lately (agents answer who wrote: that saves reading it), ``text_limit`` the
    longest text a channel takes, and ``queued`` hands new messages to delivery."""

    def __init__(
        self,
        storage: Storage,
        *,
        known_contact: Callable[[str], Contact | None],
        text_limit: Callable[[str], int],
        queued: Callable[[list[Message]], Awaitable[None]],
    ) -> None:
        self.storage = storage
        self.known_contact = known_contact
        self.text_limit = text_limit
        self.queued = queued

    async def send(
        self, agent: Agent, contact_id: str, content: str, idempotency_key: str | None = None
    ) -> tuple[Message, bool]:
        """Store an agent's message to a contact as ``queued``; returns ``(message,
        created)``. A retry with the same ``idempotency_key`` returns the first
        message; the same key with a different request is a :class:`Conflict`."""
        contact = self.known_contact(contact_id) or await self.storage.contacts.get(contact_id)
        if contact is None:
            raise NotFound(f"No such contact: {contact_id}")
        limit = self.text_limit(contact.channel_id)
        if len(content) > limit:  # the channel's provider would refuse it
            raise ValidationError.of("content", f"at most {limit} characters on this channel")
        message, created = await self.storage.messages.insert_outbound(
            contact=contact, content=content, agent=agent, idempotency_key=idempotency_key
        )
        if not created and (message.contact_id, message.content) != (contact_id, content):
            raise Conflict("this Idempotency-Key was used for a different message")
        if created:
            await self.queued([message])
        return message, created
