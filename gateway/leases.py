"""Which gateway works which channel: one lease per channel, kept in the database.

The holder of a channel's lease runs the channel's background work (Telegram
polling, webhook registration) and sends its outbox. Webhooks and the API need no
lease: they land on any gateway. The holder renews every third of the lease; a
gateway that stops renewing (``kill -9`` included) is replaced by another within
one lease. A holder that cannot renew stops working the channel before its lease
can have run out, so two gateways never poll or send for one channel at once.

With the embedded database the data dir already belongs to one gateway, so that
gateway takes every lease at once, also those a previous run left behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta

from pymongo.errors import PyMongoError

from channels.base import Channel, Sink
from gateway.channels import ChannelSet
from gateway.outbound import Dispatcher
from gateway.workers import Supervisor
from storage.database import Storage
from storage.leases import LeasesRepository
from storage.records import utcnow

log = logging.getLogger("gateway.leases")


class ChannelWork:
    def __init__(
        self,
        storage: Storage,
        channels: ChannelSet,
        dispatcher: Dispatcher,
        supervisor: Supervisor,
        sink_for: Callable[[Channel], Sink],
        *,
        lease_seconds: float,
        exclusive: bool,
    ) -> None:
        self.storage = storage
        self.channels = channels
        self.dispatcher = dispatcher
        self.supervisor = supervisor
        self.sink_for = sink_for
        self.lease_seconds = lease_seconds
        self.exclusive = exclusive
        self.owner = dispatcher.owner
        # channel id → monotonic time until which our lease surely still holds
        self.held: dict[str, float] = {}

    def start(self) -> None:
        self.supervisor.start("channel leases", self._keep_leases)

    async def stop(self) -> None:
        """Stop polling and renewing; the dispatcher is stopped after this, by the caller."""
        await self.supervisor.stop("channel leases")
        for channel in self.channels:
            if channel.id in self.held:
                await self.supervisor.stop(_worker(channel))

    async def release(self) -> None:
        """Hand the leases back, so another gateway takes the channels over at once."""
        held, self.held = list(self.held), {}
        await give_back(self.storage.leases, held, self.owner)

    async def _keep_leases(self) -> None:
        while True:
            await self.renew()
            await asyncio.sleep(self.lease_seconds / 3)

    async def renew(self) -> None:
        """Take or renew each channel's lease; start or stop its work accordingly."""
        for channel in self.channels:
            asked = time.monotonic()
            until = utcnow() + timedelta(seconds=self.lease_seconds)
            try:
                renewed = await self.storage.leases.hold(
                    channel.id, self.owner, until, force=self.exclusive
                )
            except PyMongoError as exc:
                log.warning("lease of channel %r not renewed (%s)", channel.name,
                            type(exc).__name__)  # fmt: skip
                # Keep working only while the lease we last renewed surely holds.
                if channel.id in self.held and asked >= self.held[channel.id]:
                    del self.held[channel.id]
                    await self._rest(channel)
                continue
            if renewed:
                first = channel.id not in self.held
                # Two renewals may fail before we stop; a third of the lease is left
                # for the clocks of two machines to differ.
                self.held[channel.id] = asked + self.lease_seconds * 2 / 3
                if first:
                    self._work(channel)
            elif channel.id in self.held:
                del self.held[channel.id]
                await self._rest(channel)

    def _work(self, channel: Channel) -> None:
        log.info("channel %r: this gateway works it now", channel.name)
        sink = self.sink_for(channel)
        self.supervisor.start(_worker(channel), lambda: channel.background(sink))
        self.dispatcher.hold(channel)

    async def _rest(self, channel: Channel) -> None:
        log.warning("channel %r: lease lost; another gateway works it now", channel.name)
        await self.supervisor.stop(_worker(channel))
        await self.dispatcher.drop(channel)


async def give_back(leases: LeasesRepository, names: list[str], owner: str) -> None:
    """Release ``names`` at shutdown; if the database is away they expire instead."""
    if not names:
        return
    try:
        await leases.release(names, owner)
    except PyMongoError as exc:
        log.warning("leases not released (%s); they expire instead", type(exc).__name__)


def _worker(channel: Channel) -> str:
    return f"channel {channel.name}"
