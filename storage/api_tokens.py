"""The ``api_tokens`` collection: credentials of bots and other systems, by the hash
of their secret (the secret itself is never stored)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ASCENDING

from storage.lists import Page, Position
from storage.models import ApiToken, Scope, TokenRole
from storage.pages import KEY, PageReader
from storage.records import Database, maybe, new_id, utcnow


class ApiTokensRepository:
    def __init__(self, db: Database, pages: PageReader) -> None:
        self.collection = db["api_tokens"]
        self.pages = pages

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("secret_hash", ASCENDING)], unique=True, name="secret_hash_unique"
        )
        await self.collection.create_index([(KEY, ASCENDING)], name=KEY)

    async def create(
        self,
        name: str,
        role: TokenRole,
        scopes: frozenset[Scope],
        secret: tuple[str, str],
        created_by: str,
    ) -> ApiToken:
        """Store a token; ``secret`` is the hash of its secret and the hint shown."""
        now = utcnow()
        key = new_id(now)
        document = {
            "_id": key,
            KEY: key,
            "name": name,
            "role": role.value,
            "scopes": sorted(s.value for s in scopes),
            "secret_hash": secret[0],
            "hint": secret[1],
            "created_by": created_by,
            "created_at": now,
            "last_used_at": None,
        }
        await self.collection.insert_one(document)
        return ApiToken.of(document)

    async def by_secret_hash(self, secret_hash: str) -> ApiToken | None:
        return maybe(ApiToken.of, await self.collection.find_one({"secret_hash": secret_hash}))

    async def get(self, token_id: str) -> ApiToken | None:
        return maybe(ApiToken.of, await self.collection.find_one({"_id": token_id}))

    async def list_page(self, after: Position | None, limit: int) -> Page[ApiToken]:
        return await self.pages.fetch(self.collection, ApiToken.of, {}, after, limit)

    async def delete(self, token_id: str) -> bool:
        """Revoke: the token is gone, and every gateway refuses it at its next use."""
        return (await self.collection.delete_one({"_id": token_id})).deleted_count == 1

    async def used(self, token_id: str, at: datetime, every: timedelta) -> None:
        """Note a use at ``at``, unless one within ``every`` before it was noted: a
        busy bot costs a write a minute, not one a request."""
        stale = {"$or": [{"last_used_at": None}, {"last_used_at": {"$lt": at - every}}]}
        await self.collection.update_one({"_id": token_id, **stale}, {"$set": {"last_used_at": at}})
