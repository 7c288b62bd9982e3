"""The live event log: written in order, read back by agents' streams.

:class:`EventLog` writes entries under one lock per process, so that within a
process an entry is durable before any entry with a later id is written. The
:class:`EventHub` tails the log (woken at once by local writes, polling for other
gateways' writes) and hands each entry, in id order, to the streams that want it.

Where several gateways share the database, ids from different processes
interleave; the hub then streams an entry only once it is ``settle`` old, so an
entry another gateway was still writing is never overtaken and skipped. On the
embedded server one gateway owns the database and entries stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway.workers import detached_task
from storage.errors import is_unavailable
from storage.events import EventsRepository
from storage.models import Conversation, Event, EventType, Message
from storage.records import key_floor, millis, utcnow

log = logging.getLogger("gateway.events")

READ_BATCH = 500
Entry = tuple[EventType, str | None, Message | Conversation]  # (type, assignee, subject)


class Subscriber:
    """A stream's mailbox: the hub puts the entries it ``wants`` here; None ends it."""

    def __init__(self, wants: Callable[[Event], bool]) -> None:
        self.wants = wants
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()


class EventHub:
    def __init__(self, events: EventsRepository, *, settle_ms: int, poll_seconds: float) -> None:
        self.events = events
        self.settle_ms = settle_ms
        self.poll_seconds = poll_seconds
        self.cursor: str | None = None
        self._written: str | None = None  # the newest entry this process wrote
        self._wake = asyncio.Event()
        self._pending = False  # a read is scheduled for when the latest write settles
        self._subscribers: set[Subscriber] = set()

    def nudge(self, newest: str) -> None:
        """``newest`` and what came before it was written here: read the log now, or
        once it has settled."""
        self._written = max(self._written or newest, newest)
        if not self.settle_ms:
            self._wake.set()
        elif not self._pending:  # one read per settle period, however many writes
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

    def subscribe(self, wants: Callable[[Event], bool]) -> Subscriber:
        subscriber = Subscriber(wants)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every stream (the gateway is stopping)."""
        for subscriber in self._subscribers:
            subscriber.queue.put_nowait(None)
        self._subscribers.clear()

    async def run(self) -> None:
        """Tail the log until cancelled (a supervised worker)."""
        self.end()
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
            batch = await self.events.after(self.cursor, READ_BATCH, before=self.horizon())
            for event in batch:
                self.cursor = event.id
                for subscriber in list(self._subscribers):
                    if subscriber.wants(event):
                        subscriber.queue.put_nowait(event)
            if len(batch) < READ_BATCH:
                return


class EventLog:
    """Appends entries in id order and wakes the hub. Appends that arrive while a
    write is under way go out together in the next one (a group commit): one insert
    however many sends and webhooks happen at once, and ids still in write order."""

    def __init__(self, events: EventsRepository, hub: EventHub) -> None:
        self.events = events
        self.hub = hub
        self._pending: list[tuple[list[Entry], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, entries: list[Entry]) -> None:
        """Returns once the entries are durable."""
        if not entries:
            return
        done = asyncio.get_running_loop().create_future()
        self._pending.append((entries, done))
        if self._writer is None or self._writer.done():
            self._writer = detached_task(self._write_all(), "event log")
        await done

    async def _write_all(self) -> None:
        while self._pending:  # one write at a time: ids are made inside, in order
            batch, self._pending = self._pending, []
            try:
                written = await self.events.append([e for entries, _ in batch for e in entries])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
            self.hub.nudge(written[-1].id)
