"""Authentication: agents' sign-in with limits, token rotation with reuse detection and
sign-out; and API tokens (gateway/api_tokens.py), told apart by their prefix."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.agents import fold_username
from gateway.api_tokens import ApiTokens, is_api_token
from gateway.callers import Caller
from gateway.config import AuthConfig
from gateway.errors import Forbidden, TooManyRequests, Unauthorized
from gateway.passwords import hash_password, verify_password
from gateway.signin_limits import SignInLimiter
from gateway.tokens import Claims, TokenIssuer
from storage.agents import AgentsRepository
from storage.models import Agent
from storage.revocations import RevocationsRepository
from storage.signins import SignInFailuresRepository

_BAD_CREDENTIALS = "invalid username or password"


@dataclass(frozen=True)
class Grant:
    """An event stream's right to run: whose, and until when (an API token's: until
    it is revoked; ``claims`` None)."""

    caller: Caller
    claims: Claims | None
    until: datetime


# Checks of a password at once (argon2 takes ~50 ms of a core each), and how many
# may wait for one: past that a sign-in is told to come back in a second, so a
# flood of guesses cannot take every core.
CONCURRENT_CHECKS = 4
WAITING_CHECKS = 64


class Authenticator:
    def __init__(
        self,
        config: AuthConfig,
        secret: str,
        agents: AgentsRepository,
        revocations: RevocationsRepository,
        failures: SignInFailuresRepository,
        api_tokens: ApiTokens,
    ) -> None:
        self.tokens = TokenIssuer(
            secret,
            access_ttl=timedelta(minutes=config.access_token_minutes),
            refresh_ttl=timedelta(days=config.refresh_token_days),
        )
        self.agents = agents
        self.revocations = revocations
        self.api_tokens = api_tokens
        self.limiter = SignInLimiter(config, failures)
        self._checks = asyncio.Semaphore(CONCURRENT_CHECKS)
        self._waiting = 0
        self._dummy_hash: str | None = None

    async def login(self, username: str, password: str, client_address: str) -> dict[str, str]:
        """A token pair for the right password; 401 otherwise, 429 past the limits
        (gateway/signin_limits.py), counted before the password is checked."""
        username = fold_username(username)
        attempt = await self.limiter.admit(username, client_address)
        agent = await self.agents.get_by_username(username)
        # Verify against a dummy hash for unknown users so both failures take as long.
        stored_hash = agent.password_hash if agent else await self._unknown_user_hash()
        if not await self._check(stored_hash, password) or agent is None:
            raise Unauthorized(_BAD_CREDENTIALS)  # the reservations stay: failures
        await self.limiter.succeeded(attempt)
        if agent.disabled:  # said only to whoever knows the password
            raise Unauthorized(DISABLED)
        return self.tokens.issue_pair(agent.id)

    async def confirm_password(self, agent: Agent, password: str, client_address: str) -> None:
        """The agent's current password, under the sign-in limits: a stolen access
        token guesses it no faster than a sign-in would. :class:`Forbidden` if wrong."""
        attempt = await self.limiter.admit(agent.username, client_address)
        if not await self._check(agent.password_hash, password):
            raise Forbidden("current_password is wrong", {"current_password": ["wrong"]})
        await self.limiter.succeeded(attempt)

    async def _check(self, stored_hash: str, password: str) -> bool:
        if self._waiting >= WAITING_CHECKS:
            raise TooManyRequests("too many sign-ins at once; try again in a moment", 1)
        self._waiting += 1
        try:
            async with self._checks:
                return await verify_password(stored_hash, password)
        finally:
            self._waiting -= 1

    async def _unknown_user_hash(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await hash_password("not a password of anyone")
        return self._dummy_hash

    async def refresh(self, refresh_token: str) -> dict[str, str]:
        """Rotate: use the refresh token up and issue a new pair of the same sign-in.

        A used token that comes back means someone else holds a copy: the sign-in
        ends, and with it every token it issued, access tokens included.
        """
        claims = self.tokens.decode(refresh_token, "refresh")
        agent = await self._agent_of(claims)
        if not await self.revocations.use_once(f"jti:{claims.jti}", claims.expires_at):
            await self.agents.end_sign_in(agent.id, claims.family, self._family_ends())
            raise Unauthorized("refresh token already used; sign in again")
        return self.tokens.issue_pair(agent.id, family=claims.family)

    async def authenticate(self, bearer: str) -> Caller:
        """Who a bearer token speaks for: an agent's access token or an API token;
        :class:`Unauthorized` otherwise."""
        if is_api_token(bearer):
            return Caller.of_token(await self.api_tokens.resolve(bearer))
        return Caller.of_agent(await self._agent_of(self.tokens.decode(bearer, "access")))

    async def ticket(self, access_token: str) -> str:
        """A single-use ticket to open an event stream as the agent of ``access_token``."""
        claims = self.tokens.decode(access_token, "access")
        await self._agent_of(claims)
        return self.tokens.issue_ticket(claims)

    async def stream_grant(self, access_token: str | None, ticket: str | None) -> Grant:
        """Who may open an event stream, and until when: by an access token, or by a
        ticket (usable once). :class:`Unauthorized` otherwise."""
        if ticket:
            claims = self.tokens.decode(ticket, "ticket")
            if not await self.revocations.use_once(f"ticket:{claims.jti}", claims.expires_at):
                raise Unauthorized("ticket already used; ask for another")
            until = claims.until or claims.expires_at
        elif access_token and is_api_token(access_token):
            caller = await self.authenticate(access_token)
            return Grant(caller, None, datetime.max.replace(tzinfo=UTC))
        elif access_token:
            claims = self.tokens.decode(access_token, "access")
            until = claims.expires_at
        else:
            raise Unauthorized("send Authorization: Bearer <access token>, or ?ticket=")
        return Grant(Caller.of_agent(await self._agent_of(claims)), claims, until)

    async def still_valid(self, grant: Grant) -> bool:
        """Whether a stream's grant holds: not expired, its sign-in not ended, its
        API token not revoked."""
        if datetime.now(UTC) >= grant.until:
            return False
        try:
            if grant.claims is None:
                token = grant.caller.token
                return token is not None and await self.api_tokens.exists(token.id)
            await self._agent_of(grant.claims)
        except Unauthorized:
            return False
        return True

    async def logout(self, access_token: str) -> str:
        """End the sign-in this access token belongs to: all of its tokens. Returns
        the sign-in's id (its token family)."""
        claims = self.tokens.decode(access_token, "access")
        await self.agents.end_sign_in(claims.agent_id, claims.family, self._family_ends())
        return claims.family

    def _family_ends(self) -> datetime:
        # A sign-in's newest refresh token, issued by now at the latest, expires by then.
        return datetime.now(UTC) + self.tokens.refresh_ttl

    def sign_in_of(self, access_token: str) -> str:
        """The sign-in (token family) an access token belongs to."""
        return self.tokens.decode(access_token, "access").family

    async def _agent_of(self, claims: Claims) -> Agent:
        agent = await self.agents.get(claims.agent_id)
        if agent is None:
            raise Unauthorized("the agent of this token no longer exists")
        if agent.disabled:
            raise Unauthorized(DISABLED)
        if claims.family in agent.ended_sign_ins:
            raise Unauthorized("this sign-in has ended; sign in again")
        if claims.family != agent.kept_sign_in and _issued_before_reset(
            claims.issued_at, agent.tokens_valid_after
        ):
            raise Unauthorized("token issued before a password change; sign in again")
        return agent


DISABLED = "this agent is disabled: an admin can enable it again"


def _issued_before_reset(issued_at: datetime, reset: datetime | None) -> bool:
    # Both in milliseconds (the database keeps dates to the millisecond): a token
    # issued right after a password change stays valid, one issued before it not.
    if reset is None:
        return False
    reset_ms: int = round(reset.replace(tzinfo=UTC).timestamp() * 1000)
    return round(issued_at.timestamp() * 1000) < reset_ms
