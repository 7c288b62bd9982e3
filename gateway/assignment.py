"""Who answers which conversation: assignment, transfer, and the queue.

Conversations go to the available agents, the one given a conversation least
recently first. A new contact's conversation is given its agent in the write that
creates it (gateway/inbound.py asks :meth:`Assigner.propose`): no extra round trip
or write, from the roster of available agents the last pass read.

Open conversations nobody holds (nobody was available, their agent left, or gave
it back) wait in a queue, the longest waiting first, offered as soon as an agent is
available: when one arrives or an agent comes back (woken at once here), and every
``recheck_seconds`` for what other gateways saw. One an agent gave back is never
offered to them again until it is resolved: with only them available, it waits.
Offers run off the webhook's path, in bulk: a pass costs four round trips for up to
a hundred conversations. Of two gateways offering one conversation, the conditional
write lets one win.

An agent who goes away, unless ``assignment.keep_while_away``, or who is deleted,
gives their open conversations back to the queue. Another gateway's roster learns
of it at its next pass (``recheck_seconds``), and gives back what it assigned them
meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.config import AssignmentConfig
from gateway.conversation_updates import ConversationUpdates
from gateway.errors import NotFound, ValidationError
from storage.database import Storage
from storage.errors import is_unavailable
from storage.models import Agent, Conversation
from storage.records import utcnow

log = logging.getLogger("gateway.assignment")

PASS_SIZE = 100  # conversations offered in one pass


class Assigner:
    def __init__(
        self, storage: Storage, updates: ConversationUpdates, config: AssignmentConfig
    ) -> None:
        self.storage = storage
        self.updates = updates
        self.config = config
        self._wake = asyncio.Event()
        self._roster: list[str] = []  # available agents' ids, least recently given first
        self._given: set[str] = set()  # agents proposed here since the last pass recorded it

    @property
    def roster(self) -> list[str]:
        """The available agents' ids as this gateway last read them, next turn first."""
        return list(self._roster)

    def nudge(self) -> None:
        """A conversation waits, or an agent became available: offer now."""
        self._wake.set()

    async def run(self) -> None:
        """Offer waiting conversations until cancelled (a supervised worker)."""
        while True:
            try:
                while await self.offer() == PASS_SIZE:
                    pass  # a full pass: there may be more waiting
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                # The database is away: the next recheck offers them again.
                log.warning("assignment paused (%s)", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.recheck_seconds)
            self._wake.clear()

    def propose(self, count: int) -> list[str | None]:
        """Agents for ``count`` new conversations, least recently given first, or
        None for each while nobody is available (they wait in the queue)."""
        roster = self._roster
        if not roster:
            return [None] * count
        picks: list[str | None] = [roster[n % len(roster)] for n in range(count)]
        turn = count % len(roster)
        self._roster = roster[turn:] + roster[:turn]  # those just given go to the back
        self._given.update(roster[: min(count, len(roster))])
        return picks

    def assigned(self, conversations: list[Conversation]) -> None:
        """The inbound path gave these conversations their proposed agents."""
        for c in conversations:
            log.info("conversation %s assigned to agent %s", c.id, c.assignee_id)

    async def offer(self) -> int:
        """One pass; returns how many waiting conversations it looked at."""
        if self._given:  # the order other gateways (and this one restarted) read
            agents, self._given = sorted(self._given), set()
            await self.storage.agents.mark_assigned(agents, utcnow())
        # Agents first: they are few, while the queue may be long when nobody is
        # available, and the embedded server reads all of it (2,000 waiting: 74 ms).
        await self._read_roster()
        if not self._roster:
            return 0
        waiting = await self.storage.conversations.waiting(PASS_SIZE, self._roster)
        if not waiting:
            return 0
        picks = {c.id: self._pick(c.declined_by) for c in waiting}
        intended = {cid: agent for cid, agent in picks.items() if agent is not None}
        await self.storage.conversations.assign(list(intended.items()), only_unassigned=True)
        given = await self.storage.conversations.get_many(list(intended))
        won = [
            c for c in given if c.assignee_id is not None and c.assignee_id == intended.get(c.id)
        ]
        await self.updates.conversations_changed(won)
        self.assigned(won)
        return len(waiting)

    def _pick(self, declined: tuple[str, ...]) -> str | None:
        """The next in turn who did not give this conversation back; to the back."""
        chosen = next((i for i in self._roster if i not in declined), None)
        if chosen is not None:
            self._roster.remove(chosen)
            self._roster.append(chosen)
            self._given.add(chosen)
        return chosen

    async def _read_roster(self) -> None:
        """Who is available now. Agents back (or new) go first, in the database's
        order; the others keep this gateway's turns. One who left since the last
        read gives back what was proposed to them meanwhile."""
        available = [a.id for a in await self.storage.agents.available()]
        kept = [i for i in self._roster if i in available]
        left = [i for i in self._roster if i not in available]
        self._roster = [i for i in available if i not in kept] + kept
        for agent_id in left:  # deleted or disabled (on any gateway): gone for good
            agent = await self.storage.agents.get(agent_id)
            await self.agent_away(agent_id, gone=agent is None or agent.disabled)

    async def transfer(self, conversation_id: str, agent_id: str | None) -> Conversation:
        """Give a conversation to an agent (None: back to the queue)."""
        if agent_id is not None and await self.storage.agents.get(agent_id) is None:
            raise ValidationError.of("assignee_id", f"no such agent: {agent_id}")
        current = await self.storage.conversations.get(conversation_id)
        if current is None:
            raise NotFound(f"No such conversation: {conversation_id}")
        if agent_id is None:  # whoever held it is not offered it straight back
            await self.storage.conversations.to_queue(conversation_id, current.assignee_id)
        else:
            await self.storage.conversations.assign(
                [(conversation_id, agent_id)], only_unassigned=False
            )
        [moved] = await self.storage.conversations.get_many([conversation_id])
        await self.updates.conversations_changed([moved])
        if agent_id is None:
            self.nudge()
        return moved

    async def availability_changed(self, agent: Agent) -> None:
        """An agent changed their account: back (offer them conversations) or away."""
        if agent.is_available:
            self.nudge()
        else:
            await self.agent_away(agent.id)

    async def agent_away(self, agent_id: str, *, gone: bool = False) -> None:
        """The agent went away, or is ``gone`` (deleted or disabled): their open
        conversations are given back (when away, unless ``keep_while_away``)."""
        if agent_id in self._roster:
            self._roster.remove(agent_id)
        if not gone and self.config.keep_while_away:
            return
        held = await self.storage.conversations.open_of(agent_id)
        if not held:
            return
        await self.storage.conversations.release([c.id for c in held], agent_id)
        back = await self.storage.conversations.get_many([c.id for c in held])
        await self.updates.conversations_changed([c for c in back if c.assignee_id is None])
        self.nudge()
