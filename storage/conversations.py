"""The ``conversations`` collection: one per contact, with its assignee and status.

A conversation's id is derived from its contact's, so a message knows its
conversation without a read. ``list_key`` is the id of its newest message (a
UUIDv7): lists sort by it, newest activity first, and one conditional write keeps
the preview of the newest message however writes interleave.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateMany, UpdateOne
from pymongo.asynchronous.cursor import AsyncCursor

from storage.assigned import FIELDS, AssignedIndex, Latest, newest_first
from storage.lists import Page, Position
from storage.models import (
    PREVIEW_CHARS,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    conversation_id,
)
from storage.pages import KEY, ONE_REPLY, PageReader, ReadPlan
from storage.records import (
    Collection,
    Database,
    Document,
    maybe,
    quick,
    update_returning,
    upsert_all,
    utcnow,
)
from storage.search import search_text, text_pattern, word_range, words

NONE = "none"  # the assignee filter for unassigned conversations
_READER = re.compile(r"[A-Za-z0-9_-]{1,64}")  # agents' and tokens' ids: UUIDs


def _preview(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "direction": message.direction.value,
        "content": message.content[:PREVIEW_CHARS],
        "status": message.status.value,
        "agent_id": message.agent_id,
        "auto_reply": message.auto_reply,
    }


@dataclass(frozen=True)
class Backlog:
    """One channel's open conversations now; ``since``: when the contact of the one
    waiting longest for an agent last wrote (None: nobody waits)."""

    channel_id: str
    open: int
    waiting: int
    since: datetime | None


@dataclass(frozen=True)
class Arrival:
    """Inbound messages of one conversation in one batch: how many, and the newest;
    ``assignee``, the agent to give it if nobody holds it (a new contact's)."""

    contact: Contact
    channel_name: str
    channel_type: str
    newest: Message
    count: int
    assignee: str | None = None
    bot: bool = False  # its channel has a bot: a new or reopened one goes to it first


class ConversationsRepository:
    def __init__(self, db: Database, pages: PageReader, *, sole_writer: bool = False) -> None:
        self.collection = db["conversations"]
        self.contacts = db["contacts"]  # whose word index a search looks up
        self.previews = quick(self.collection)  # what messages show: derived, rebuilt by the next
        self.pages = pages
        # The only process writing them knows each agent's (storage/assigned.py).
        self.assigned = AssignedIndex() if sole_writer else None

    async def ensure_indexes(self) -> None:
        c = self.collection
        # Newest activity first: of everything, of an assignee (or nobody), of an
        # assignee by status, of a status, of a channel. Waiting ones are
        # (assignee None, status open), oldest first.
        await c.create_index([(KEY, ASCENDING)], name=KEY)
        await c.create_index(
            [("assignee_id", ASCENDING), ("status", ASCENDING), (KEY, ASCENDING)],
            name="assignee_status_key",
        )
        await c.create_index([("assignee_id", ASCENDING), (KEY, ASCENDING)], name="assignee_key")
        await c.create_index([("status", ASCENDING), (KEY, ASCENDING)], name="status_key")
        await c.create_index([("channel_id", ASCENDING), (KEY, ASCENDING)], name="channel_key")
        await c.create_index(
            [("channel_id", ASCENDING), ("status", ASCENDING), (KEY, ASCENDING)],
            name="channel_status_key",
        )

    async def arrived(self, arrivals: list[Arrival]) -> list[Conversation]:
        """Record inbound messages in bulk: each conversation is created or reopened,
        counts them unread, and shows the newest as its preview. Returns them after.

        One pipeline update per conversation (the embedded server pays ~1 ms for each
        statement on this collection, most of it rewriting the six index entries): the
        stage reads the stored ``list_key``, so the preview and reopening apply only
        where this batch's message is the newest, and a later one written by another
        gateway meanwhile keeps its preview."""
        if not arrivals:
            return []
        now = utcnow()
        ids = [conversation_id(a.contact.id) for a in arrivals]
        writes = [
            UpdateOne({"_id": cid}, [_arrival(a, now)], upsert=True)
            for cid, a in zip(ids, arrivals, strict=True)
        ]
        with self._assigning():
            await upsert_all(self.previews, writes)  # two gateways may create one at once
            written = await self._written(self.collection.find({"_id": {"$in": ids}}))
        self.pages.newest.wrote(self.collection.name, [a.newest.id for a in arrivals])
        by_id = {d["_id"]: d for d in written}
        return [Conversation.of(by_id[i]) for i in ids if i in by_id]

    async def sent(self, messages: list[Message]) -> dict[str, str | None]:
        """Outbound messages were queued: each is its conversation's newest. Returns
        the conversations' assignees by id."""
        writes = [
            UpdateOne(
                {"_id": m.conversation_id, KEY: {"$lt": m.id}},
                {
                    "$set": {
                        KEY: m.id,
                        "last_message": _preview(m),
                        "last_message_at": m.created_at,
                        "updated_at": utcnow(),
                    }
                },
            )
            for m in messages
        ]
        if not writes:
            return {}
        await self.previews.bulk_write(writes, ordered=True)
        self.pages.newest.wrote(self.collection.name, [m.id for m in messages])
        return await self.assignees([m.conversation_id for m in messages])

    async def assignees(self, ids: list[str]) -> dict[str, str | None]:
        fields = FIELDS if self.assigned is not None else {"assignee_id": 1}
        found = self.collection.find({"_id": {"$in": ids}}, projection=fields)
        return {d["_id"]: d.get("assignee_id") for d in await self._written(found)}

    async def _written(self, found: AsyncCursor[Document]) -> list[Document]:
        """Conversations just written, read back: the agents' index learns them."""
        documents = await found.to_list()
        if self.assigned is not None:
            for document in documents:
                self.assigned.put(document)
        return documents

    async def message_changed(self, messages: list[Message]) -> None:
        """Keep the preview's status when a previewed message's status changes."""
        writes = [
            UpdateOne(
                {"_id": conversation_id(m.contact_id), "last_message.id": m.id},
                {"$set": {"last_message.status": m.status.value}},
            )
            for m in messages
        ]
        if writes:
            await self.previews.bulk_write(writes, ordered=False)
        if self.assigned is not None:
            for m in messages:
                self.assigned.status_changed(conversation_id(m.contact_id), m.id, m.status.value)

    async def get(self, conversation_id_: str) -> Conversation | None:
        document = await self.collection.find_one({"_id": conversation_id_})
        return maybe(Conversation.of, document)

    async def get_many(self, ids: list[str]) -> list[Conversation]:
        found = self.collection.find({"_id": {"$in": ids}})
        by_id = {d["_id"]: Conversation.of(d) async for d in found}
        return [by_id[i] for i in ids if i in by_id]

    async def list_page(
        self,
        after: Position | None,
        limit: int,
        *,
        assignee: str | None = None,
        status: ConversationStatus | None = None,
        channel_id: str | None = None,
        q: str = "",
        label: str | None = None,
    ) -> Page[Conversation]:
        """Newest activity first; ``assignee`` is an agent's id or :data:`NONE`; ``q``
        finds contacts by the starts of the words of their name, username or provider
        id (storage/search.py).

        Each filter alone and assignee with status ride an index; other combinations
        and ``q`` walk the newest activity first (storage/pages.py). Where that finds
        less than a page, a search alone (or in a channel) looks the words up in the
        contacts' index and their conversations by id, in one aggregation."""
        query: dict[str, Any] = {}
        if assignee is not None:
            query["assignee_id"] = None if assignee == NONE else assignee
        if status is not None:
            query["status"] = str(status)
        if channel_id is not None:
            query["channel_id"] = channel_id
        if label is not None:  # no index: one per label would be work at every write
            query["labels"] = label
        wanted = words(q)
        if wanted:
            query["search"] = text_pattern(wanted)
        lookup = None
        if wanted and assignee is None and status is None:
            lookup = functools.partial(self._found_by_words, wanted, channel_id)
        holds_a_page = None
        agent = query.get("assignee_id")
        if (
            self.assigned is not None
            and agent
            and channel_id
            and not (after or status or wanted or label)
        ):
            # No index has both: the agent's conversations, in memory, bound the window,
            # or are few enough to read by id.
            mine = [c for c in await self.activity_of(agent) if c.channel_id == channel_id]
            if len(mine) > limit:
                holds_a_page = mine[limit].key
            else:
                ids = [conversation_id(c.contact_id) for c in mine]
                found = self.collection.find({**query, "_id": {"$in": ids}}).sort(KEY, DESCENDING)
                return Page([Conversation.of(d) for d in await found.to_list()], None)
        # The text is checked in every document a window holds: not covered.
        plan = ReadPlan(covered=not (wanted or label), lookup=lookup, holds_a_page=holds_a_page)
        return await self.pages.fetch(self.collection, Conversation.of, query, after, limit, plan)

    async def _found_by_words(
        self, wanted: list[str], channel_id: str | None, upper: str | None, limit: int
    ) -> list[Document]:
        """The conversations of contacts with ``wanted`` words, newest first, below
        ``upper``: the contacts' word index selects them, so this reads only those."""
        contacts: dict[str, Any] = {"words": word_range(wanted)}
        if channel_id is not None:
            contacts["channel_id"] = channel_id
        conversations: dict[str, Any] = {"search": text_pattern(wanted)}
        if upper is not None:
            conversations[KEY] = {"$lt": upper}
        found = await self.contacts.aggregate(
            [
                {"$match": contacts},
                {
                    "$lookup": {
                        "from": self.collection.name,
                        "localField": "conversation_id",
                        "foreignField": "_id",
                        "as": "conversation",
                    }
                },
                {"$unwind": "$conversation"},
                {"$replaceRoot": {"newRoot": "$conversation"}},
                {"$match": conversations},
                {"$sort": {KEY: DESCENDING}},
                {"$limit": limit + 1},
            ]
        )
        return await found.to_list()

    async def activity_of(self, assignee_id: str) -> list[Latest]:
        """Every conversation assigned to the agent by its newest message, newest first:
        from memory once read, where this process is the only writer."""

        async def read() -> list[Document]:
            found = self.collection.find({"assignee_id": assignee_id}, projection=FIELDS)
            return await found.batch_size(ONE_REPLY).to_list()  # one reply, not 101 and more

        if self.assigned is not None:
            return await self.assigned.activity_of(assignee_id, read)
        return newest_first(Latest.of(d) for d in await read())

    async def backlog(self) -> list[Backlog]:
        """Each channel's open conversations, how many of them nobody holds, and when
        the longest waiting of those last heard from its contact: one aggregation over
        the open conversations (the status index selects them)."""
        unassigned = {"$eq": [{"$ifNull": ["$assignee_id", None]}, None]}
        found = await self.collection.aggregate(
            [
                {"$match": {"status": ConversationStatus.OPEN.value}},
                {
                    "$group": {
                        "_id": "$channel_id",
                        "open": {"$sum": 1},
                        "waiting": {"$sum": {"$cond": [unassigned, 1, 0]}},
                        "since": {"$min": {"$cond": [unassigned, "$last_inbound_at", None]}},
                    }
                },
            ]
        )
        return [
            Backlog(str(d["_id"]), int(d["open"]), int(d["waiting"]), d.get("since"))
            async for d in found
        ]

    async def waiting(self, limit: int, agents: list[str] | None = None) -> list[Conversation]:
        """Open conversations nobody is assigned, the longest waiting first; given
        ``agents``, only those one of them may take (not all of them gave it back)."""
        query: dict[str, Any] = {"assignee_id": None, "status": "open"}
        if agents:
            query["declined_by"] = {"$not": {"$all": agents}}
        found = self.collection.find(query).sort(KEY, ASCENDING).limit(limit)
        return [Conversation.of(d) async for d in found]

    async def assign(self, pairs: list[tuple[str, str | None]], *, only_unassigned: bool) -> None:
        """Give each conversation ``(id, agent id or None)``; with ``only_unassigned``,
        only those nobody holds (another gateway may have been faster)."""
        now = utcnow()

        def offered(agent_id: str | None) -> dict[str, Any]:  # to one who did not give it back
            return {"assignee_id": None, "declined_by": {"$ne": agent_id}}

        writes = [
            UpdateOne(
                {"_id": cid, **(offered(agent_id) if only_unassigned else {})},
                {
                    "$set": {"assignee_id": agent_id, "assigned_at": now, "updated_at": now},
                    "$inc": {"version": 1},
                    **({"$unset": {"declined_by": ""}} if agent_id is not None else {}),
                },
            )
            for cid, agent_id in pairs
        ]
        if writes:
            with self._assigning():
                await self.collection.bulk_write(writes, ordered=False)
                await self._reread([cid for cid, _ in pairs])

    async def to_queue(self, conversation_id_: str, given_back_by: str | None) -> None:
        """Back to the queue; ``given_back_by`` (who held it) is not offered it again
        until someone else takes it or it is resolved."""
        now = utcnow()
        change: dict[str, Any] = {
            "$set": {"assignee_id": None, "assigned_at": now, "updated_at": now},
            "$inc": {"version": 1},
        }
        if given_back_by is not None:
            change["$addToSet"] = {"declined_by": given_back_by}
        with self._assigning():
            await self.collection.update_one({"_id": conversation_id_}, change)
            await self._reread([conversation_id_])

    async def open_of(self, agent_id: str) -> list[Conversation]:
        """The agent's conversations that are not resolved."""
        found = self.collection.find({"assignee_id": agent_id, "status": {"$ne": "resolved"}})
        return [Conversation.of(d) async for d in found]

    async def release(self, ids: list[str], agent_id: str) -> None:
        """Back to the queue: those of ``ids`` the agent still holds."""
        if not ids:
            return
        with self._assigning():
            await self.collection.bulk_write(
                [
                    UpdateMany(
                        {"_id": {"$in": ids}, "assignee_id": agent_id},
                        {
                            "$set": {"assignee_id": None, "updated_at": utcnow()},
                            "$inc": {"version": 1},
                        },
                    )
                ]
            )
            await self._reread(ids)

    @contextlib.contextmanager
    def _assigning(self) -> Iterator[None]:
        """Around a write that may change assignees: if it, or reading it back, fails,
        the agents' index cannot tell what it did, and starts afresh."""
        try:
            yield
        except BaseException:
            if self.assigned is not None:
                self.assigned.lost()
            raise

    async def _reread(self, ids: list[str]) -> None:
        """Assignments changed: read them back for the agents' index, if there is one."""
        if self.assigned is not None:
            found = self.collection.find({"_id": {"$in": ids}}, projection=FIELDS)
            await self._written(found)

    async def update(self, conversation_id_: str, changes: dict[str, Any]) -> Conversation | None:
        changed = {"$set": {**changes, "updated_at": utcnow()}, "$inc": {"version": 1}}
        return await self._change_one({"_id": conversation_id_}, changed)

    async def _change_one(
        self, query: dict[str, Any], change: dict[str, Any] | list[dict[str, Any]]
    ) -> Conversation | None:
        """One conversation after ``change``, if ``query`` matched; the agents' index
        learns it."""
        with self._assigning():
            document = await update_returning(self.collection, query, change)
        if document is not None and self.assigned is not None:
            self.assigned.put(document)
        return maybe(Conversation.of, document)

    async def handoff(
        self, conversation_id_: str, reason: str, to: str | None = None
    ) -> Conversation | None:
        """From its bot to the agents (to ``to``, or the queue), if a bot holds it;
        None if not (an agent took it, or another gateway handed it off first)."""
        now = utcnow()
        changes = {
            "status": ConversationStatus.OPEN.value,
            "assignee_id": to,
            "handoff_reason": reason,
            "updated_at": now,
            **({"assigned_at": now} if to is not None else {}),
        }
        held = {"_id": conversation_id_, "status": ConversationStatus.BOT.value}
        return await self._change_one(held, {"$set": changes, "$inc": {"version": 1}})

    async def held_by_bot(self, channel_ids: list[str], limit: int) -> list[Conversation]:
        """Conversations of these channels their bot holds."""
        query = {"status": ConversationStatus.BOT.value, "channel_id": {"$in": channel_ids}}
        return [Conversation.of(d) async for d in self.collection.find(query).limit(limit)]

    async def bot_silent(self, since: datetime, limit: int) -> list[Conversation]:
        """Held by a bot, whose contact wrote last, before ``since``: the bot has not
        answered in time."""
        found = self.collection.find(
            {
                "status": ConversationStatus.BOT.value,
                "last_message.direction": Direction.IN.value,
                "last_inbound_at": {"$lt": since},
            }
        ).limit(limit)
        return [Conversation.of(d) async for d in found]

    async def read(self, conversation_id_: str, reader: str, at: datetime) -> Conversation | None:
        """``reader`` (an agent's or a token's id) has read every inbound message so
        far: nobody else's unread count changes."""
        if not _READER.fullmatch(reader):  # a field name: never a path or an operator
            raise ValueError(f"not a reader's id: {reader!r}")
        mark = f"read_by.{reader}"
        seen = {"$max": [{"$ifNull": ["$" + mark, 0]}, {"$ifNull": ["$inbound_count", 0]}]}
        stage = {"$set": {mark: seen, "read_at": at, "updated_at": utcnow(),
                          "version": {"$add": [{"$ifNull": ["$version", 0]}, 1]}}}  # fmt: skip
        return await self._change_one({"_id": conversation_id_}, [stage])  # a pipeline

    async def counts(self, agent_id: str) -> dict[str, int]:
        """How many conversations each of the inbox's lists holds for ``agent_id``:
        theirs open, the queue, pending, the bots'; each rides an index."""
        count = self.collection.count_documents
        return {
            "mine": await count({"assignee_id": agent_id, "status": "open"}),
            "unassigned": await count({"assignee_id": None, "status": "open"}),
            "pending": await count({"status": "pending"}),
            "bot": await count({"status": "bot"}),
        }

    async def labels(self, limit: int = 200) -> list[tuple[str, int, int]]:
        """Each label in use: its conversations and its open ones, most used first."""
        rows = await self.collection.aggregate([
            {"$match": {"labels.0": {"$exists": True}}},
            {"$unwind": "$labels"},
            {"$group": {
                "_id": "$labels",
                "conversations": {"$sum": 1},
                "open": {"$sum": {"$cond": [{"$eq": ["$status", "open"]}, 1, 0]}},
            }},
            {"$sort": {"conversations": -1, "_id": 1}},
            {"$limit": limit},
        ])  # fmt: skip
        return [(r["_id"], r["conversations"], r["open"]) async for r in rows]

    @staticmethod
    async def count_inbound(collection: Collection) -> None:
        """Conversations of one ``unread`` count for everyone: it becomes their
        ``inbound_count``, which nobody has read yet (a schema step). Idempotent."""
        await collection.update_many(
            {"unread": {"$exists": True}},
            [
                {
                    "$set": {
                        "inbound_count": {"$add": [{"$ifNull": ["$inbound_count", 0]}, "$unread"]}
                    }
                },
                {"$unset": "unread"},
            ],
        )


def _status(a: Arrival, newest: dict[str, Any]) -> dict[str, Any]:
    """A newer message reopens the conversation: for the agents, or, on a channel with
    a bot, for the bot, unless agents hold it already (open or pending)."""
    if not a.bot:
        return {"status": {"$cond": [newest, "open", "$status"]}}
    stored = {"$ifNull": ["$status", ConversationStatus.RESOLVED.value]}
    to_bot = {"$and": [newest, {"$in": [stored, ["resolved", "bot"]]}]}
    agents = {"$cond": [newest, "open", "$status"]}
    return {
        "status": {"$cond": [to_bot, "bot", agents]},
        "handoff_reason": {"$cond": [to_bot, None, {"$ifNull": ["$handoff_reason", None]}]},
    }


def _arrival(a: Arrival, now: datetime) -> dict[str, Any]:
    """The update stage for :meth:`ConversationsRepository.arrived`. Every value from
    outside is a ``$literal``: a contact named ``$x`` is not a field path.
    https://www.mongodb.com/docs/manual/tutorial/update-documents-with-aggregation-pipeline/
    """
    key = a.newest.id
    newest = {"$lt": [{"$ifNull": ["$" + KEY, ""]}, key]}  # the stored key, before this stage

    def kept(field: str, value: Any) -> dict[str, Any]:  # $setOnInsert, in a pipeline
        return {"$ifNull": ["$" + field, {"$literal": value}]}

    assignment: dict[str, Any] = {"assignee_id": kept("assignee_id", None)}
    if a.assignee is not None:  # to one who did not give it back (storage: to_queue)
        declined = {"$in": [a.assignee, {"$ifNull": ["$declined_by", []]}]}
        given = {"$and": [newest, {"$eq": [kept("assignee_id", None), None]}, {"$not": declined}]}
        assignment = {
            "assignee_id": {"$cond": [given, {"$literal": a.assignee}, kept("assignee_id", None)]},
            "assigned_at": {"$cond": [given, now, "$assigned_at"]},
        }
    return {
        "$set": {
            "contact_id": kept("contact_id", a.contact.id),
            "channel_id": kept("channel_id", a.contact.channel_id),
            "channel": kept("channel", {"name": a.channel_name, "type": a.channel_type}),
            **assignment,
            "created_at": kept("created_at", now),
            "contact": {
                "$literal": {
                    "id": a.contact.id,
                    "external_id": a.contact.external_id,
                    "name": a.contact.name,
                }
            },
            "search": {"$literal": search_text(a.contact.words)},
            "updated_at": now,
            "version": {"$add": [{"$ifNull": ["$version", 0]}, 1]},  # storage/assigned.py
            "inbound_count": {"$add": [{"$ifNull": ["$inbound_count", 0]}, a.count]},
            "last_message": {"$cond": [newest, {"$literal": _preview(a.newest)}, "$last_message"]},
            **_status(a, newest),
            KEY: {"$cond": [newest, key, "$" + KEY]},
            "last_message_at": {"$max": ["$last_message_at", a.newest.created_at]},
            "last_inbound_at": {"$max": ["$last_inbound_at", a.newest.created_at]},
        }
    }
