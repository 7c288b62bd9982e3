"""One retry policy for every loop that waits after a failure: a channel's poller,
a lane's sends, the dispatcher's discovery, the workers."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with jitter: ``first`` seconds doubling up to ``cap``, each
    wait drawn from the top ``jitter`` share of its ceiling (0.5: half to all of it)."""

    def __init__(self, first: float = 1.0, cap: float = 60.0, jitter: float = 0.5) -> None:
        self.first, self.cap, self.jitter, self.attempt = first, cap, jitter, 0

    def delay(self, attempt: int) -> float:
        """The wait after the ``attempt``-th failure (1 for the first)."""
        ceiling = min(self.cap, self.first * 2.0 ** (attempt - 1))
        return ceiling * random.uniform(1.0 - self.jitter, 1.0)  # noqa: S311 - not secrecy

    def next(self) -> float:
        self.attempt += 1
        return self.delay(self.attempt)

    def reset(self) -> None:
        self.attempt = 0
