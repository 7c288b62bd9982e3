"""One held channel's outbox: its unsent messages in memory, and the loop that sends them.

Every unsent message of the channel is known here, in one queue per contact,
oldest first; a heap orders the contacts' oldest messages by when they are due.
Only a contact's oldest message is ever a candidate, and only while none of the
contact's sends is under way, so order per contact holds and the next message to
send is a heap pop, however many wait. See gateway/outbound.py for the guarantees.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, Protocol

import pymongo
from pymongo.errors import PyMongoError

from channels.base import Channel
from common.backoff import Backoff
from gateway.clock import Clock
from gateway.pacing import Pacing
from storage.outbox import Claim, OutboxRepository, Outcome, Unsent

log = logging.getLogger("gateway.outbound")

# The dispatcher's database calls may take longer than a request's: no provider waits
# on them, and a call cut short is only sent again, doing the same work twice.
BACKGROUND_TIMEOUT_SECONDS = 30.0
REMEMBERED_DONE = 4096  # finished ids a stale discovery read must not bring back


@dataclass(eq=False, slots=True)
class _InLane:
    """A message in its contact's lane, and where it stands."""

    message: Unsent
    due: float  # monotonic time it may be sent
    attempts: int  # counted attempts so far
    # queued: waits its turn; mine: this process sends it (or records how that went);
    # theirs: another process claimed it, and we wait for it to finish or expire.
    state: Literal["queued", "mine", "theirs"] = "queued"
    claim: Claim | None = None

    @property
    def id(self) -> str:
        return self.message.id


class Slots:
    """Sends that may be under way at once, shared by every lane of a gateway
    (``delivery.concurrency``): a lane takes them as it claims, a send gives its back."""

    def __init__(self, total: int) -> None:
        self.free = total

    def take(self, count: int) -> None:
        self.free -= count

    def give(self, count: int = 1) -> None:
        self.free += count


class Launcher(Protocol):
    """What a lane needs of whoever runs its sends (gateway/outbound.py's Dispatcher)."""

    owner: str  # names this process in its claims
    live: set[str]  # ids claimed here whose outcome is not durable yet
    slots: Slots

    def launch(self, channel: Channel, message: Unsent, attempts: int, token: str) -> None:
        """Start sending ``message``, claimed with ``token``; its outcome comes back
        through :meth:`Lane.settle` (or :meth:`Lane.abandon`)."""


class Lane:
    """One held channel's outbox: every unsent message, and the loop that sends them."""

    def __init__(
        self,
        channel: Channel,
        outbox: OutboxRepository,
        pacing: Pacing,
        sends: Launcher,
        claim_seconds: float,
        clock: Clock,
    ) -> None:
        self.channel = channel
        self.outbox = outbox
        self.pacing = pacing
        self.sends = sends
        self.claim_seconds = claim_seconds  # a claim's length (delivery.stale_sending_seconds)
        self.clock = clock
        self._queues: dict[str, list[_InLane]] = {}  # contact → unsent, oldest first
        self._known: dict[str, _InLane] = {}
        self._heads: list[tuple[float, str, str]] = []  # (due, key, id) of candidates
        self._theirs: dict[str, _InLane] = {}
        self._busy: Counter[str] = Counter()  # contact → its sends under way (or left)
        self._done: dict[str, None] = {}  # recently finished, oldest first
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Load the channel's outbox, then send whatever is due, for as long as we hold it."""
        # Start from the database (also after a crash): sends under way here are
        # known by their ids in sends.live and stay ours.
        for part in (self._queues, self._known, self._theirs, self._busy):
            part.clear()
        self._heads.clear()
        with pymongo.timeout(BACKGROUND_TIMEOUT_SECONDS):
            unsent = await self.outbox.unsent(self.channel.id)
        for message in unsent:
            self.add(message)
        if self._known:
            log.info("channel %r: %d unsent messages to send", self.channel.name, len(self._known))
        trouble = Backoff(0.5, 10.0)
        while True:
            self._wake.clear()
            try:
                with pymongo.timeout(BACKGROUND_TIMEOUT_SECONDS):
                    wait = await self.step()
            except PyMongoError as exc:
                wait = trouble.next()
                log.warning("channel %r outbox: database error (%s); again in %.1f s",
                            self.channel.name, type(exc).__name__, wait)  # fmt: skip
            else:
                trouble.reset()
            with contextlib.suppress(TimeoutError):
                # Not asyncio.wait_for, which on Python 3.11 can lose a cancellation.
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    # -- what is known ---------------------------------------------------------------

    def add(self, message: Unsent) -> None:
        """A message to send (queued here, loaded, or found by discovery)."""
        if message.id in self._known or message.id in self._done:
            return
        pending = _InLane(message, self._due(message), message.attempts)
        self._known[message.id] = pending
        queue = self._queues.setdefault(message.contact_id, [])
        bisect.insort(queue, pending, key=lambda p: p.message.key)
        if message.claim is not None:
            live = message.claim.owner == self.sends.owner and message.id in self.sends.live
            pending.claim = message.claim
            self._mark(pending, "mine" if live else "theirs")
        elif queue[0] is pending:
            self._push(pending)
        self._wake.set()

    async def discover(self, floor: str) -> None:
        """Add the messages queued (by any gateway) since ``floor`` that are new here."""
        ids = await self.outbox.queued_since(self.channel.id, floor)
        new = [i for i in ids if i not in self._known and i not in self._done]
        if new:
            for message in await self.outbox.get_unsent(new):
                self.add(message)

    def settle(self, outcome: Outcome, attempts: int, retry_in: float = 0.0) -> None:
        """A send's outcome is durable: the contact's next message may go."""
        pending = self._known.get(outcome.message_id)
        if pending is None:
            return
        if outcome.status == "queued":
            pending.attempts = attempts
            pending.due = self.clock.monotonic() + retry_in
            self._mark(pending, "queued")
        else:
            self._forget(pending)
            self._done[pending.id] = None
            if len(self._done) > REMEMBERED_DONE:
                del self._done[next(iter(self._done))]
        self._wake.set()

    def abandon(self, message_id: str, claim: Claim) -> None:
        """Our claim's outcome could not be recorded: treat it as another's claim, which
        is put back (and the message sent again) once it expires."""
        pending = self._known.get(message_id)
        if pending is not None:
            pending.claim = claim
            self._mark(pending, "theirs")
            self._wake.set()

    def _mark(self, pending: _InLane, state: Literal["queued", "mine", "theirs"]) -> None:
        """Change a message's state, keeping count of each contact's sends under way."""
        contact = pending.message.contact_id
        if pending.state != "queued":
            self._busy[contact] -= 1
        pending.state = state
        self._theirs.pop(pending.id, None)
        if state == "theirs":
            self._theirs[pending.id] = pending
        if state != "queued":
            self._busy[contact] += 1
        elif contact in self._queues:
            self._push(self._queues[contact][0])  # the contact may go on now

    def _forget(self, pending: _InLane) -> None:
        self._mark(pending, "queued")
        del self._known[pending.id]
        contact = pending.message.contact_id
        queue = self._queues[contact]
        was_head = queue[0] is pending
        queue.remove(pending)
        if not queue:
            del self._queues[contact]
            del self._busy[contact]
        elif was_head:
            self._push(queue[0])

    def _push(self, pending: _InLane) -> None:
        if pending.state == "queued" and not self._busy[pending.message.contact_id]:
            heapq.heappush(self._heads, (pending.due, pending.message.key, pending.id))

    # -- sending ---------------------------------------------------------------------

    def _due(self, message: Unsent) -> float:
        wait = (message.next_attempt_at - self.clock.now()).total_seconds()
        return self.clock.monotonic() + max(0.0, wait)

    def _candidate(self) -> _InLane | None:
        """The heap's top if it is still its contact's oldest message and waiting."""
        while self._heads:
            due, _, message_id = self._heads[0]
            pending = self._known.get(message_id)
            if (
                pending is not None
                and pending.state == "queued"
                and pending.due == due
                and not self._busy[pending.message.contact_id]
                and self._queues[pending.message.contact_id][0] is pending
            ):
                return pending
            heapq.heappop(self._heads)  # superseded: sent, retried, busy or no longer first
        return None

    async def step(self) -> float | None:
        """Claim and start every send whose time has come; returns how long to wait
        (None: until woken)."""
        if self._theirs:
            await self._take_over_expired()
        now = self.clock.monotonic()
        picked: list[_InLane] = []
        while self.sends.slots.free > len(picked) and self.pacing.gate() <= now:
            pending = self._candidate()
            if pending is None or pending.due > now:
                break
            heapq.heappop(self._heads)
            chat_ready = self.pacing.chat_ready(pending.message.to)
            if chat_ready > now:  # this chat's gap first; others may go meanwhile
                pending.due = chat_ready
                self._push(pending)
                continue
            self.pacing.take(pending.message.to, now)
            self._mark(pending, "mine")
            picked.append(pending)
        if picked:
            await self._claim(picked)
        return self._wait()

    def _wait(self) -> float | None:
        now = self.clock.monotonic()
        times = []
        pending = self._candidate()
        if pending is not None and self.sends.slots.free > 0:
            times.append(max(pending.due, self.pacing.gate()))
        times += [self._expiry(p) for p in self._theirs.values()]
        return max(0.0, min(times) - now) if times else None  # None: until woken

    async def _claim(self, picked: list[_InLane]) -> None:
        until = self.clock.now() + timedelta(seconds=self.claim_seconds)
        slots = self.sends.slots
        slots.take(len(picked))
        try:
            token, taken = await self.outbox.claim([p.id for p in picked], self.sends.owner, until)
        except BaseException:
            slots.give(len(picked))
            for pending in picked:
                self._mark(pending, "queued")
            raise
        missed = [p for p in picked if p.id not in taken]
        slots.give(len(missed))
        for pending in picked:
            if pending.id in taken:
                self.sends.launch(self.channel, pending.message, pending.attempts, token)
        if missed:  # something changed them behind our back: see what they are now
            await self._reload(missed)

    # -- claims another process left --------------------------------------------------

    def _expiry(self, pending: _InLane) -> float:
        until = pending.claim.until if pending.claim else None
        if until is None:
            return self.clock.monotonic()
        return self.clock.monotonic() + (until - self.clock.now()).total_seconds()

    async def _take_over_expired(self) -> None:
        now = self.clock.monotonic()
        expired = [p for p in self._theirs.values() if self._expiry(p) <= now]
        if not expired:
            return
        await self.outbox.release([(p.id, p.claim.token if p.claim else None) for p in expired])
        log.warning(
            "channel %r: %d sends left unfinished by a stopped process are queued again",
            self.channel.name,
            len(expired),
        )
        await self._reload(expired)

    async def _reload(self, stale: list[_InLane]) -> None:
        """Read these messages again and keep them as they are now (or drop them)."""
        fresh = await self.outbox.get_unsent([p.id for p in stale])
        for pending in stale:
            if pending.id in self._known:
                self._forget(pending)
        for message in fresh:
            self.add(message)
