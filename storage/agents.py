"""The ``agents`` collection: the people who answer contacts."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from storage.errors import DuplicateKey
from storage.lists import Page, Position
from storage.models import Agent, Role
from storage.pages import KEY, PageReader
from storage.records import Collection, Database, maybe, new_id, update_returning, utcnow

# Ended sign-ins: {family: when its last token expires}.
SIGNED_OUT = "signed_out"
_FAMILY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# How long an ended sign-in of an early version's list (which kept no dates) is still
# refused: longer than its refresh tokens live, unless auth.refresh_token_days > 366.
OLD_SIGN_INS_KEPT = timedelta(days=366)

# A mark that outlives every agent: once one existed, nobody bootstraps again.
_EVER = {"_id": "an agent was created"}


class AgentsRepository:
    def __init__(self, db: Database, pages: PageReader) -> None:
        self.collection = db["agents"]
        self.meta = db["meta"]
        self.pages = pages

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("username", ASCENDING)], unique=True, name="username_unique"
        )
        await self.collection.create_index([(KEY, ASCENDING)], name=KEY)
        await self.collection.create_index(
            [("is_available", ASCENDING), ("last_assigned_at", ASCENDING)], name="assignment"
        )
        # Only one agent can be created by bootstrapping, however many try at once.
        await self.collection.create_index(
            [("bootstrap", ASCENDING)],
            unique=True,
            partialFilterExpression={"bootstrap": True},
            name="bootstrap_once",
        )

    @staticmethod
    async def give_roles(collection: Collection) -> None:
        """Agents from before roles existed: the first one made (the installation's
        owner) is an admin, the others agents. Idempotent: only agents with no role
        (a schema step, storage/schema.py)."""
        if await collection.find_one({"role": {"$exists": False}}, {"_id": 1}) is None:
            return
        if await collection.find_one({"role": Role.ADMIN.value}, {"_id": 1}) is None:
            first = await collection.find({}, {"_id": 1}).sort(KEY, ASCENDING).to_list(1)
            if first:
                await collection.update_one(
                    {"_id": first[0]["_id"], "role": {"$exists": False}},
                    {"$set": {"role": Role.ADMIN.value}},
                )
        await collection.update_many(
            {"role": {"$exists": False}}, {"$set": {"role": Role.AGENT.value}}
        )

    @staticmethod
    async def date_ended_sign_ins(collection: Collection) -> None:
        """Agents whose ended sign-ins are the bare list an early version kept
        (``ended_sign_ins``): each becomes an entry of ``signed_out`` that lasts as
        long as the longest-lived refresh token could (a schema step). Idempotent."""
        until = utcnow() + OLD_SIGN_INS_KEPT
        async for agent in collection.find({"ended_sign_ins": {"$exists": True}}):
            ended = {
                f"{SIGNED_OUT}.{f}": until for f in agent["ended_sign_ins"] if _FAMILY.fullmatch(f)
            }
            change: dict[str, Any] = {"$unset": {"ended_sign_ins": ""}}
            if ended:  # an empty $set is an error
                change["$set"] = ended
            await collection.update_one({"_id": agent["_id"]}, change)

    async def create(
        self,
        username: str,
        password_hash: str,
        display_name: str = "",
        *,
        bootstrap: bool = False,
        role: Role = Role.AGENT,
    ) -> Agent:
        """Insert an agent; :class:`DuplicateKey` if the username is taken.

        ``bootstrap`` marks the first agent, created without credentials; a second
        bootstrap while it exists is a :class:`DuplicateKey` too.
        """
        now = utcnow()
        key = new_id(now)
        document: dict[str, Any] = {
            "_id": key,
            KEY: key,
            "username": username,
            "password_hash": password_hash,
            "display_name": display_name,
            "is_available": True,
            "role": role.value,
            "created_at": now,
            "updated_at": now,
        }
        if bootstrap:
            document["bootstrap"] = True
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            raise DuplicateKey(f"username {username!r} is taken") from None
        await self.meta.update_one(_EVER, {"$setOnInsert": {"at": now}}, upsert=True)
        return Agent.of(document)

    async def admins_besides(self, agent_id: str) -> int:
        """How many enabled admins there are other than ``agent_id``."""
        query = {"role": Role.ADMIN.value, "disabled": {"$ne": True}, "_id": {"$ne": agent_id}}
        return await self.collection.count_documents(query)

    async def available(self, limit: int = 1000) -> list[Agent]:
        """Available agents, the one given a conversation least recently first
        (never given one sorts first)."""
        found = (
            self.collection.find({"is_available": True, "disabled": {"$ne": True}})
            .sort("last_assigned_at", ASCENDING)
            .limit(limit)
        )
        return [Agent.of(d) async for d in found]

    async def mark_assigned(self, agent_ids: list[str], at: datetime) -> None:
        """These agents were just given conversations: they go to the back of the line."""
        if agent_ids:
            await self.collection.update_many(
                {"_id": {"$in": agent_ids}}, {"$set": {"last_assigned_at": at}}
            )

    async def ever_existed(self) -> bool:
        """Whether an agent was ever created here (deleted ones count)."""
        if await self.meta.find_one(_EVER) is not None:
            return True
        # Agents made by a version that kept no mark.
        return await self.collection.find_one({}, projection={"_id": 1}) is not None

    async def get(self, agent_id: str) -> Agent | None:
        return maybe(Agent.of, await self.collection.find_one({"_id": agent_id}))

    async def get_by_username(self, username: str) -> Agent | None:
        return maybe(Agent.of, await self.collection.find_one({"username": username}))

    async def named(self, usernames: list[str]) -> list[Agent]:
        """The agents of these usernames (one query; those unknown are left out)."""
        found = self.collection.find({"username": {"$in": usernames}})
        return [Agent.of(d) async for d in found]

    async def list_page(self, after: Position | None, limit: int) -> Page[Agent]:
        return await self.pages.fetch(self.collection, Agent.of, {}, after, limit)

    async def update(self, agent_id: str, changes: dict[str, Any]) -> Agent | None:
        changed = {"$set": {**changes, "updated_at": utcnow()}}
        return maybe(Agent.of, await update_returning(self.collection, {"_id": agent_id}, changed))

    async def end_sign_in(self, agent_id: str, family: str, until: datetime) -> None:
        """No token of the sign-in ``family`` is accepted until ``until``, when the last
        of them expires, however many sign-ins end meanwhile. Entries past their time
        are dropped here, so the list holds only what could still be presented."""
        if not _FAMILY.fullmatch(family):  # ours are UUIDs: safe in a field path
            raise ValueError(f"not a sign-in id: {family!r}")
        changed = await update_returning(
            self.collection, {"_id": agent_id}, {"$set": {f"{SIGNED_OUT}.{family}": until}}
        )
        now = utcnow()
        over = [f for f, t in ((changed or {}).get(SIGNED_OUT) or {}).items() if t <= now]
        if over:
            unset = {f"{SIGNED_OUT}.{f}": "" for f in over}  # written checked, above
            await self.collection.update_one({"_id": agent_id}, {"$unset": unset})

    async def delete(self, agent_id: str) -> bool:
        return (await self.collection.delete_one({"_id": agent_id})).deleted_count == 1
