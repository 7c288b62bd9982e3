"""The outbound dispatcher: queued messages leave through their channel, once, in order.

- A message is claimed atomically (queued → sending), so of several dispatchers
  (replicas) exactly one sends it.
- Messages to one contact leave in the order they were created: a message waits
  while an older one to the same contact is unsent.
- Transient failures are retried with exponential backoff and jitter; a provider's
  retry-after is honoured exactly; permanent failures end ``failed`` at once.
- Messages a dead process left ``sending`` are taken over after a lease: sent if the
  provider's id was recorded, queued again otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Hashable
from datetime import timedelta
from typing import Any

from pymongo.errors import PyMongoError

from channels.base import ProviderError, SendError, StatusReport
from gateway.channels import ChannelSet
from gateway.config import DeliveryConfig
from gateway.metrics import Metrics
from storage.database import Storage
from storage.records import new_id, utcnow

log = logging.getLogger("gateway.outbound")

POLL_SECONDS = 1.0  # also picks up messages another replica queued
BATCH = 100


class Pacer:
    """Spaces sends per key (a bot, a chat) by a minimum interval."""

    def __init__(self) -> None:
        self._next: dict[Hashable, float] = {}

    async def wait(self, key: Hashable, interval: float) -> None:
        if interval <= 0:
            return
        now = time.monotonic()
        at = max(now, self._next.get(key, 0.0))
        self._next[key] = at + interval
        if len(self._next) > 10_000:  # forget keys whose slot has passed
            self._next = {k: v for k, v in self._next.items() if v > now}
        if at > now:
            await asyncio.sleep(at - now)

    def hold(self, key: Hashable, seconds: float) -> None:
        """Nothing for ``key`` until ``seconds`` from now (a provider said so)."""
        self._next[key] = max(self._next.get(key, 0.0), time.monotonic() + seconds)


class Dispatcher:
    def __init__(
        self,
        storage: Storage,
        channels: ChannelSet,
        config: DeliveryConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self.storage = storage
        self.metrics = metrics or Metrics()
        self.channels = channels
        self.config = config
        self.owner = new_id()  # names this process in the claims it makes
        self.pacer = Pacer()
        self._wake = asyncio.Event()
        self._busy_contacts: set[str] = set()
        # Set by a pass over the outbox that left due messages behind (their contact
        # was busy, or the pass was full): a send ending then looks again at once.
        self._left_behind: set[str] = set()
        self._outbox_full = False
        self._sends: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(config.concurrency)
        self._loop: asyncio.Task[None] | None = None
        self._recovered_at = float("-inf")

    def notify(self) -> None:
        """A message was queued: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="dispatcher")

    async def stop(self, grace: float) -> None:
        """Stop claiming; let sends under way finish within ``grace`` seconds."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        if self._sends:
            _, unfinished = await asyncio.wait(self._sends, timeout=grace)
            for task in unfinished:  # left "sending": taken over after the lease
                task.cancel()
            if unfinished:
                log.warning("%d sends did not finish before shutdown", len(unfinished))

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._recover()
                wait = await self._dispatch_due()
            except PyMongoError as exc:
                log.warning("dispatcher: database error %s; retrying", type(exc).__name__)
                wait = POLL_SECONDS
            except Exception:  # a bug must not stop delivery for good
                log.exception("dispatcher: unexpected error; retrying")
                wait = POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _recover(self) -> None:
        # At start, then about twice per lease: not on every wake-up.
        lease_seconds = self.config.stale_sending_seconds
        if time.monotonic() - self._recovered_at < lease_seconds / 2:
            return
        self._recovered_at = time.monotonic()
        lease = timedelta(seconds=lease_seconds)
        sent, requeued = await self.storage.messages.recover_stale(utcnow() - lease)
        if sent or requeued:
            log.warning(
                "took over %d stale sends: %d were sent, %d queued again",
                sent + requeued,
                sent,
                requeued,
            )

    async def _dispatch_due(self) -> float:
        """Start sending every due message; returns seconds until the next one is due."""
        now = utcnow()
        outbox = await self.storage.messages.queued(BATCH)
        self._outbox_full = len(outbox) == BATCH
        self._left_behind.clear()
        for message in outbox:
            if message["next_attempt_at"] > now:  # the rest are later still
                return min(POLL_SECONDS, (message["next_attempt_at"] - now).total_seconds())
            contact = message["contact_id"]
            if contact in self._busy_contacts:
                self._left_behind.add(contact)
                continue
            if await self.storage.messages.has_earlier_unsent(message):
                self._left_behind.add(contact)
                continue  # an older message to this contact goes first
            claimed = await self.storage.messages.claim(message, self.owner)
            if claimed is None:
                continue  # another dispatcher took it
            self._busy_contacts.add(contact)
            task = asyncio.create_task(self._deliver(claimed), name=f"send {message['id']}")
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
        return POLL_SECONDS

    async def _deliver(self, message: dict[str, Any]) -> None:
        try:
            async with self._slots:
                await self._send(message)
        except PyMongoError as exc:  # the outcome could not be recorded: the lease recovers it
            log.warning("message %s: could not record the outcome (%s)", message["id"], exc)
        finally:
            contact = message["contact_id"]
            self._busy_contacts.discard(contact)
            if contact in self._left_behind or self._outbox_full:
                self._wake.set()  # what waited for this send may go now

    async def _send(self, message: dict[str, Any]) -> None:
        messages = self.storage.messages
        channel = self.channels.get(message["channel_id"])
        if channel is None:
            await messages.mark_failed(message["id"], "the message's channel is not configured")
            return
        to = message["contact"]["external_id"]
        per_channel, per_contact = channel.pacing()
        await self.pacer.wait(channel.id, per_channel)
        await self.pacer.wait((channel.id, to), per_contact)
        started = time.monotonic()
        try:
            external_id = await channel.send(to, message["content"], message["id"])
        except SendError as exc:
            await self._failed(message, channel.id, to, exc)
            return
        except Exception as exc:  # a bug or an unexpected client error: retry, loudly
            log.exception(
                "message %s: unexpected error from channel %r", message["id"], channel.name
            )
            await self._failed(message, channel.id, to, ProviderError(type(exc).__name__))
            return
        await messages.mark_sent(message["id"], external_id)
        self.metrics.send_seconds.labels(channel.name).observe(time.monotonic() - started)
        self.metrics.outbound.labels(channel.name, "sent").inc()
        log.info(
            "message %s sent through %r in %.0f ms",
            message["id"],
            channel.name,
            1000 * (time.monotonic() - started),
        )

    async def _failed(
        self, message: dict[str, Any], channel_id: str, to: str, exc: SendError
    ) -> None:
        attempts = message["attempts"]
        reason = exc.describe()
        if not exc.retry or attempts >= self.config.max_attempts:
            await self.storage.messages.mark_failed(message["id"], reason)
            channel = self.channels.get(channel_id)
            self.metrics.outbound.labels(channel.name if channel else "?", "failed").inc()
            log.warning("message %s failed after %d attempts: %s", message["id"], attempts, reason)
            return
        if exc.retry_after is not None:
            delay = exc.retry_after  # the provider's word, exactly
            self.pacer.hold(channel_id, delay)
            self.pacer.hold((channel_id, to), delay)
        else:
            ceiling = min(
                self.config.max_backoff_seconds, self.config.backoff_seconds * 2 ** (attempts - 1)
            )
            delay = ceiling * random.uniform(0.75, 1.0)  # noqa: S311 - jitter, not secrecy
        await self.storage.messages.retry_later(
            message["id"], utcnow() + timedelta(seconds=delay), reason
        )
        log.info(
            "message %s: attempt %d failed (%s); retry in %.1f s",
            message["id"],
            attempts,
            reason,
            delay,
        )


async def apply_statuses(storage: Storage, reports: list[StatusReport]) -> None:
    """A provider's delivery news; a status never moves backwards."""
    for report in reports:
        await storage.messages.apply_status(report.message_id, report.status, report.error)
