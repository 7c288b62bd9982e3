"""Agents' JSON Web Tokens: HS256 access and refresh tokens with rotation families.

Every refresh token belongs to a family that starts at login. Refreshing uses the
token up and issues a new pair in the same family; presenting a used refresh token
again means it leaked, so the whole family is revoked.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt

from gateway.config import ConfigError
from gateway.errors import Unauthorized

# A ticket opens one event stream (EventSource cannot send a header): 60 s, used once.
TokenType = Literal["access", "refresh", "ticket"]
TICKET_TTL = timedelta(seconds=60)
_ALGORITHM = "HS256"
_REQUIRED = ["sub", "type", "jti", "fam", "iat", "exp"]


@dataclass(frozen=True)
class Claims:
    agent_id: str
    type: TokenType
    jti: str
    family: str
    issued_at: datetime
    expires_at: datetime
    until: datetime | None = None  # a ticket: when the access token it stands for expires


class TokenIssuer:
    def __init__(self, secret: str, access_ttl: timedelta, refresh_ttl: timedelta) -> None:
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def derive(self, purpose: bytes) -> bytes:
        """A key of its own for ``purpose`` (list cursors), from the same secret: every
        gateway that shares the secret shares it."""
        return hmac.digest(self._secret.encode(), purpose, hashlib.sha256)

    def issue_pair(self, agent_id: str, family: str | None = None) -> dict[str, str]:
        family = family or str(uuid.uuid4())
        return {
            "access": self._encode(agent_id, "access", family, self.access_ttl),
            "refresh": self._encode(agent_id, "refresh", family, self.refresh_ttl),
        }

    def issue_ticket(self, access: Claims) -> str:
        """A ticket standing for the access token ``access`` until that expires."""
        extra = {"until": int(access.expires_at.timestamp())}
        return self._encode(access.agent_id, "ticket", access.family, TICKET_TTL, extra)

    def _encode(
        self,
        agent_id: str,
        kind: TokenType,
        family: str,
        ttl: timedelta,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "sub": agent_id,
            "type": kind,
            "jti": str(uuid.uuid4()),
            "fam": family,
            "iat": now,
            # iat has whole seconds; a password change must end a token issued earlier
            # in the same second, so the issue time goes in milliseconds too.
            "iat_ms": int(now.timestamp() * 1000),
            "exp": now + ttl,
            **(extra or {}),
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def decode(self, token: str, expected: TokenType) -> Claims:
        """Verify signature, expiry and type; :class:`Unauthorized` otherwise."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[_ALGORITHM], options={"require": _REQUIRED}
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid token") from None
        if claims["type"] != expected:
            raise Unauthorized(f"expected an {expected} token")
        return Claims(
            agent_id=str(claims["sub"]),
            type=expected,
            jti=str(claims["jti"]),
            family=str(claims["fam"]),
            issued_at=datetime.fromtimestamp(
                int(claims.get("iat_ms") or claims["iat"] * 1000) / 1000, UTC
            ),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            until=datetime.fromtimestamp(claims["until"], UTC) if "until" in claims else None,
        )


def load_or_create_secret(configured: str, data_dir: Path) -> str:
    """The configured secret, or one generated once and kept in the data dir."""
    if configured:
        return configured
    path = data_dir / "jwt_secret"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Write aside, then link into place: of two processes starting at once,
        # exactly one secret wins and nobody reads a half-written file.
        tmp = data_dir / f".jwt_secret.{uuid.uuid4().hex}"
        tmp.touch(mode=0o600)
        tmp.write_text(secrets.token_urlsafe(48), encoding="ascii")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        tmp.unlink()
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 32:
        raise ConfigError(f"{path}: holds a JWT secret shorter than 32 characters; delete it")
    return secret
