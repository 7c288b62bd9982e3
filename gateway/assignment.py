"""Who answers which conversation: assignment, transfer, and the queue.

Open conversations nobody holds wait in a queue, the longest waiting first. They
are offered to the available agents, the one given a conversation least recently
first, as soon as one is available: when a conversation arrives or an agent comes
back (woken at once here), and every ``recheck_seconds`` for what other gateways
saw. It runs off the webhook's path, in bulk: a pass costs four round trips for
up to a hundred conversations. Of two gateways offering one conversation, the
conditional write lets one win.

An agent who goes away, unless ``assignment.keep_while_away``, or who is deleted,
gives their open conversations back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.activity import Activity
from gateway.config import AssignmentConfig
from gateway.errors import NotFound, ValidationError
from storage.database import Storage
from storage.errors import is_unavailable
from storage.models import Agent, Conversation
from storage.records import utcnow

log = logging.getLogger("gateway.assignment")

PASS_SIZE = 100  # conversations offered in one pass


class Assigner:
    def __init__(self, storage: Storage, activity: Activity, config: AssignmentConfig) -> None:
        self.storage = storage
        self.activity = activity
        self.config = config
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """A conversation waits, or an agent became available: offer now."""
        self._wake.set()

    async def run(self) -> None:
        """Offer waiting conversations until cancelled (a supervised worker)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.recheck_seconds)
            self._wake.clear()
            try:
                while await self.offer() == PASS_SIZE:
                    pass  # a full pass: there may be more waiting
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                # The database is away: the next recheck offers them again.
                log.warning("assignment paused (%s)", type(exc).__name__)

    async def offer(self) -> int:
        """One pass; returns how many waiting conversations it looked at."""
        # Agents first: they are few, while the queue may be long when nobody is
        # available, and the embedded server reads all of it (2,000 waiting: 74 ms).
        agents = await self.storage.agents.available()
        if not agents:
            return 0
        waiting = await self.storage.conversations.waiting(PASS_SIZE)
        if not waiting:
            return 0
        pairs: list[tuple[str, str | None]] = [
            (c.id, agents[n % len(agents)].id) for n, c in enumerate(waiting)
        ]
        await self.storage.conversations.assign(pairs, only_unassigned=True)
        intended = dict(pairs)
        given = await self.storage.conversations.get_many(list(intended))
        won = [c for c in given if c.assignee_id is not None and c.assignee_id == intended[c.id]]
        await self._settle(won)
        given_to = sorted({c.assignee_id for c in won if c.assignee_id is not None})
        await self.storage.agents.mark_assigned(given_to, utcnow())
        for c in won:
            log.info("conversation %s assigned to agent %s", c.id, c.assignee_id)
        return len(waiting)

    async def transfer(self, conversation_id: str, agent_id: str | None) -> Conversation:
        """Give a conversation to an agent (None: back to the queue)."""
        if agent_id is not None and await self.storage.agents.get(agent_id) is None:
            raise ValidationError.of("assignee_id", f"no such agent: {agent_id}")
        current = await self.storage.conversations.get(conversation_id)
        if current is None:
            raise NotFound(f"No such conversation: {conversation_id}")
        await self.storage.conversations.assign(
            [(conversation_id, agent_id)], only_unassigned=False
        )
        [moved] = await self.storage.conversations.get_many([conversation_id])
        await self._settle([moved])
        if agent_id is None:
            self.nudge()
        return moved

    async def availability_changed(self, agent: Agent) -> None:
        """An agent changed their account: back (offer them conversations) or away."""
        if agent.is_available:
            self.nudge()
        else:
            await self.agent_away(agent.id)

    async def agent_away(self, agent_id: str, *, deleted: bool = False) -> None:
        """The agent went away or was deleted: their open conversations are given back."""
        if not deleted and self.config.keep_while_away:
            return
        held = await self.storage.conversations.open_of(agent_id)
        if not held:
            return
        await self.storage.conversations.release([c.id for c in held], agent_id)
        back = await self.storage.conversations.get_many([c.id for c in held])
        await self._settle([c for c in back if c.assignee_id is None])
        self.nudge()

    async def _settle(self, conversations: list[Conversation]) -> None:
        """Show the conversations' new assignees on their contacts, and tell streams."""
        await self.storage.contacts.set_assignees(
            [(c.contact_id, c.assignee_id) for c in conversations]
        )
        await self.activity.conversations_changed(conversations)
