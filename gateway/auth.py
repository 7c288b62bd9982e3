"""Agent authentication: login, token refresh with reuse detection, throttling."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.config import AuthConfig
from gateway.errors import TooManyRequests, Unauthorized
from gateway.passwords import hash_password, verify_password
from gateway.tokens import TokenIssuer
from storage.agents import AgentsRepository
from storage.revocations import RevocationsRepository

_BAD_CREDENTIALS = "invalid username or password"


class LoginThrottle:
    """Counts failed logins per key in a sliding window (per process).

    Several replicas each keep their own counts, which multiplies the allowance by
    the number of replicas: still far below what a brute force needs.
    """

    def __init__(self, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window = window_seconds
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]  # keep memory bounded by active attackers
        return failures

    def retry_after(self, key: str, limit: int | None = None) -> int | None:
        """Seconds until ``key`` may try again, or None if it may now."""
        now = time.monotonic()
        failures = self._recent(key, now)
        if len(failures) < (limit or self.limit):
            return None
        return max(1, int(failures[0] + self.window - now) + 1)

    def fail(self, key: str) -> None:
        self._failures[key].append(time.monotonic())

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)


class Authenticator:
    def __init__(
        self,
        config: AuthConfig,
        secret: str,
        agents: AgentsRepository,
        revocations: RevocationsRepository,
    ) -> None:
        self.tokens = TokenIssuer(
            secret,
            access_ttl=timedelta(minutes=config.access_token_minutes),
            refresh_ttl=timedelta(days=config.refresh_token_days),
        )
        self.agents = agents
        self.revocations = revocations
        self.throttle = LoginThrottle(config.max_failed_logins, config.failed_login_window_seconds)
        # Many agents may share one office address: allow more failures per address.
        self._ip_limit = config.max_failed_logins * 4
        self._dummy_hash: str | None = None

    async def login(self, username: str, password: str, client_ip: str) -> dict[str, str]:
        user_key, ip_key = f"user:{username}", f"ip:{client_ip}"
        wait = self.throttle.retry_after(user_key) or self.throttle.retry_after(
            ip_key, self._ip_limit
        )
        if wait is not None:
            raise TooManyRequests("too many failed logins; try again later", retry_after=wait)
        agent = await self.agents.get_by_username(username)
        # Verify against a dummy hash for unknown users so both failures take as long.
        stored_hash = agent["password_hash"] if agent else await self._unknown_user_hash()
        if not await verify_password(stored_hash, password) or agent is None:
            self.throttle.fail(user_key)
            self.throttle.fail(ip_key)
            raise Unauthorized(_BAD_CREDENTIALS)
        self.throttle.forget(user_key)
        return self.tokens.issue_pair(agent["id"])

    async def _unknown_user_hash(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await hash_password("not a password of anyone")
        return self._dummy_hash

    async def refresh(self, refresh_token: str) -> dict[str, str]:
        """Rotate: use the refresh token up and issue a new pair in its family."""
        claims = self.tokens.decode(refresh_token, "refresh")
        family_key = f"family:{claims.family}"
        if await self.revocations.is_revoked(family_key):
            raise Unauthorized("refresh token revoked")
        if not await self.revocations.use_once(f"jti:{claims.jti}", claims.expires_at):
            # A used token came back: someone else holds a copy. End the family.
            await self.revocations.revoke(family_key, datetime.now(UTC) + self.tokens.refresh_ttl)
            raise Unauthorized("refresh token already used; sign in again")
        agent = await self.agents.get(claims.agent_id)
        if agent is None or _issued_before_reset(claims.issued_at, agent):
            raise Unauthorized("refresh token no longer valid; sign in again")
        return self.tokens.issue_pair(agent["id"], family=claims.family)

    async def authenticate(self, access_token: str) -> dict[str, Any]:
        """The agent an access token speaks for; :class:`Unauthorized` otherwise."""
        claims = self.tokens.decode(access_token, "access")
        agent = await self.agents.get(claims.agent_id)
        if agent is None:
            raise Unauthorized("the agent of this token no longer exists")
        if _issued_before_reset(claims.issued_at, agent):
            raise Unauthorized("token issued before a password change; sign in again")
        return agent


def _issued_before_reset(issued_at: datetime, agent: dict[str, Any]) -> bool:
    # JWT iat has whole seconds: compare at that precision so a token issued right
    # after a password change stays valid.
    reset = agent.get("tokens_valid_after")
    return reset is not None and issued_at.timestamp() < int(reset.timestamp())
