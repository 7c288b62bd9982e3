"""The live event log: written in order, handed to agents' streams.

:class:`EventLog` writes entries under one lock per process, so that within a
process an entry is durable before any entry with a later id is written. The
:class:`EventHub` hands each entry, in id order, to the streams that want it.

Where several gateways share the database, ids from different processes
interleave: the hub tails the log (woken by local writes, polling for other
gateways'), and streams an entry only once it is ``settle`` old, so an entry
another gateway was still writing is never overtaken and skipped. It reads only
the ids there: the entries this process wrote it holds already, and it fetches
whole only those of other gateways. On the embedded server one gateway owns the
database: the hub hands out what the log just wrote, as it is written, and reads
nothing back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway.config import EventsConfig
from gateway.errors import TooManyRequests
from gateway.group_commit import GroupCommit, settle
from storage.errors import is_unavailable
from storage.events import EventsRepository
from storage.models import Conversation, Event, EventType, Message, Note, Subscription
from storage.records import key_floor, millis, utcnow

log = logging.getLogger("gateway.events")

READ_BATCH = 500
MINE_KEPT = 10_000  # entries written here that a shared log's tail has not reached yet
# (type, assignee, subject)
Entry = tuple[EventType, str | None, Message | Conversation | Subscription | Note]


class Subscriber:
    """A stream's mailbox: the hub puts the entries it ``wants`` here, at most
    ``limit`` of them unread. :meth:`end` closes it with a reason (a client too far
    behind, a sign-in that ended, a newer stream of the same sign-in)."""

    def __init__(
        self, wants: Callable[[Event], bool], agent_id: str = "", sign_in: str = "", limit: int = 0
    ) -> None:
        self.wants = wants
        self.agent_id = agent_id
        self.sign_in = sign_in
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(limit)
        self.ended: str | None = None  # why the stream must end
        self.ending = asyncio.Event()

    def offer(self, event: Event) -> bool:
        """Queue ``event``; False (and ended) when the client is too far behind."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.end(BEHIND)
            return False
        return True

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
        self.ending.set()
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)  # wakes a reader waiting on an empty queue


# Why a stream ends: the client resumes (Last-Event-ID) after the first two; after
# the last it signs in again.
BEHIND = "the client fell too far behind; resume with Last-Event-ID"
REPLACED = "a newer stream of this sign-in took its place; resume with Last-Event-ID"
SIGNED_OUT = "the sign-in ended"
RESUMABLE = (BEHIND, REPLACED)


class EventHub:
    def __init__(
        self,
        events: EventsRepository,
        *,
        settle_ms: int,
        poll_seconds: float,
        limits: EventsConfig | None = None,
    ) -> None:
        self.events = events
        self.limits = limits or EventsConfig()  # streams per agent and sign-in, queue
        self.settle_ms = settle_ms
        self.poll_seconds = poll_seconds
        self.cursor: str | None = None
        self._written: str | None = None  # the newest entry this process wrote
        self._wake = asyncio.Event()
        self._pending = False  # a read is scheduled for when the latest write settles
        self._subscribers: dict[Subscriber, None] = {}  # a set that keeps arrival order
        self._mine: dict[str, Event] = {}  # written here, not yet handed out (shared log)
        self._listeners: list[Callable[[], None]] = []

    def on_handed_out(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever entries are handed out: readers of the log
        itself (subscriptions' senders) read on then, instead of waiting to poll."""
        self._listeners.append(listener)

    @property
    def sole_writer(self) -> bool:
        """Only this process writes the log (no settle period is needed)."""
        return not self.settle_ms

    def written(self, events: list[Event]) -> None:
        """``events`` (in id order) and what came before them were written here."""
        if not events:
            return
        newest = events[-1].id
        self._written = max(self._written or newest, newest)
        if self.sole_writer:
            self._hand_out(events)  # the log holds nothing else: no read-back
            return
        self._mine.update((event.id, event) for event in events)
        while len(self._mine) > MINE_KEPT:  # the tail is not running: read them back then
            del self._mine[next(iter(self._mine))]
        if not self._pending:  # one read per settle period, however many writes
            self._pending = True
            asyncio.get_running_loop().call_later(self.settle_ms / 1000, self._settled)

    def _settled(self) -> None:
        self._pending = False
        self._wake.set()

    def horizon(self) -> str:
        """The newest id that may be streamed now (see the module's docstring)."""
        return key_floor(millis(utcnow()) - self.settle_ms + 1)

    def end(self) -> str:
        """Where a stream that starts now begins: the newest entry the hub handed out
        or this process wrote. Finding the newest in the log would read it all on the
        embedded server (a second per 50,000 entries, measured); another gateway's
        entry not yet read may still come first, as it would a moment later."""
        if self.cursor is None:
            self.cursor = key_floor(millis(utcnow()) - self.settle_ms)
        return max(self.cursor, self._written or self.cursor)

    def subscribe(
        self, wants: Callable[[Event], bool], agent_id: str = "", sign_in: str = ""
    ) -> Subscriber:
        """A new stream's mailbox. A sign-in's oldest stream past its cap is ended (a
        client that reconnects takes its own place); an agent past theirs is refused."""
        mine = [s for s in self._subscribers if s.agent_id == agent_id and not s.ended]
        same = [s for s in mine if s.sign_in == sign_in]
        if len(same) >= self.limits.max_streams_per_sign_in:
            oldest = same[0]  # insertion order: dicts keep it, see _subscribers
            self.unsubscribe(oldest)
            oldest.end(REPLACED)
            mine.remove(oldest)
        if len(mine) >= self.limits.max_streams_per_agent:
            raise TooManyRequests(
                f"{self.limits.max_streams_per_agent} event streams are open for this agent "
                "(events.max_streams_per_agent); close one",
                5,
            )
        subscriber = Subscriber(wants, agent_id, sign_in, self.limits.stream_queue_events)
        self._subscribers[subscriber] = None
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.pop(subscriber, None)

    def end_sign_in(self, sign_in: str) -> None:
        """A sign-in ended here: its streams end now, not at their next check."""
        for subscriber in [s for s in self._subscribers if s.sign_in == sign_in]:
            self.unsubscribe(subscriber)
            subscriber.end(SIGNED_OUT)

    def close(self) -> None:
        """End every stream (the gateway is stopping)."""
        for subscriber in self._subscribers:
            subscriber.end("the gateway is stopping")
        self._subscribers.clear()

    async def run(self) -> None:
        """Tail the log until cancelled (a supervised worker); with no other writer
        there is nothing to tail."""
        self.end()
        if self.sole_writer:
            await asyncio.Future()  # until cancelled
        while True:
            try:
                await self.read()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                # The database is away: read again at the next tick, from the cursor.
                log.warning("event log unreadable (%s); trying again", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()

    async def read(self) -> None:
        """Hand out every entry after the cursor, up to the horizon, in order."""
        assert self.cursor is not None
        while True:
            keys = await self.events.keys_after(self.cursor, READ_BATCH, before=self.horizon())
            theirs = [key for key in keys if key not in self._mine]
            fetched = {e.id: e for e in await self.events.get_many(theirs)} if theirs else {}
            # An entry gone between the two reads (expired) is skipped, as a later read
            # would have skipped it.
            batch = [self._mine.pop(k, None) or fetched.get(k) for k in keys]
            self._hand_out([event for event in batch if event is not None])
            if keys:
                self.cursor = max(self.cursor, keys[-1])
            if len(keys) < READ_BATCH:
                return

    def _hand_out(self, batch: list[Event]) -> None:
        if batch:
            for listener in self._listeners:
                listener()
        for event in batch:
            if self.cursor is not None and event.id <= self.cursor:
                continue  # handed out already
            self.cursor = event.id
            for subscriber in list(self._subscribers):
                if subscriber.wants(event) and not subscriber.offer(event):
                    self.unsubscribe(subscriber)  # too far behind: told to resume


class EventLog:
    """Appends entries in id order and wakes the hub. Appends that arrive while a
    write is under way go out together in the next one (a group commit): one insert
    however many sends and webhooks happen at once, and ids still in write order."""

    def __init__(self, events: EventsRepository, hub: EventHub) -> None:
        self.events = events
        self.hub = hub
        self._writes = GroupCommit(self._write, "event log")

    async def append(self, entries: list[Entry]) -> None:
        """Returns once the entries are durable."""
        if not entries:
            return
        done = asyncio.get_running_loop().create_future()
        self._writes.add([(entries, done)])
        await done

    async def _write(self, batch: list[tuple[list[Entry], asyncio.Future[None]]]) -> None:
        # One write at a time (the group commit's): ids are made inside, in order.
        try:
            written = await self.events.append([e for entries, _ in batch for e in entries])
        except Exception as exc:
            settle((done for _, done in batch), exc)
            return
        self.hub.written(written)  # before the appends return: streams see it first
        settle((done for _, done in batch), None)
