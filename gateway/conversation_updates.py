"""What happens to conversations as messages come and go: their previews, unread
counts and status, and the events agents' streams show for each change.

Inbound messages are recorded before their webhook is answered. Outbound ones are
handed to delivery at once, and their updates (the preview, ``message.created``,
then each ``message.updated``) are recorded after, in order, by one writer that
writes what piles up meanwhile together: the send path costs no extra round trip. A
gateway that crashes in between loses those updates, never a message.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

import pymongo

from gateway.bus import AssignmentsMade, Bus, ConversationsWaiting
from gateway.events import Entry, EventLog
from gateway.group_commit import GroupCommit
from gateway.lane import BACKGROUND_TIMEOUT_SECONDS
from storage.conversations import Arrival
from storage.database import Storage
from storage.models import Conversation, EventType, Message, Note, conversation_id

log = logging.getLogger("gateway.conversation_updates")

QUEUED, CHANGED = "queued", "changed"


class ConversationUpdates:
    """Records what messages change in their conversations, and the events of both."""

    def __init__(
        self,
        storage: Storage,
        events: EventLog,
        handoff: Callable[[list[Message]], None],
        bus: Bus,
    ) -> None:
        self.storage = storage
        self.events = events
        self.handoff = handoff  # queued messages to their channel's sender
        self.bus = bus  # told of conversations that wait, and of those given as they came
        # Each message's update in the order told; a write takes what piled up.
        self._pending = GroupCommit(self._write_pending, "conversation updates")

    async def received(self, arrivals: list[Arrival], messages: list[Message]) -> None:
        """Inbound messages were stored (before their webhook is answered)."""
        conversations = await self.storage.conversations.arrived(arrivals)
        proposed = {conversation_id(a.contact.id): a.assignee for a in arrivals if a.assignee}
        given = [c for c in conversations if c.assignee_id and proposed.get(c.id) == c.assignee_id]
        if given:
            await self.bus.publish(AssignmentsMade(given))
        assignees = {c.id: c.assignee_id for c in conversations}
        entries: list[Entry] = [
            (EventType.MESSAGE_CREATED, assignees.get(m.conversation_id), m) for m in messages
        ]
        entries += [(EventType.CONVERSATION_UPDATED, c.assignee_id, c) for c in conversations]
        await self.events.append(entries)
        if any(c.assignee_id is None for c in conversations):
            await self.bus.publish(ConversationsWaiting())

    async def queued(self, messages: list[Message]) -> None:
        """Outbound messages were stored as queued: to delivery now, their updates after."""
        self.handoff(messages)
        self._tell(QUEUED, messages)

    async def changed(self, messages: list[Message]) -> None:
        """Messages' statuses changed (sent, delivered, read, failed)."""
        self._tell(CHANGED, messages)

    async def noted(self, note: Note, assignee_id: str | None) -> None:
        """An agent wrote a note in the thread of a conversation ``assignee_id`` holds."""
        await self.events.append([(EventType.NOTE_CREATED, assignee_id, note)])

    async def conversations_changed(self, conversations: list[Conversation]) -> None:
        """Assignment, status or unread changed."""
        await self.events.append(
            [(EventType.CONVERSATION_UPDATED, c.assignee_id, c) for c in conversations]
        )

    async def drain(self, within: float) -> None:
        """Wait (at shutdown) for the updates told so far to be written."""
        await self._pending.drain(within)

    def _tell(self, kind: str, messages: list[Message]) -> None:
        self._pending.add((kind, m) for m in messages)

    async def _write_pending(self, pending: list[tuple[str, Message]]) -> None:
        """What piled up, one write for each run of one kind, in the order told."""
        for kind, run in itertools.groupby(pending, key=lambda told: told[0]):
            messages = [m for _, m in run]
            try:
                with pymongo.timeout(BACKGROUND_TIMEOUT_SECONDS):
                    await self._write(kind, messages)
            except Exception as exc:  # the messages are stored; only their updates are lost
                log.warning("updates of %d messages not written (%s)", len(messages),
                            type(exc).__name__)  # fmt: skip

    async def _write(self, kind: str, messages: list[Message]) -> None:
        conversations = self.storage.conversations
        ids = list(dict.fromkeys(m.conversation_id for m in messages))
        if kind == QUEUED:
            assignees = await conversations.sent(messages)
            type_ = EventType.MESSAGE_CREATED
        else:
            await conversations.message_changed(messages)
            assignees = await conversations.assignees(ids)
            type_ = EventType.MESSAGE_UPDATED
        await self.events.append([(type_, assignees.get(m.conversation_id), m) for m in messages])
