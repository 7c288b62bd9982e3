"""Agents' outbound messages: validated, stored as queued, then handed to delivery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from gateway.errors import Conflict, NotFound, ValidationError, WindowClosed
from storage.database import Storage
from storage.models import Agent, Contact, Message
from storage.records import utcnow


def window_expires_at(contact: Contact, window: timedelta | None) -> datetime | None:
    """When free-form text stops reaching the contact, on a channel with a reply
    window (from their last message); None where there is none."""
    if window is None:
        return None
    return (contact.last_message_at or contact.created_at) + window


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
        reply_window: Callable[[str], timedelta | None] = lambda _: None,
        queued: Callable[[list[Message]], Awaitable[None]],
    ) -> None:
        self.storage = storage
        self.known_contact = known_contact
        self.text_limit = text_limit
        self.reply_window = reply_window
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
        closes = window_expires_at(contact, self.reply_window(contact.channel_id))
        if closes is not None and closes <= utcnow():
            raise WindowClosed(
                f"the contact last wrote over 24 hours ago: WhatsApp's window closed at "
                f"{closes.isoformat()}. Free-form text reaches them again once they write; "
                "until then only an approved template message does."
            )
        message, created = await self.storage.messages.insert_outbound(
            contact=contact, content=content, agent=agent, idempotency_key=idempotency_key
        )
        if not created and (message.contact_id, message.content) != (contact_id, content):
            raise Conflict("this Idempotency-Key was used for a different message")
        if created:
            await self.queued([message])
        return message, created
