"""A channel's bot answers first; the agents take over when it hands off, when it is
stuck, or when one of them answers.

A channel names its bot (an API token of role ``bot``). Its new and reopened
conversations start in status ``bot`` (storage/conversations.py), where no agent
is offered them. The bot reads events (stream or subscription) and replies with
its token. A hand-off moves the conversation to the agents' queue with a reason:
the bot's own (``POST .../handoff/``), a reply deadline that passed, or the bot's
subscription failing. An agent may take the conversation at any time; from then on
the bot's sends to it are refused, so a bot and an agent never answer at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta

from gateway.assignment import Assigner
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.config import BotsConfig
from gateway.conversation_updates import ConversationUpdates
from gateway.errors import Conflict, NotFound, ValidationError
from storage.database import Storage
from storage.models import (
    AgentRef,
    Contact,
    Conversation,
    ConversationStatus,
    TokenRole,
    conversation_id,
)

log = logging.getLogger("gateway.bots")

SILENT_BATCH = 100  # conversations handed off per check at most


class BotLane:
    def __init__(
        self,
        storage: Storage,
        updates: ConversationUpdates,
        assigner: Assigner,
        config: BotsConfig,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.storage = storage
        self.updates = updates
        self.assigner = assigner
        self.config = config
        self.clock = clock
        self._bots: dict[str, str] = {}  # channel id → its bot's token id, as last read

    def bot_of(self, channel_id: str) -> str | None:
        return self._bots.get(channel_id)

    async def require_bot(self, bot_id: str | None) -> None:
        """A 400 unless ``bot_id`` is None or an API token of role bot."""
        if bot_id is None:
            return
        token = await self.storage.api_tokens.get(bot_id)
        if token is None or token.role is not TokenRole.BOT:
            raise ValidationError.of("bot_id", "no API token of role bot has this id")

    def channel_changed(self, channel_id: str, bot_id: str | None) -> None:
        """A channel's bot was set here: act on it now, not at the next read."""
        if bot_id is None:
            self._bots.pop(channel_id, None)
        else:
            self._bots[channel_id] = bot_id

    async def handoff(
        self, conversation_id_: str, reason: str, to: str | None = None
    ) -> Conversation:
        """From the bot to the agents (``to`` one of them, or the queue); a
        :class:`Conflict` if no bot holds it, :class:`NotFound` if there is none."""
        moved = await self.storage.conversations.handoff(conversation_id_, reason, to)
        if moved is None:  # read only when it did not move: a 404 or a 409
            if await self.storage.conversations.get(conversation_id_) is None:
                raise NotFound(f"No such conversation: {conversation_id_}")
            raise Conflict("no bot holds this conversation: the agents have it")
        await self.updates.conversations_changed([moved])
        if to is None:
            self.assigner.nudge()
        return moved

    async def before_send(self, sender: AgentRef, contact: Contact) -> None:
        """A bot sends only to its channel's conversations, while it holds them (409
        after an agent took one); an agent who answers a conversation its bot holds
        takes it over. Reads the conversation only where a bot may hold it."""
        if sender.kind != "bot" and contact.channel_id not in self._bots:
            return
        if sender.kind == "bot" and self._bots.get(contact.channel_id) != sender.id:
            raise Conflict("this bot is not this contact's channel's bot")
        held = await self.storage.conversations.get(conversation_id(contact.id))
        by_bot = held is not None and held.status is ConversationStatus.BOT
        if sender.kind == "bot" and not by_bot:
            raise Conflict("the agents hold this conversation now: the bot's messages are refused")
        if sender.kind == "agent" and held is not None and by_bot:
            with contextlib.suppress(Conflict):  # handed off meanwhile: it is the agents'
                await self.handoff(held.id, f"{sender.username} answered", to=sender.id)

    async def run(self) -> None:
        """Keep the channels' bots current and hand off what their bots leave
        unanswered (a supervised worker)."""
        while True:
            await self.check()
            await asyncio.sleep(self.config.recheck_seconds)

    async def check(self) -> None:
        self._bots = await self.storage.channels.bots()
        if not self._bots:
            return
        now, config = self.clock.now(), self.config
        deadline = config.reply_deadline_seconds
        silent = await self.storage.conversations.bot_silent(
            now - timedelta(seconds=deadline), SILENT_BATCH
        )
        await self._hand_off(silent, lambda c: f"the bot did not reply within {deadline:g} s")
        failing_since = now - timedelta(seconds=config.failing_subscription_seconds)
        failing = await self.storage.subscriptions.failing_bots(failing_since)
        channels = [c for c, bot in self._bots.items() if bot in failing]
        if channels:
            held = await self.storage.conversations.held_by_bot(channels, SILENT_BATCH)
            await self._hand_off(
                held, lambda c: f"the bot's webhook is failing: {failing[self._bots[c.channel_id]]}"
            )

    async def _hand_off(
        self, conversations: list[Conversation], reason: Callable[[Conversation], str]
    ) -> None:
        for conversation in conversations:
            with contextlib.suppress(Conflict):  # another gateway was first
                await self.handoff(conversation.id, reason(conversation))
                log.info("conversation %s handed off: %s", conversation.id, reason(conversation))
