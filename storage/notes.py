"""The ``notes`` collection: what agents write in a thread for each other.

Apart from the messages, so that nothing that reads messages (the outbox, the
unread counts, the message filters, the FAQ suggestions) can take one for a message
to or from a contact. They expire with the messages.
"""

from __future__ import annotations

from pymongo import ASCENDING

from storage.lists import Page, Position
from storage.models import AgentRef, Note
from storage.pages import KEY, PageReader
from storage.records import Database, ensure_expiry, new_id, utcnow


class NotesRepository:
    def __init__(self, db: Database, pages: PageReader) -> None:
        self.collection = db["notes"]
        self.pages = pages
        self.retention_seconds = 0

    async def ensure_indexes(self, retention_seconds: int, *, server_expires: bool) -> None:
        self.retention_seconds = retention_seconds
        await self.collection.create_index([(KEY, ASCENDING)], name=KEY)  # expiry walks it
        await self.collection.create_index(
            [("conversation_id", ASCENDING), (KEY, ASCENDING)], name="conversation_key"
        )
        await ensure_expiry(
            self.collection, retention_seconds, server_expires=server_expires, by_key=True
        )

    async def create(
        self, conversation_id: str, agent: AgentRef, content: str, mentions: list[str]
    ) -> Note:
        now = utcnow()
        key = new_id(now)
        document = {"_id": key, KEY: key, "conversation_id": conversation_id,
                    "agent": agent.stored(), "content": content, "mentions": mentions,
                    "created_at": now}  # fmt: skip
        await self.collection.insert_one(document)
        return Note.of(document)

    async def page_of(self, conversation_id: str, after: Position | None, limit: int) -> Page[Note]:
        """A conversation's notes, newest first."""
        query = {"conversation_id": conversation_id}
        return await self.pages.fetch(self.collection, Note.of, query, after, limit)
