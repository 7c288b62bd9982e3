"""API tokens: minted with a recognisable prefix, kept only as a hash, looked up at
every use (so a revoked one is refused at once, on every gateway)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import Unauthorized
from storage.api_tokens import ApiTokensRepository
from storage.models import ApiToken, Scope, TokenRole

# Secret scanners (GitHub's, gitleaks) find a leaked token by a fixed prefix.
PREFIX = "bgw_"
_SECRET_BYTES = 32  # 256 bits: guessing is hopeless, so a plain hash suffices
USE_NOTED_EVERY = timedelta(minutes=1)


def is_api_token(bearer: str) -> bool:
    return bearer.startswith(PREFIX)


def secret_hash(secret: str) -> str:
    # A fast hash is right for random secrets (unlike passwords): no dictionary to try.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokens:
    def __init__(self, repository: ApiTokensRepository, clock: Clock = SYSTEM_CLOCK) -> None:
        self.repository = repository
        self.clock = clock

    async def mint(
        self, name: str, role: TokenRole, scopes: frozenset[Scope], created_by: str
    ) -> tuple[ApiToken, str]:
        """A new token and its secret, which is shown this once and never again."""
        secret = PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
        hint = f"{PREFIX}…{secret[-4:]}"
        token = await self.repository.create(
            name, role, scopes, (secret_hash(secret), hint), created_by
        )
        return token, secret

    async def resolve(self, secret: str) -> ApiToken:
        """The token ``secret`` belongs to; :class:`Unauthorized` if none (revoked)."""
        token = await self.repository.by_secret_hash(secret_hash(secret))
        if token is None:
            raise Unauthorized("unknown or revoked API token")
        now = self.clock.now()
        if token.last_used_at is None or now - token.last_used_at >= USE_NOTED_EVERY:
            await self.repository.used(token.id, now, USE_NOTED_EVERY)
        return token

    async def exists(self, token_id: str) -> bool:
        """Whether the token is still there (not revoked)."""
        return await self.repository.get(token_id) is not None
