"""One writer for work that arrives at any time (a group commit): what comes while a
write is under way waits and goes together in the next, one write at a time, in the
order it came, at most ``most`` items a write. The inbound writer, the event log, the
send outcomes and the conversation updates all write this way: one round trip for
however many webhooks and sends happen at once.

The write owns its errors (fail its waiters, retry, or log): this only keeps the
writer going, so one failed write never strands what waits behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

from gateway.workers import detached_task

log = logging.getLogger("gateway.group_commit")

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(
        self, write: Callable[[list[T]], Awaitable[None]], name: str, most: int = sys.maxsize
    ) -> None:
        self._write = write
        self.name = name  # the writer task's, in logs and stacks
        self.most = most
        self._queue: list[T] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, items: Iterable[T]) -> None:
        """Queue ``items`` for the next write, and start the writer if it is idle."""
        self._queue.extend(items)
        if self._queue and (self._writer is None or self._writer.done()):
            self._writer = detached_task(self._write_all(), self.name)

    def take_waiting(self) -> list[T]:
        """What waits for a write, taken out (to answer it at once)."""
        waiting, self._queue = self._queue, []
        return waiting

    async def drain(self, within: float) -> None:
        """Wait (at shutdown) up to ``within`` seconds for what is queued to be written."""
        if self._writer is not None and not self._writer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._writer), within)

    async def _write_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.most], self._queue[self.most :]
            try:
                await self._write(batch)
            except Exception:
                log.exception("%s: a write of %d failed", self.name, len(batch))


def settle(waiters: Iterable[asyncio.Future[None]], error: BaseException | None) -> None:
    """Answer each waiter that is still waiting (its caller may have gone away)."""
    for done in waiters:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
