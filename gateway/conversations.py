"""Agents' conversations: finding them, changing their status, reading them, and
the messages of one or of an agent's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.assignment import Assigner
from gateway.bot_lane import BotLane
from gateway.callers import Caller
from gateway.conversation_updates import ConversationUpdates
from gateway.errors import NotFound, ValidationError
from storage.database import Storage
from storage.lists import Page, Position
from storage.messages import MessageFilters
from storage.models import Conversation, ConversationStatus, Message
from storage.records import utcnow

ME = "me"


def label_of(text: str) -> str:
    """A label as it is kept and looked for: trimmed, single-spaced, in lower case."""
    return " ".join(text.split()).lower()


def me_or(me: Caller, assignee: str | None) -> str | None:
    """``assignee``, with ``me`` read as the caller's own id: an agent's; an API
    token holds no conversations, so it names an agent instead."""
    if assignee != ME:
        return assignee
    if me.agent is None:
        raise ValidationError("an API token holds no conversations: name an agent's id, not me")
    return me.agent.id


class Conversations:
    def __init__(
        self, storage: Storage, updates: ConversationUpdates, assigner: Assigner, bots: BotLane
    ) -> None:
        self.storage = storage
        self.updates = updates
        self.assigner = assigner
        self.bots = bots

    async def list_page(
        self,
        me: Caller,
        after: Position | None,
        limit: int,
        *,
        assignee: str | None = None,
        status: ConversationStatus | None = None,
        channel_id: str | None = None,
        q: str | None = None,
        label: str | None = None,
    ) -> Page[Conversation]:
        """Newest activity first; ``assignee`` is ``me``, ``none`` (the queue, as
        storage.conversations.NONE) or an agent's id."""
        return await self.storage.conversations.list_page(
            after,
            limit,
            assignee=me_or(me, assignee),
            status=status,
            channel_id=channel_id,
            q=q or "",
            label=label_of(label) if label else None,
        )

    async def get(self, conversation_id: str) -> Conversation:
        found = await self.storage.conversations.get(conversation_id)
        if found is None:
            raise NotFound(f"No such conversation: {conversation_id}")
        return found

    async def change(
        self, conversation_id: str, *, status: ConversationStatus | None = None,
        assignee: str | None = None, transfer: bool = False, by: str = "",
        labels: list[str] | None = None,
    ) -> Conversation:  # fmt: skip
        """Set the status, the ``labels``, and with ``transfer`` the assignee (None: the
        queue). A conversation its bot holds goes to the agents first (``by`` took it)."""
        if status is None and not transfer and labels is None:
            raise ValidationError("nothing to change: send status, assignee_id or labels")
        if status is ConversationStatus.BOT:  # refused before anything is written
            raise ValidationError.of("status", "bot is where its channel's bot puts it")
        if labels is not None:
            labelled = await self._label(conversation_id, labels)
            if status is None and not transfer:
                return labelled
        current = await self.get(conversation_id)
        taken = transfer or status in (ConversationStatus.OPEN, ConversationStatus.PENDING)
        if current.status is ConversationStatus.BOT and taken:
            to = assignee if transfer else None
            current = await self.bots.handoff(conversation_id, f"taken over by {by}", to)
            transfer = False
        if transfer:
            current = await self.assigner.transfer(conversation_id, assignee)
        if status is not None and status != current.status:
            changed = await self.storage.conversations.update(
                conversation_id,
                # Resolved: whoever gave it back may be offered it when it reopens.
                {
                    "status": status.value,
                    **({"declined_by": []} if status is ConversationStatus.RESOLVED else {}),
                },
            )
            if changed is None:
                raise NotFound(f"No such conversation: {conversation_id}")
            await self.updates.conversations_changed([changed])
            current = changed
            if status is ConversationStatus.OPEN and current.assignee_id is None:
                self.assigner.nudge()
        return current

    async def _label(self, conversation_id: str, labels: list[str]) -> Conversation:
        """Its labels become ``labels``, each as :func:`label_of` keeps it, once."""
        kept = list(dict.fromkeys(label_of(label) for label in labels))
        changed = await self.storage.conversations.update(conversation_id, {"labels": kept})
        if changed is None:
            raise NotFound(f"No such conversation: {conversation_id}")
        await self.updates.conversations_changed([changed])
        return changed

    async def labels(self) -> list[tuple[str, int, int]]:
        return await self.storage.conversations.labels()

    async def counts(self, me: Caller) -> dict[str, int]:
        return await self.storage.conversations.counts(me.id)

    async def read(
        self, conversation_id: str, reader: str, at: datetime | None = None
    ) -> Conversation:
        """``reader`` read it: nothing is unread for them, and for the others as before."""
        await self.get(conversation_id)
        read = await self.storage.conversations.read(conversation_id, reader, at or utcnow())
        if read is None:
            raise NotFound(f"No such conversation: {conversation_id}")
        await self.updates.conversations_changed([read])
        return read

    async def messages_page(
        self, after: Position | None, limit: int, **filters: Any
    ) -> Page[Message]:
        """Messages, newest first, narrowed by the API's filters
        (storage.messages.MessageFilters: how a page is read is storage's business)."""
        return await self.storage.messages.list_page(after, limit, MessageFilters(**filters))
