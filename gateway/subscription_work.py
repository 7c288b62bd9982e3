"""Which gateway delivers which subscription, and how a delivery goes out.

One lease per subscription (``subscription:<id>``, the leases channels use): its
holder runs the subscription's sender, so two gateways never send one
subscription's events at once, and another takes over within a lease when the
holder dies. A delivery is the event as the event stream shows it, signed as
Standard Webhooks specifies, posted with no redirect followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import version
from typing import Any

from pymongo.errors import PyMongoError

from common.backoff import Backoff
from common.standard_webhooks import signed_headers
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.config import Config
from gateway.events import EventHub, EventLog
from gateway.leases import give_back
from gateway.subscription_sender import Attempt, Policy, SubscriptionSender
from gateway.webhook_targets import TargetClient
from gateway.workers import Supervisor
from storage.database import Storage
from storage.events import EventsRepository
from storage.models import Event, EventType, Subscription
from storage.records import utcnow

log = logging.getLogger("gateway.subscriptions")

PresentEvent = Callable[[Event], dict[str, Any]]
STOP_GRACE_SECONDS = 5.0  # a sender stopping finishes its delivery within this, or is cut


class WebhookPoster:
    """Posts one event to one subscription's URL and says how it went."""

    def __init__(
        self, present: PresentEvent, allow_private: bool, timeout: float, clock: Clock
    ) -> None:
        self.present = present
        self.client = TargetClient(allow_private, timeout)
        self.clock = clock
        self._agent = f"bot-gateway/{version('bot-gateway')}"

    async def __call__(self, subscription: Subscription, event: Event) -> Attempt:
        body = json.dumps(self.present(event), default=str, ensure_ascii=False).encode()
        stamp = int(self.clock.now().timestamp())
        headers = signed_headers(subscription.secret, event.id, stamp, body)
        headers |= {"Content-Type": "application/json", "User-Agent": self._agent}
        started = time.monotonic()
        status, error = await self.client.post(subscription.url, body, headers)
        return Attempt(status, error, round((time.monotonic() - started) * 1000))

    async def close(self) -> None:
        await self.client.close()


class SubscriptionWork:
    def __init__(
        self,
        storage: Storage,
        event_log: EventLog,
        supervisor: Supervisor,
        present: PresentEvent,
        config: Config,
        *,
        exclusive: bool,
        owner: str,
    ) -> None:
        self.storage = storage
        self.event_log = event_log  # where a subscription's disabling is told
        self.hub = event_log.hub
        self.supervisor = supervisor
        settings = config.subscriptions
        self.poster = WebhookPoster(
            present, settings.allow_private_targets, settings.timeout_seconds, SYSTEM_CLOCK
        )
        self.policy = Policy(
            Backoff(settings.retry_first_seconds, settings.retry_max_seconds),
            timedelta(hours=config.events.retention_hours),
        )
        self.lease_seconds = config.cluster.lease_seconds
        self.exclusive = exclusive
        self.owner = owner
        self.senders: dict[str, SubscriptionSender] = {}  # those this gateway runs
        self.held: dict[str, float] = {}  # id → monotonic time our lease surely holds to
        self._changed = asyncio.Event()
        self.hub.on_handed_out(self._events_written)

    def start(self) -> None:
        self.supervisor.start("subscription leases", self._keep_leases)

    def nudge(self, subscription_id: str | None = None) -> None:
        """A subscription changed here (created, resumed, replayed): act on it now."""
        sender = self.senders.get(subscription_id or "")
        if sender is not None:
            sender.wake.set()
        self._changed.set()

    def _events_written(self) -> None:
        for sender in self.senders.values():
            sender.wake.set()

    async def stop(self) -> None:
        await self.supervisor.stop("subscription leases")
        for subscription_id in list(self.senders):
            await self._rest(subscription_id)
        await self.poster.close()

    async def release(self) -> None:
        """Hand the leases back, so another gateway takes the subscriptions over now."""
        held, self.held = [_lease(s) for s in self.held], {}
        await give_back(self.storage.leases, held, self.owner)

    async def _keep_leases(self) -> None:
        while True:
            self._changed.clear()  # before: a nudge while renewing is not lost
            await self.renew()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.lease_seconds / 3)

    async def renew(self) -> None:
        """Take or renew the lease of each active subscription; run its sender while
        the lease holds, and stop the senders of those no longer active or held."""
        active = set(await self.storage.subscriptions.active_ids())
        for subscription_id in active:
            asked = time.monotonic()
            until = utcnow() + timedelta(seconds=self.lease_seconds)
            try:
                mine = await self.storage.leases.hold(
                    _lease(subscription_id), self.owner, until, force=self.exclusive
                )
            except PyMongoError as exc:
                log.warning("subscription lease not renewed (%s)", type(exc).__name__)
                mine = subscription_id in self.held and asked < self.held[subscription_id]
                if mine:
                    continue  # the lease we last renewed still holds
            if mine:
                self.held[subscription_id] = asked + self.lease_seconds * 2 / 3
                await self._work(subscription_id)
            else:
                await self._rest(subscription_id)
        for subscription_id in set(self.held) - active:  # paused, disabled or deleted
            await self._rest(subscription_id)
            await self.storage.leases.drop(_lease(subscription_id), self.owner)

    async def _work(self, subscription_id: str) -> None:
        name = _worker(subscription_id)
        if self.supervisor.running(name):
            return
        await self.supervisor.stop(name)  # a sender that returned (it was paused)
        sender = SubscriptionSender(
            subscription_id,
            self.storage.subscriptions,
            _LogTail(self.storage.events, self.hub),
            self.poster,
            self.policy,
            self._disabled,
        )
        self.senders[subscription_id] = sender
        self.supervisor.start(name, sender.run)

    async def _disabled(self, subscription: Subscription) -> None:
        await self.event_log.append([(EventType.SUBSCRIPTION_DISABLED, None, subscription)])

    async def _rest(self, subscription_id: str) -> None:
        self.held.pop(subscription_id, None)
        sender = self.senders.pop(subscription_id, None)
        if sender is not None:  # it sees the delivery under way through, then ends
            sender.stopping = True
            sender.wake.set()
            await self.supervisor.stop_after(_worker(subscription_id), STOP_GRACE_SECONDS)


@dataclass(frozen=True)
class _LogTail:
    """The event log as far as it may be read now (gateway/subscription_sender.py)."""

    events: EventsRepository
    hub: EventHub

    async def after(self, key: str, limit: int, *, before: str | None = None) -> list[Event]:
        return await self.events.after(key, limit, before=before)

    def horizon(self) -> str:
        return self.hub.horizon()


def _lease(subscription_id: str) -> str:
    return f"subscription:{subscription_id}"


def _worker(subscription_id: str) -> str:
    return f"subscription {subscription_id}"
