"""Typed in-process events: what happened to messages and conversations, told to
the handlers the composition root (gateway/runtime.py) subscribed, so a constructor
says who an object talks to and nobody is wired by assignment afterwards.

Handlers run in the order they subscribed, each awaited before the next, in the
publisher's task: a publisher that awaits :meth:`Bus.publish` knows its event was
taken. Handlers should be quick; slow work belongs in a worker of their own.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from storage.models import Conversation, Message


@dataclass(frozen=True)
class StatusesChanged:
    """Messages' statuses moved (sent, delivered, read, failed): by our sends'
    outcomes or a provider's status reports."""

    messages: list[Message]


@dataclass(frozen=True)
class ConversationsWaiting:
    """Conversations arrived that no agent holds: they wait in the queue."""


@dataclass(frozen=True)
class AssignmentsMade:
    """Conversations were given to agents as they arrived."""

    conversations: list[Conversation]


E = TypeVar("E")


class Bus:
    def __init__(self) -> None:
        self._handlers: defaultdict[type, list[Callable[[Any], object]]] = defaultdict(list)

    def subscribe(self, kind: type[E], handler: Callable[[E], object]) -> None:
        """Call ``handler`` with every ``kind`` published (awaited if it is async)."""
        self._handlers[kind].append(handler)

    async def publish(self, event: object) -> None:
        for handler in self._handlers[type(event)]:
            result = handler(event)
            if inspect.isawaitable(result):
                await result
