"""Long-lived tasks: they must not inherit a deadline from the code that started them."""

from __future__ import annotations

import asyncio

import pymongo
import pytest
from pymongo.errors import PyMongoError

from gateway.workers import detached_task
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
