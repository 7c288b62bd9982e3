"""The bot lane's rules alone, on in-memory conversations and a fake clock: who may
send to a conversation its bot holds, and when it goes to the agents by itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from gateway.bot_lane import BotLane
from gateway.config import BotsConfig
from gateway.errors import Conflict
from storage.models import AgentRef, Contact, ConversationStatus, conversation_id
from tests.unit.fakes import START, FakeClock, conversation

BOT = AgentRef("t1", "Helper", "bot")
ANA = AgentRef("a1", "ana")
CRM = AgentRef("t2", "CRM", "integration")


class Conversations:
    """What the lane reads and writes of storage.conversations, in memory."""

    def __init__(self) -> None:
        self.by_id: dict[str, Any] = {}
        self.reads = 0

    def add(self, contact_id: str, status: ConversationStatus, inbound_at: datetime) -> None:
        held = replace(conversation(0), id=conversation_id(contact_id), contact_id=contact_id,
                       channel_id="chan", status=status, last_inbound_at=inbound_at)  # fmt: skip
        self.by_id[held.id] = held

    async def get(self, conversation_id_: str) -> Any:
        self.reads += 1
        return self.by_id.get(conversation_id_)

    async def handoff(self, conversation_id_: str, reason: str, to: str | None = None) -> Any:
        held = self.by_id.get(conversation_id_)
        if held is None or held.status is not ConversationStatus.BOT:
            return None
        moved = replace(held, status=ConversationStatus.OPEN, assignee_id=to, handoff_reason=reason)
        self.by_id[conversation_id_] = moved
        return moved

    async def bot_silent(self, since: datetime, limit: int) -> list[Any]:
        return [c for c in self.by_id.values()
                if c.status is ConversationStatus.BOT and c.last_inbound_at < since]  # fmt: skip

    async def held_by_bot(self, channel_ids: list[str], limit: int) -> list[Any]:
        return [c for c in self.by_id.values()
                if c.status is ConversationStatus.BOT and c.channel_id in channel_ids]  # fmt: skip


def _lane(
    failing: dict[str, str] | None = None,
) -> tuple[BotLane, Conversations, FakeClock, list[Any]]:
    conversations, clock, changed = Conversations(), FakeClock(), []

    async def bots() -> dict[str, str]:
        return {"chan": "t1"}

    async def failing_bots(since: datetime) -> dict[str, str]:
        return failing or {}

    async def conversations_changed(moved: list[Any]) -> None:
        changed.extend(moved)

    storage = SimpleNamespace(
        conversations=conversations,
        channels=SimpleNamespace(bots=bots),
        subscriptions=SimpleNamespace(failing_bots=failing_bots),
    )
    updates = SimpleNamespace(conversations_changed=conversations_changed)
    assigner = SimpleNamespace(nudge=lambda: None)
    config = BotsConfig(reply_deadline_seconds=60, failing_subscription_seconds=30)
    lane = BotLane(cast(Any, storage), cast(Any, updates), cast(Any, assigner), config, clock)
    return lane, conversations, clock, changed


def _contact(contact_id: str, channel_id: str = "chan") -> Contact:
    return Contact(contact_id, channel_id, contact_id, "", "", None, START)


async def test_a_bot_sends_only_while_it_holds_the_conversation() -> None:
    lane, conversations, _, _ = _lane()
    await lane.check()  # learns the channel's bot
    conversations.add("c1", ConversationStatus.BOT, START)
    conversations.add("c2", ConversationStatus.OPEN, START)
    await lane.before_send(BOT, _contact("c1"))
    with pytest.raises(Conflict):
        await lane.before_send(BOT, _contact("c2"))
    with pytest.raises(Conflict):  # a bot writes first to nobody
        await lane.before_send(BOT, _contact("c3"))
    other = AgentRef("t9", "Another bot", "bot")
    with pytest.raises(Conflict, match="not this contact's channel's bot"):
        await lane.before_send(other, _contact("c1"))


async def test_an_agent_who_answers_takes_it_over_and_the_bot_is_refused() -> None:
    lane, conversations, _, changed = _lane()
    await lane.check()
    conversations.add("c1", ConversationStatus.BOT, START)
    await lane.before_send(ANA, _contact("c1"))
    taken = conversations.by_id[conversation_id("c1")]
    assert (taken.status, taken.assignee_id, taken.handoff_reason) == (
        ConversationStatus.OPEN, "a1", "ana answered",
    )  # fmt: skip
    assert changed == [taken]  # its event
    with pytest.raises(Conflict):
        await lane.before_send(BOT, _contact("c1"))
    await lane.before_send(CRM, _contact("c1"))  # an integration's send changes nothing


async def test_sends_on_channels_without_a_bot_read_nothing() -> None:
    lane, conversations, _, _ = _lane()
    await lane.check()
    await lane.before_send(ANA, _contact("c9", channel_id="other"))
    await lane.before_send(CRM, _contact("c9", channel_id="other"))
    assert conversations.reads == 0


async def test_the_reply_deadline_hands_off_only_what_waited_past_it() -> None:
    lane, conversations, clock, _ = _lane()
    conversations.add("late", ConversationStatus.BOT, START)
    conversations.add("fresh", ConversationStatus.BOT, START + timedelta(seconds=50))
    clock.advance(61)
    await lane.check()
    late, fresh = (conversations.by_id[conversation_id(c)] for c in ("late", "fresh"))
    assert (late.status, late.handoff_reason) == (
        ConversationStatus.OPEN, "the bot did not reply within 60 s",
    )  # fmt: skip
    assert fresh.status is ConversationStatus.BOT


async def test_a_failing_subscription_hands_off_everything_its_bot_holds() -> None:
    lane, conversations, _, _ = _lane(failing={"t1": "HTTP 503"})
    conversations.add("c1", ConversationStatus.BOT, START)
    await lane.check()
    moved = conversations.by_id[conversation_id("c1")]
    assert moved.handoff_reason == "the bot's webhook is failing: HTTP 503"
