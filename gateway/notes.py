"""Private notes: agents write in a conversation's thread for each other, and name a
colleague as ``@username`` to tell them (their inbox notifies them)."""

from __future__ import annotations

import re

from gateway.callers import Caller
from gateway.conversation_updates import ConversationUpdates
from gateway.errors import NotFound
from storage.agents import AgentsRepository
from storage.conversations import ConversationsRepository
from storage.lists import Page, Position
from storage.models import Note
from storage.notes import NotesRepository

MENTION = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9_.-]{0,63})", re.IGNORECASE)
MAX_MENTIONS = 10


class Notes:
    def __init__(
        self,
        notes: NotesRepository,
        conversations: ConversationsRepository,
        agents: AgentsRepository,
        updates: ConversationUpdates,
    ) -> None:
        self.notes, self.conversations, self.agents = notes, conversations, agents
        self.updates = updates

    async def write(self, conversation_id: str, content: str, by: Caller) -> Note:
        conversation = await self.conversations.get(conversation_id)
        if conversation is None:
            raise NotFound(f"No such conversation: {conversation_id}")
        note = await self.notes.create(
            conversation_id, by.ref, content, await self._mentioned(content)
        )
        await self.updates.noted(note, conversation.assignee_id)
        return note

    async def page(self, conversation_id: str, after: Position | None, limit: int) -> Page[Note]:
        if await self.conversations.get(conversation_id) is None:
            raise NotFound(f"No such conversation: {conversation_id}")
        return await self.notes.page_of(conversation_id, after, limit)

    async def _mentioned(self, content: str) -> list[str]:
        """The ids of the agents ``content`` names as @username; other @words are text."""
        names = list(dict.fromkeys(m.lower().rstrip(".") for m in MENTION.findall(content)))
        if not names:
            return []
        found = {a.username: a for a in await self.agents.named(names[:MAX_MENTIONS])}
        return [found[n].id for n in names if n in found and not found[n].disabled]
