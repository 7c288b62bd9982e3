"""Delivering one subscription's events: in the log's order, the next only once the
one before got a 2xx, each retried with backoff until it does.

The subscription's ``cursor`` (the last event done with) is written after each 2xx,
so a gateway killed mid-delivery leaves the next holder of the subscription's lease
to send that event again, with the same ``webhook-id``: at least once, in order. A
subscription that has failed for as long as the log keeps events is disabled with
its reason; by then what it missed is gone from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from common.backoff import Backoff
from gateway.clock import SYSTEM_CLOCK, Clock
from storage.models import Event, Subscription

log = logging.getLogger("gateway.subscriptions")

BATCH = 100  # events read from the log at once


@dataclass(frozen=True)
class Attempt:
    """What one try came to: the receiver's status (None: no answer) or why not."""

    status: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


Post = Callable[[Subscription, Event], Awaitable[Attempt]]


class SubscriptionStore(Protocol):
    """What the sender reads and writes of storage.subscriptions."""

    async def get(self, subscription_id: str) -> Subscription | None: ...
    async def advance(self, subscription_id: str, cursor: str, to: str) -> bool: ...
    async def failing(self, subscription_id: str, since: datetime, error: str) -> None: ...
    async def update(
        self, subscription_id: str, changes: dict[str, Any]
    ) -> Subscription | None: ...
    async def logged(self, delivery: dict[str, Any]) -> None: ...


class EventSource(Protocol):
    """The event log as the sender reads it: what follows a cursor, up to the newest
    id that may be read now (one another gateway is still writing comes later: see
    gateway/events.py, EventHub.horizon)."""

    async def after(self, key: str, limit: int, *, before: str | None = None) -> list[Event]: ...
    def horizon(self) -> str: ...


@dataclass(frozen=True)
class Policy:
    retry: Backoff  # between the tries of one event
    give_up_after: timedelta  # failing this long disables the subscription
    poll_seconds: float = 1.0  # how often an idle sender looks for other gateways' events


class SubscriptionSender:
    def __init__(
        self,
        subscription_id: str,
        store: SubscriptionStore,
        events: EventSource,
        post: Post,
        policy: Policy,
        disabled: Callable[[Subscription], Awaitable[None]],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.id = subscription_id
        self.store = store
        self.events = events
        self.disabled = disabled  # told of a subscription it disabled (an event says so)
        self.post = post
        self.policy = policy
        self.clock = clock
        self.wake = asyncio.Event()  # set when there may be more to send, or a change
        # Set to end at the next step: the delivery under way is seen through and its
        # cursor written, so a gateway that stops sends nothing twice.
        self.stopping = False

    async def run(self) -> None:
        """Deliver until the subscription is paused, disabled or deleted."""
        while not self.stopping:
            subscription = await self.store.get(self.id)
            if subscription is None or not subscription.active:
                return
            self.wake.clear()
            batch = await self.events.after(
                subscription.cursor, BATCH, before=self.events.horizon()
            )
            if not batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.policy.poll_seconds)
                continue
            await self._deliver_batch(subscription, batch)

    async def _deliver_batch(self, subscription: Subscription, batch: list[Event]) -> None:
        current: Subscription | None = subscription
        for event in batch:
            if event.type not in subscription.events:
                continue
            if self.stopping:
                return
            assert current is not None
            current = await self._deliver(current, event)
            if current is None:
                return  # changed meanwhile: read it again
        if current is not None and current.cursor != batch[-1].id:  # the rest: not wanted
            await self.store.advance(self.id, current.cursor, batch[-1].id)

    async def _deliver(self, subscription: Subscription, event: Event) -> Subscription | None:
        """Try ``event`` until a 2xx; the subscription as it is then, or None if it
        changed meanwhile (paused, replayed, disabled: the caller reads it again)."""
        attempt = 0
        while True:
            attempt += 1
            outcome = await self.post(subscription, event)
            await self.store.logged(
                {
                    "subscription_id": self.id,
                    "event_id": event.id,
                    "event_type": event.type.value,
                    "attempt": attempt,
                    "status": outcome.status,
                    "error": outcome.error,
                    "duration_ms": outcome.duration_ms,
                }
            )
            if outcome.ok:
                if not await self.store.advance(self.id, subscription.cursor, event.id):
                    return None
                return replace(subscription, cursor=event.id, failing_since=None, last_error=None)
            if not await self._failed(subscription, outcome.error or f"HTTP {outcome.status}"):
                return None
            if self.stopping:
                return None
            with contextlib.suppress(TimeoutError):  # a change (a pause, a new URL) ends it
                await asyncio.wait_for(self.wake.wait(), self.policy.retry.delay(attempt))
            self.wake.clear()
            fresh = await self.store.get(self.id)
            if fresh is None or not fresh.active or fresh.cursor != subscription.cursor:
                return None
            subscription = fresh

    async def _failed(self, subscription: Subscription, error: str) -> bool:
        """Note a failure; False once the subscription has failed for too long."""
        now = self.clock.now()
        since = subscription.failing_since or now
        await self.store.failing(self.id, since, error)
        if now - since < self.policy.give_up_after:
            return True
        hours = self.policy.give_up_after.total_seconds() / 3600
        reason = f"every delivery failed for {hours:g} hours; the last: {error}"
        disabled = await self.store.update(self.id, {"disabled_reason": reason})
        log.warning("subscription %s disabled: %s", self.id, reason)
        if disabled is not None:
            await self.disabled(replace(disabled, secret=""))  # never in the log
        return False
