"""Supervised background workers: pollers, the dispatcher, the sweeper, the database watch.

A worker is a coroutine that runs until it is stopped (or until its job is done,
like registering a webhook). One that raises is logged with its traceback,
counted, and started again after a backoff, so no worker dies for good. A worker
down for longer than a few seconds is named by ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from common.backoff import Backoff

log = logging.getLogger("gateway.workers")

T = TypeVar("T")
RECANCEL_SECONDS = 1.0  # how long a stopped worker has before it is cancelled again
STABLE_SECONDS = 10.0  # a restarted worker that runs this long is up again
DOWN_GRACE_SECONDS = 5.0  # /readyz names workers down longer than this


def detached_task(work: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """A task that does not inherit its creator's context variables.

    A task copies them when it is created, pymongo's timeout deadline included: a
    long-lived task made inside ``pymongo.timeout(...)`` would find every database
    call of its own cut short once its creator's deadline has passed.
    """
    return asyncio.create_task(work, name=name, context=contextvars.Context())


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has ended.

    It is cancelled again while it runs: one cancellation can be lost on Python 3.11,
    whose ``asyncio.wait_for`` returns the result when the awaited thing finishes as
    the cancellation arrives (https://github.com/python/cpython/issues/86296), and
    pymongo's pool waits with it. A worker that loops until cancelled ran on, and
    its stop never returned.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_SECONDS)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@dataclass
class Worker:
    name: str
    run: Callable[[], Awaitable[None] | None]  # None: nothing to run
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)
    failing_since: float | None = None  # the first crash of the current streak
    task: asyncio.Task[None] | None = None

    def down_for(self, now: float) -> float:
        """Seconds this worker has been failing; 0 while it runs well."""
        if self.failing_since is None:
            return 0.0
        if self.task is not None and now - self.started_at >= STABLE_SECONDS:
            self.failing_since = None  # ran long enough since its last restart
            return 0.0
        return now - self.failing_since


class Supervisor:
    def __init__(self, on_restart: Callable[[str], None] | None = None) -> None:
        self.workers: dict[str, Worker] = {}
        self._on_restart = on_restart or (lambda name: None)

    def start(self, name: str, run: Callable[[], Awaitable[None] | None]) -> None:
        """Run ``run()`` as the worker ``name``, restarting it whenever it raises."""
        if name in self.workers:
            raise RuntimeError(f"worker {name!r} is already running")
        worker = Worker(name, run)
        worker.task = detached_task(self._keep(worker), name)
        self.workers[name] = worker

    def running(self, name: str) -> bool:
        """Whether the worker ``name`` is there and its job not done."""
        worker = self.workers.get(name)
        return worker is not None and worker.task is not None and not worker.task.done()

    async def stop_after(self, name: str, grace: float) -> None:
        """Let the worker ``name`` end by itself (it was told to) for up to ``grace``
        seconds, then stop it."""
        worker = self.workers.get(name)
        if worker is not None and worker.task is not None:
            await asyncio.wait({worker.task}, timeout=grace)
        await self.stop(name)

    async def stop(self, name: str) -> None:
        worker = self.workers.pop(name, None)
        if worker is not None and worker.task is not None:
            await cancel_and_wait(worker.task)

    async def stop_all(self) -> None:
        for name in list(self.workers):
            await self.stop(name)

    def down(self, longer_than: float = DOWN_GRACE_SECONDS) -> list[str]:
        """Names of the workers that have been failing for longer than ``longer_than``."""
        now = time.monotonic()
        return sorted(n for n, w in self.workers.items() if w.down_for(now) > longer_than)

    async def _keep(self, worker: Worker) -> None:
        backoff = Backoff()
        while True:
            worker.started_at = time.monotonic()
            try:
                work = worker.run()
                if work is not None:
                    await work
            except asyncio.CancelledError:
                raise
            except Exception:
                now = time.monotonic()
                if now - worker.started_at >= STABLE_SECONDS:
                    backoff.reset()  # it had run well: a new streak
                    worker.failing_since = None
                if worker.failing_since is None:
                    worker.failing_since = now
                worker.restarts += 1
                self._on_restart(worker.name)
                wait = backoff.next()
                log.exception("worker %r failed; restarting in %.1f s", worker.name, wait)
                await asyncio.sleep(wait)
            else:
                worker.failing_since = None
                return  # its job is done (a webhook registered, ...)
