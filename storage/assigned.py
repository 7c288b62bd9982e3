"""Each agent's conversations, kept in memory by the only process that writes them.

An agent's messages (``?assignee_id=``) are those of the agent's conversations, so a
page first needs them all. The embedded server decodes each whole document it
reads, so reading an agent's 400 conversations took ~35 ms of a ~60 ms page
(200,000 messages, measured), the page the target allows ~30 ms. No projection
or index helps it (a hinted index-only projection took longer). But its data dir
admits one gateway (storage/embedded.py), so that gateway sees every write to
the conversations: it reads an agent's once, on the agent's first such page, and
then follows its own writes.

Every write that can change a conversation's assignee also increments its
``version`` and reads the conversation back (``put``). Replies to two writes of one
conversation may come back in either order, so a reply older than what is known
is dropped (an assignee) or merged (a newer preview). The previews' statuses are
a hint here as in the database (storage/conversations.py): they bound a page's
window, never what is on it.

Held: ``(assignee, version)`` of each conversation this process saw written, and
the newest message of those whose agent was looked up (~200 bytes each).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from storage.records import KEY, Document

# What :meth:`AssignedIndex.put` reads of a conversation.
FIELDS = {
    "contact_id": 1,
    "channel_id": 1,
    "assignee_id": 1,
    "version": 1,
    KEY: 1,
    "last_message": 1,
}


@dataclass(frozen=True)
class Latest:
    """A conversation's contact and newest message: its key and what it shows, which
    tell a message filter that the conversation has a match there."""

    contact_id: str
    key: str
    shown: dict[str, Any]
    channel_id: str = ""

    @classmethod
    def of(cls, document: Document) -> Latest:
        shown = document.get("last_message") or {}
        return cls(document["contact_id"], document[KEY], shown, document.get("channel_id", ""))

    def matches(self, fields: dict[str, str]) -> bool:
        return all(self.shown.get(name) == value for name, value in fields.items())


def newest_first(latest: Iterable[Latest | None]) -> list[Latest]:
    return sorted((h for h in latest if h is not None), key=lambda h: h.key, reverse=True)


@dataclass
class _Known:
    assignee: str | None
    version: int
    latest: Latest | None  # kept while the assignee is looked up


class AssignedIndex:
    def __init__(self) -> None:
        self._known: dict[str, _Known] = {}
        self._of: dict[str, set[str]] = {}  # an agent looked up: their conversations' ids
        self._ready: set[str] = set()  # the agents whose lookup is complete
        self._lookups: dict[str, asyncio.Lock] = {}
        self._lost = 0  # how many times everything was forgotten

    async def activity_of(
        self, agent_id: str, read: Callable[[], Awaitable[list[Document]]]
    ) -> list[Latest]:
        """The agent's conversations by their newest message, newest first; ``read``
        finds them in the database the first time."""
        if agent_id not in self._ready:
            async with self._lookups.setdefault(agent_id, asyncio.Lock()):
                if agent_id not in self._ready:
                    return await self._look_up(agent_id, read)
        return newest_first(self._known[c].latest for c in self._of[agent_id])

    async def _look_up(
        self, agent_id: str, read: Callable[[], Awaitable[list[Document]]]
    ) -> list[Latest]:
        self._of.setdefault(agent_id, set())  # what is written meanwhile counts
        lost = self._lost
        try:
            documents = await read()
        except BaseException:
            self._forget(agent_id)
            raise
        if self._lost != lost:  # the writes meanwhile are unknown: the read is all we have
            return newest_first(Latest.of(d) for d in documents)
        for document in documents:
            self.put(document)
        self._ready.add(agent_id)
        return newest_first(self._known[c].latest for c in self._of[agent_id])

    def _forget(self, agent_id: str) -> None:
        self._ready.discard(agent_id)
        for cid in self._of.pop(agent_id, set()):
            self._known[cid].latest = None

    def lost(self) -> None:
        """A write's outcome is unknown (it, or its reading back, failed): forget all,
        and look each agent up again."""
        self._lost += 1
        self._known.clear()
        self._of.clear()
        self._ready.clear()

    def put(self, document: Document) -> None:
        """A conversation as the database returned it (at least :data:`FIELDS`)."""
        cid, version = document["_id"], document.get("version", 0)
        assignee: str | None = document.get("assignee_id")
        latest = Latest.of(document)
        known = self._known.get(cid)
        if known is not None:
            if known.latest is not None and latest.key <= known.latest.key:
                latest = known.latest  # the newer preview, or one updated here since
            if version < known.version:  # an older reply: its assignee is out of date
                known.latest = latest if known.latest is not None else None
                return
            if known.assignee != assignee and known.assignee in self._of:
                self._of[known.assignee].discard(cid)
        watched = assignee is not None and assignee in self._of
        self._known[cid] = _Known(assignee, version, latest if watched else None)
        if assignee is not None and watched:
            self._of[assignee].add(cid)

    def status_changed(self, cid: str, message_id: str, status: str) -> None:
        """A message's status changed; the preview shows it if it is that message."""
        known = self._known.get(cid)
        latest = known.latest if known is not None else None
        if known is not None and latest is not None and latest.shown.get("id") == message_id:
            known.latest = replace(latest, shown={**latest.shown, "status": status})
