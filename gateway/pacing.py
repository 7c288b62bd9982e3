"""When a channel's next send may start: its rate, each chat's gap, a provider's pause."""

from __future__ import annotations

from gateway.clock import SYSTEM_CLOCK, Clock


class Pacing:
    """When a channel's next send may start: its rate, each chat's gap, a provider's pause."""

    def __init__(self, per_channel: float, per_chat: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.per_channel, self.per_chat = per_channel, per_chat
        self.clock = clock
        self.next_send = 0.0
        self.paused_until = 0.0
        self.flood_waits = 0
        self._chats: dict[str, float] = {}

    def gate(self) -> float:
        return max(self.next_send, self.paused_until)

    def chat_ready(self, to: str) -> float:
        return self._chats.get(to, 0.0)

    def take(self, to: str, now: float) -> None:
        """A send to ``to`` starts now: the next one waits its turn."""
        self.next_send = max(self.next_send, now) + self.per_channel
        if self.per_chat > 0:
            self._chats[to] = now + self.per_chat
            if len(self._chats) > 10_000:  # forget chats whose gap has passed
                self._chats = {k: v for k, v in self._chats.items() if v > now}

    def finished(self, to: str, now: float) -> None:
        """A send to ``to`` ended now. The provider counts a chat's gap between the
        messages it receives, and ours may have arrived late (a slow connection, a busy
        loop): the next one waits the whole gap from here."""
        if self.per_chat > 0:
            self._chats[to] = max(self._chats.get(to, 0.0), now + self.per_chat)

    def pause(self, seconds: float) -> None:
        self.flood_waits += 1
        self.paused_until = max(self.paused_until, self.clock.monotonic() + seconds)

    def paused_for(self) -> float:
        return max(0.0, self.paused_until - self.clock.monotonic())
