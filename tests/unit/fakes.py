"""In-memory stand-ins for what the scheduler calls: a clock that moves only when told,
an outbox, a channel that answers as scripted, and repositories of agents and
conversations. They keep the rules of the real ones that the scheduler relies on
(claims by token, conditional assignment), and nothing else."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from channels.base import SendError
from gateway.clock import Clock
from storage.models import Agent, Conversation
from storage.outbox import Claim, Outcome, Unsent

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


async def until(condition: Any) -> None:
    """Let other tasks run until ``condition()`` holds: no clock, only turns."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


class FakeClock(Clock):
    """Both of a clock's readings, moved together by :meth:`advance`."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.wall = START

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.wall += timedelta(seconds=seconds)


_ids = itertools.count(1)


def unsent(contact: str, clock: FakeClock, *, attempts: int = 0, **more: Any) -> Unsent:
    """A message to ``contact`` queued now; ids (and list keys) count up."""
    n = next(_ids)
    key = f"m{n:06d}"
    return Unsent(
        id=key,
        key=key,
        channel_id="chan",
        contact_id=contact,
        to=f"chat-{contact}",
        content=f"text {n}",
        attempts=attempts,
        next_attempt_at=clock.now(),
        **more,
    )


class MemoryOutbox:
    """The outbox repository's calls the lane and the dispatcher make."""

    def __init__(self) -> None:
        self.messages: dict[str, Unsent] = {}
        self.status: dict[str, str] = {}
        self.claims: list[list[str]] = []  # each claim write: its ids
        self.finished: list[list[Outcome]] = []  # each outcome write
        self.refuse_claims: set[str] = set()  # ids another process changed meanwhile
        self.released: list[str] = []
        self._tokens = itertools.count(1)

    def put(self, *messages: Unsent) -> None:
        for message in messages:
            self.messages[message.id] = message
            self.status[message.id] = "sending" if message.claim else "queued"

    async def unsent(self, channel_id: str) -> list[Unsent]:
        return [m for m in self.messages.values() if self.status[m.id] in ("queued", "sending")]

    async def queued_since(self, channel_id: str, floor: str) -> list[str]:
        return [i for i, s in self.status.items() if s == "queued" and i >= floor]

    async def get_unsent(self, ids: Iterable[str]) -> list[Unsent]:
        return [self.messages[i] for i in ids if self.status.get(i) in ("queued", "sending")]

    async def claim(self, ids: list[str], owner: str, until: datetime) -> tuple[str, set[str]]:
        token = f"t{next(self._tokens)}"
        self.claims.append(list(ids))
        taken = {i for i in ids if i not in self.refuse_claims}
        for i in taken:
            self.status[i] = "sending"
        return token, taken

    async def release(self, claims: list[tuple[str, str | None]]) -> None:
        for message_id, _ in claims:
            self.released.append(message_id)
            self.status[message_id] = "queued"
            self.messages[message_id] = replace(self.messages[message_id], claim=None)

    async def finish(self, outcomes: list[Outcome]) -> None:
        self.finished.append(list(outcomes))
        for outcome in outcomes:
            self.status[outcome.message_id] = outcome.status
            if outcome.status == "queued":
                message = self.messages[outcome.message_id]
                attempts = message.attempts + (1 if outcome.counted else 0)
                at = outcome.next_attempt_at or message.next_attempt_at
                self.messages[message.id] = replace(message, attempts=attempts, next_attempt_at=at)


def claimed_elsewhere(message: Unsent, until: datetime) -> Unsent:
    """``message`` as another process left it: sending, under its claim."""
    return replace(message, claim=Claim("their-token", "another-process", until))


class NoMessages:
    """The messages repository's one call the outcome writer makes."""

    async def get_many(self, ids: list[str]) -> list[Any]:
        return []


@dataclass
class ScriptedChannel:
    """A channel whose sends answer from ``script`` (an exception to raise, or None
    for success), in order; past the script every send succeeds."""

    per_channel: float = 0.0
    per_chat: float = 0.0
    script: list[SendError | None] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)  # (to, message id)
    id: str = "chan"
    name: str = "fake"

    def pacing(self) -> tuple[float, float]:
        return self.per_channel, self.per_chat

    async def send(self, to: str, text: str, message_id: str) -> str:
        answer = self.script.pop(0) if self.script else None
        if answer is not None:
            raise answer
        self.sent.append((to, message_id))
        return f"provider-{message_id}"


def agent(agent_id: str, *, available: bool = True) -> Agent:
    return Agent(
        id=agent_id,
        username=agent_id,
        display_name="",
        is_available=available,
        created_at=START,
        updated_at=START,
        password_hash="",
    )


class MemoryAgents:
    """The agents repository's calls the assigner makes; ``available`` orders as the
    database does: never given a conversation first, then least recently given."""

    def __init__(self, *agents: Agent) -> None:
        self.agents = {a.id: a for a in agents}
        self.given_at: dict[str, datetime] = {}

    def set_available(self, agent_id: str, available: bool) -> None:
        self.agents[agent_id] = replace(self.agents[agent_id], is_available=available)

    async def available(self, limit: int = 1000) -> list[Agent]:
        ready = [a for a in self.agents.values() if a.is_available]
        ready.sort(key=lambda a: (a.id in self.given_at, self.given_at.get(a.id, START)))
        return ready[:limit]

    async def mark_assigned(self, agent_ids: list[str], at: datetime) -> None:
        for agent_id in agent_ids:
            self.given_at[agent_id] = at

    async def get(self, agent_id: str) -> Agent | None:
        return self.agents.get(agent_id)


def conversation(n: int, assignee: str | None = None) -> Conversation:
    doc = {
        "_id": f"c{n:04d}",
        "contact_id": f"contact-{n}",
        "channel_id": "chan",
        "contact": {"id": f"contact-{n}", "external_id": str(n)},
        "assignee_id": assignee,
        "status": "open",
        "created_at": START + timedelta(seconds=n),
        "updated_at": START + timedelta(seconds=n),
    }
    return Conversation.of(doc)


class MemoryConversations:
    """The conversations repository's calls the assigner makes, with its rule that an
    offer (``only_unassigned``) never takes a conversation someone holds."""

    def __init__(self, *conversations: Conversation) -> None:
        self.conversations = {c.id: c for c in conversations}
        self.writes = 0

    async def waiting(self, limit: int, agents: list[str] | None = None) -> list[Conversation]:
        open_ = [
            c
            for c in self.conversations.values()
            if c.assignee_id is None and not (agents and set(agents) <= set(c.declined_by))
        ]
        return sorted(open_, key=lambda c: c.created_at)[:limit]

    async def assign(self, pairs: list[tuple[str, str | None]], *, only_unassigned: bool) -> None:
        self.writes += 1
        for conversation_id, agent_id in pairs:
            current = self.conversations[conversation_id]
            taken = current.assignee_id is not None or agent_id in current.declined_by
            if only_unassigned and taken:
                continue
            declined = current.declined_by if agent_id is None else ()
            self.conversations[conversation_id] = replace(
                current, assignee_id=agent_id, declined_by=declined
            )

    async def to_queue(self, conversation_id: str, given_back_by: str | None) -> None:
        current = self.conversations[conversation_id]
        declined = (*current.declined_by, given_back_by) if given_back_by else current.declined_by
        self.conversations[conversation_id] = replace(
            current, assignee_id=None, declined_by=tuple(dict.fromkeys(declined))
        )

    async def get_many(self, ids: list[str]) -> list[Conversation]:
        return [self.conversations[i] for i in ids if i in self.conversations]

    async def get(self, conversation_id: str) -> Conversation | None:
        return self.conversations.get(conversation_id)

    async def open_of(self, agent_id: str) -> list[Conversation]:
        return [c for c in self.conversations.values() if c.assignee_id == agent_id]

    async def release(self, ids: list[str], agent_id: str) -> None:
        for conversation_id in ids:
            current = self.conversations[conversation_id]
            if current.assignee_id == agent_id:
                self.conversations[conversation_id] = replace(current, assignee_id=None)

    def holders(self) -> dict[str, str | None]:
        return {c.id: c.assignee_id for c in self.conversations.values()}


class Announced:
    """What the assigner tells of the conversations it moved."""

    def __init__(self) -> None:
        self.changed: list[list[Conversation]] = []

    async def conversations_changed(self, conversations: list[Conversation]) -> None:
        self.changed.append(list(conversations))
