"""What the conversation updates tell of messages and conversations, with in-memory
conversations and event log: inbound news before the webhook is answered, outbound
news after the handoff, in order, and what piles up meanwhile written together."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from gateway.bus import AssignmentsMade, Bus, ConversationsWaiting
from gateway.conversation_updates import ConversationUpdates
from storage.models import EventType, conversation_id
from tests.unit.fakes import conversation, until


class Log:
    def __init__(self) -> None:
        self.entries: list[tuple[EventType, str | None, Any]] = []

    async def append(self, entries: list[Any]) -> None:
        self.entries += entries


class Conversations:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def arrived(self, arrivals: list[Any]) -> list[Any]:
        return [
            replace(conversation(n, a.assignee), id=conversation_id(a.contact.id))
            for n, a in enumerate(arrivals)
        ]

    async def sent(self, messages: list[Any]) -> dict[str, str]:
        self.calls.append(("sent", len(messages)))
        await self.gate.wait()
        return {m.conversation_id: "ana" for m in messages}

    async def message_changed(self, messages: list[Any]) -> None:
        self.calls.append(("changed", len(messages)))

    async def assignees(self, ids: list[str]) -> dict[str, str]:
        return dict.fromkeys(ids, "ana")


def message(n: int) -> Any:
    return SimpleNamespace(id=f"m{n}", conversation_id="c0000")


async def test_queued_messages_go_to_delivery_first_and_their_news_after_in_order() -> None:
    log, conversations, handed = Log(), Conversations(), []
    updates = ConversationUpdates(
        SimpleNamespace(conversations=conversations),  # type: ignore[arg-type]
        log,  # type: ignore[arg-type]
        handed.append,
        Bus(),
    )
    conversations.gate.clear()
    await updates.queued([message(1)])
    assert [[m.id for m in batch] for batch in handed] == [["m1"]]  # delivery has it at once
    await until(lambda: conversations.calls)  # the news writer is on it
    await updates.queued([message(2)])  # while the first news is written
    await updates.queued([message(3)])
    await updates.changed([message(1)])
    conversations.gate.set()
    await updates.drain(5)
    assert conversations.calls == [("sent", 1), ("sent", 2), ("changed", 1)]
    kinds = [(kind, m.id) for kind, _, m in log.entries]
    assert kinds == [
        (EventType.MESSAGE_CREATED, "m1"),
        (EventType.MESSAGE_CREATED, "m2"),
        (EventType.MESSAGE_CREATED, "m3"),
        (EventType.MESSAGE_UPDATED, "m1"),
    ]


async def test_inbound_news_is_written_before_received_returns() -> None:
    log, waiting, assigned, bus = Log(), [], [], Bus()
    bus.subscribe(ConversationsWaiting, lambda _: waiting.append(True))
    bus.subscribe(AssignmentsMade, lambda event: assigned.append(event.conversations))
    updates = ConversationUpdates(
        SimpleNamespace(conversations=Conversations()),  # type: ignore[arg-type]
        log,  # type: ignore[arg-type]
        lambda messages: None,
        bus,
    )
    arrivals = [
        SimpleNamespace(contact=SimpleNamespace(id="contact-0"), assignee="ana"),
        SimpleNamespace(contact=SimpleNamespace(id="contact-1"), assignee=None),
    ]
    await updates.received(arrivals, [message(1)])  # type: ignore[arg-type]
    types = [kind for kind, _, _ in log.entries]
    assert types == [EventType.MESSAGE_CREATED, *[EventType.CONVERSATION_UPDATED] * 2]
    assert waiting == [True]  # one conversation waits for an agent
    assert [c.assignee_id for given in assigned for c in given] == ["ana"]
