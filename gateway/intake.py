"""What channels hand in, from webhooks and pollers alike: inbound messages, stored
once with their FAQ answers queued (gateway/inbound.py), and delivery news."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from channels.base import Channel, Inbound, Sink, StatusReport, Unavailable, WebhookResult
from gateway.bus import Bus, StatusesChanged
from gateway.faq import FaqResponder
from gateway.inbound import InboundWriter, Received, receive
from gateway.metrics import Metrics
from storage.database import Storage
from storage.errors import is_unavailable
from storage.models import Message, Status

log = logging.getLogger("gateway.intake")


class Intake:
    def __init__(
        self,
        storage: Storage,
        writer: InboundWriter,
        faq: FaqResponder,
        metrics: Metrics,
        queued: Callable[[list[Message]], Awaitable[None]],
        bus: Bus,
    ) -> None:
        self.storage = storage
        self.writer = writer
        self.faq = faq
        self.metrics = metrics
        self.queued = queued  # FAQ answers, queued to send
        self.bus = bus  # told of the messages a provider's news moved

    async def receive(self, channel: Channel, items: list[Inbound]) -> Received:
        """Store what a channel received, answering FAQs; returns once it is durable."""
        result = await receive(self.writer, channel, items, self.faq, self.queued)
        inbound = self.metrics.inbound
        inbound.labels(channel.name, "stored").inc(result.stored)
        inbound.labels(channel.name, "duplicate").inc(result.duplicates)
        inbound.labels(channel.name, "failed").inc(len(result.failed))
        return result

    async def accept(self, channel: Channel, result: WebhookResult) -> None:
        """A verified webhook's news and messages; raises what kept one from being
        stored, so that the provider is not told it was."""
        if result.statuses:
            moved = await self._apply_statuses(channel, list(result.statuses))
            await self.bus.publish(StatusesChanged(moved))
        if result.messages:
            received = await self.receive(channel, list(result.messages))
            if received.failed:
                raise received.failed[0]

    async def _apply_statuses(self, channel: Channel, reports: list[StatusReport]) -> list[Message]:
        """A provider's news about the channel's messages; never moves a status
        backwards. Returns the messages it moved."""
        moved = []
        for report in reports:
            message = await self.storage.messages.apply_status(
                channel.id,
                report.message_id,
                Status(report.status),
                external_id=report.external_id,
                error=report.error,
            )
            if message is not None:
                moved.append(message)
        return moved

    def sink_for(self, channel: Channel) -> Sink:
        """Where the channel's poller hands what it receives."""

        async def sink(items: list[Inbound]) -> None:
            try:
                result = await self.receive(channel, items)
            except Exception as exc:
                if is_unavailable(exc):
                    raise Unavailable(type(exc).__name__) from exc
                raise
            for failure in result.failed:  # acknowledged to the provider, so logged loudly
                log.error("channel %r: a received message could not be stored: %s",
                          channel.name, failure)  # fmt: skip

        return sink
