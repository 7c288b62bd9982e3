"""The time the scheduler reads, as one object: the system's, or a test's.

Pacing, lanes and the dispatcher ask a :class:`Clock` instead of ``time`` and
``utcnow``, so their rules (a chat's gap, a flood wait, a claim's deadline, a retry's
due time) can be tested by moving a fake clock instead of waiting.
"""

from __future__ import annotations

import time
from datetime import datetime

from storage.records import utcnow


class Clock:
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: for waits and gaps."""
        return time.monotonic()

    def now(self) -> datetime:
        """The wall time as the database stores it (UTC, milliseconds)."""
        return utcnow()


SYSTEM_CLOCK = Clock()
