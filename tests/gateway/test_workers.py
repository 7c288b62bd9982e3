"""Long-lived tasks: they must not inherit a deadline from the code that started them,
and they stop when told to, even if a library swallowed the first cancellation."""

from __future__ import annotations

import asyncio

import pymongo
import pytest
from pymongo.errors import PyMongoError

from gateway.workers import Supervisor, detached_task
from storage.database import Storage


async def _ping_after(storage: Storage, seconds: float) -> None:
    await asyncio.sleep(seconds)  # the creator's deadline passes meanwhile
    await storage.client.admin.command("ping")


async def test_a_detached_task_outlives_its_creators_database_deadline(storage: Storage) -> None:
    # A task created inside pymongo.timeout copies its deadline: every database call
    # it makes after that is cut short. The outcome writer met this in the bench.
    with pymongo.timeout(0.2):
        inherited = asyncio.create_task(_ping_after(storage, 0.4))
        detached = detached_task(_ping_after(storage, 0.4), "ping")
    with pytest.raises(PyMongoError):
        await inherited
    await detached  # no deadline of its creator's: it pings


async def test_a_worker_that_swallowed_a_cancellation_still_stops() -> None:
    # What pymongo's pool does on Python 3.11 when a connection frees up as the
    # cancellation arrives: the awaited thing's result wins, the cancellation is gone.
    rounds: list[int] = []

    async def loops_until_cancelled() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not rounds:  # the first one is lost
                    rounds.append(1)
                    continue
                raise

    supervisor = Supervisor()
    supervisor.start("loop", loops_until_cancelled)
    await asyncio.sleep(0)  # let it start waiting
    async with asyncio.timeout(30) as deadline:  # a deadline, not a wait: it stops in ~1 s
        await supervisor.stop("loop")
    assert not deadline.expired()
    assert rounds == [1]
    assert supervisor.workers == {}
