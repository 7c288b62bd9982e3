"""Pacing and backoff on a fake clock: a channel's rate, a chat's gap counted from
when a send ended, a provider's pause, and exponential backoff's bounds."""

from __future__ import annotations

import pytest

from common.backoff import Backoff
from gateway.pacing import Pacing
from tests.unit.fakes import FakeClock


def test_the_channel_rate_spaces_sends_from_the_last_slot() -> None:
    clock = FakeClock()
    pacing = Pacing(0.5, 0.0, clock)
    now = clock.monotonic()
    pacing.take("a", now)
    pacing.take("b", now)  # two at once: the second's slot is half a second on
    assert pacing.gate() == now + 1.0


def test_a_chats_gap_counts_from_when_its_send_ended() -> None:
    clock = FakeClock()
    pacing = Pacing(0.0, 1.0, clock)
    start = clock.monotonic()
    pacing.take("a", start)
    assert pacing.chat_ready("a") == start + 1.0
    clock.advance(0.7)  # a slow send: the provider counts from its arrival
    pacing.finished("a", clock.monotonic())
    assert pacing.chat_ready("a") == start + 1.7
    assert pacing.chat_ready("b") == 0.0  # other chats are not held


def test_a_pause_holds_the_channel_for_as_long_as_the_provider_said() -> None:
    clock = FakeClock()
    pacing = Pacing(0.0, 0.0, clock)
    pacing.pause(30)
    pacing.pause(10)  # a shorter one never shortens the first
    assert (pacing.paused_for(), pacing.flood_waits) == (30, 2)
    clock.advance(30)
    assert pacing.paused_for() == 0.0


def test_chats_whose_gap_passed_are_forgotten_past_ten_thousand() -> None:
    clock = FakeClock()
    pacing = Pacing(0.0, 1.0, clock)
    for n in range(10_001):
        pacing.take(f"chat-{n}", clock.monotonic())
    clock.advance(2)
    pacing.take("late", clock.monotonic())
    pacing.take("later", clock.monotonic())
    assert pacing.chat_ready("chat-0") == 0.0
    assert pacing.chat_ready("late") == clock.monotonic() + 1.0


@pytest.mark.parametrize(("first", "cap"), [(1.0, 60.0), (0.5, 10.0)])
def test_backoff_doubles_with_jitter_up_to_its_cap(first: float, cap: float) -> None:
    backoff = Backoff(first, cap)
    for attempt in range(1, 12):
        ceiling = min(cap, first * 2 ** (attempt - 1))
        assert ceiling / 2 <= backoff.next() <= ceiling
    backoff.reset()
    assert backoff.next() <= first
