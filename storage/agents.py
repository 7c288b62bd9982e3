"""The ``agents`` collection: the people who answer contacts."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.errors import DuplicateKey
from storage.records import new_id, to_record, utcnow


class AgentsRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db["agents"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("username", ASCENDING)], unique=True, name="username_unique"
        )

    async def create(
        self, username: str, password_hash: str, display_name: str = ""
    ) -> dict[str, Any]:
        """Insert an agent; :class:`DuplicateKey` if the username is taken."""
        now = utcnow()
        document = {
            "_id": new_id(),
            "username": username,
            "password_hash": password_hash,
            "display_name": display_name,
            "is_available": True,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            raise DuplicateKey(f"username {username!r} is taken") from None
        return to_record(document)  # type: ignore[return-value]

    async def get(self, agent_id: str) -> dict[str, Any] | None:
        return to_record(await self.collection.find_one({"_id": agent_id}))

    async def get_by_username(self, username: str) -> dict[str, Any] | None:
        return to_record(await self.collection.find_one({"username": username}))
