"""Limits on guessing passwords that nobody can turn into a lock-out.

Failures are counted per (username, address) pair, per address and per username,
each before the password is checked, in MongoDB so that every gateway enforces one
limit:

- a pair past ``max_failed_logins`` is refused (429) until its window ends: the
  guesser's address is locked out of that account, the owner elsewhere is not;
- an address past four times that is slowed down: its attempts take turns, one per
  ``slow_down_seconds`` however many it sends at once (429 past a queue of a few
  seconds), and an account it already failed on is refused;
- a username past four times that (a spray from many addresses) is slowed the same
  way, except from an address it signed in from in the last 30 days: the owner's
  usual address is never held up by someone else's guesses.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.config import AuthConfig
from gateway.errors import TooManyRequests
from storage.signins import SignInFailuresRepository

KNOWN_FOR = timedelta(days=30)
MAX_QUEUE = timedelta(seconds=5)  # longer than this in a slowed-down line: 429
_REFUSED = "too many failed logins; try again later"


def _hashed(username: str) -> str:
    # A hash: the attacker chooses the username, and the key must stay small.
    return hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()[:32]


@dataclass(frozen=True)
class Attempt:
    """One sign-in admitted to a password check, and the keys it counted under."""

    pair: str
    address: str
    user: str
    known: str


class SignInLimiter:
    def __init__(self, config: AuthConfig, failures: SignInFailuresRepository) -> None:
        self.failures = failures
        self.limit = config.max_failed_logins
        # Many agents may share one office address: more failures per address.
        self.wide_limit = config.max_failed_logins * 4
        self.window = timedelta(seconds=config.failed_login_window_seconds)
        self.slow_down = timedelta(seconds=config.slow_down_seconds)

    async def admit(self, username: str, client_address: str) -> Attempt:
        """Count an attempt and wait for its turn; :class:`TooManyRequests` instead
        when it may not be checked now."""
        user = _hashed(username)
        attempt = Attempt(
            pair=f"pair:{user}:{client_address}",
            address=f"address:{client_address}",
            user=f"user:{user}",
            known=f"known:{user}:{client_address}",
        )
        pair = await self.failures.reserve(attempt.pair, self.window)
        if pair.attempts > self.limit:
            raise TooManyRequests(_REFUSED, _left(pair.until))
        address = await self.failures.reserve(attempt.address, self.window)
        if address.attempts > self.wide_limit:
            if pair.attempts > 1:  # this address already failed on this account
                raise TooManyRequests(_REFUSED, _left(address.until))
            await self._take_turn(attempt.address)
        account = await self.failures.reserve(attempt.user, self.window)
        if account.attempts > self.wide_limit and not await self.failures.remembered(attempt.known):
            await self._take_turn(attempt.user)
        return attempt

    async def succeeded(self, attempt: Attempt) -> None:
        """The password was right: its reservations were no failures."""
        await self.failures.forget(attempt.pair)
        await self.failures.give_back(attempt.address)
        await self.failures.give_back(attempt.user)
        await self.failures.remember(attempt.known, datetime.now(UTC) + KNOWN_FOR)

    async def _take_turn(self, key: str) -> None:
        slot = await self.failures.take_slot(key, self.slow_down, MAX_QUEUE)
        if slot is None:
            raise TooManyRequests("too many sign-ins at once; try again in a moment", 1)
        wait = (slot - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)


def _left(until: datetime) -> int:
    return max(1, int((until - datetime.now(UTC)).total_seconds()) + 1)
