"""What channels hand in, from webhooks and pollers alike: inbound messages, stored
once with their FAQ answers queued (gateway/inbound.py), and providers' status
reports on our sends."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from channels.base import Channel, Inbound, Sink, StatusReport, Unavailable, WebhookResult
from gateway.bus import Bus, StatusesChanged
from gateway.faq import FaqAnswer, FaqResponder, question_phrase
from gateway.inbound import InboundWriter
from gateway.metrics import Metrics
from storage.database import Storage
from storage.errors import is_unavailable
from storage.models import Message, Status

log = logging.getLogger("gateway.channel_inbox")


@dataclass
class Received:
    """What became of the messages a channel handed in."""

    stored: int = 0
    duplicates: int = 0
    auto_replies: int = 0
    failed: list[BaseException] = field(default_factory=list)  # refused, not stored


class ChannelInbox:
    """Where every channel hands in what it receives: messages to store and status
    reports to apply."""

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
        self.bus = bus  # told of the messages a provider's status reports moved

    async def receive(self, channel: Channel, messages: list[Inbound]) -> Received:
        """Store what a channel received, answering FAQs; returns once every message is
        durable, counted in the metrics.

        Raises the database's error if it was unavailable for any of them (nothing is
        acknowledged then); a message refused for any other reason is counted in
        ``failed`` and the others are stored all the same.
        """
        prepared, answers = await self._prepare(channel, messages)
        result = Received()
        written = await self.writer.write(channel, prepared)
        away = next((w for w in written if isinstance(w, Exception) and is_unavailable(w)), None)
        if away is not None:
            raise away
        replies = []
        for outcome, found in zip(written, answers, strict=True):
            if isinstance(outcome, BaseException):
                result.failed.append(outcome)
                continue
            contact, created = outcome
            if not created:
                result.duplicates += 1
                continue
            result.stored += 1
            if found is not None:
                reply = await self.faq.reply(contact, found)
                if reply is not None:
                    replies.append(reply)
        result.auto_replies = len(replies)
        if replies:
            await self.queued(replies)
        inbound = self.metrics.inbound
        inbound.labels(channel.name, "stored").inc(result.stored)
        inbound.labels(channel.name, "duplicate").inc(result.duplicates)
        inbound.labels(channel.name, "failed").inc(len(result.failed))
        return result

    async def _prepare(
        self, channel: Channel, messages: list[Inbound]
    ) -> tuple[list[tuple[Inbound, dict[str, Any]]], list[FaqAnswer | None]]:
        """Each message with what is stored beside it, and the FAQ it asks, if any:
        looked up before the insert, so it is stored with its FAQ."""
        prepared: list[tuple[Inbound, dict[str, Any]]] = []
        answers: list[FaqAnswer | None] = []
        for message in messages:
            # Only plain text can ask a question: not a photo's placeholder, not an edit.
            plain = not message.meta
            phrase = question_phrase(message.text) if plain else ""
            found = None
            if plain and channel.faq_auto_reply:
                found = await self.faq.lookup_phrase(phrase)
            extra: dict[str, Any] = {"normalized": phrase} if plain else {"meta": message.meta}
            if found is not None:
                extra["faq_id"] = found.faq_id  # suggestions leave answered questions out
            prepared.append((message, extra))
            answers.append(found)
        return prepared, answers

    async def accept(self, channel: Channel, result: WebhookResult) -> None:
        """A verified webhook's status reports and messages; raises what kept one from being
        stored, so that the provider is not told it was."""
        if result.statuses:
            moved = await self._apply_statuses(channel, list(result.statuses))
            await self.bus.publish(StatusesChanged(moved))
        if result.messages:
            received = await self.receive(channel, list(result.messages))
            if received.failed:
                raise received.failed[0]

    async def _apply_statuses(self, channel: Channel, reports: list[StatusReport]) -> list[Message]:
        """A provider's status reports on the channel's messages; never moves a status
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
