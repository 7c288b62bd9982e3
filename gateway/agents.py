"""Rules for agent accounts, shared by the CLI and the REST API."""

from __future__ import annotations

import re
from typing import Any

from gateway.errors import Conflict, ValidationError
from gateway.passwords import MIN_PASSWORD_LENGTH, hash_password
from storage.agents import AgentsRepository
from storage.errors import DuplicateKey

_USERNAME = re.compile(r"[a-z0-9][a-z0-9_.@-]{2,63}")


def normalize_username(username: str) -> str:
    """Usernames are case-insensitive: ``Alice`` and ``alice`` are one account."""
    normalized = username.strip().lower()
    if not _USERNAME.fullmatch(normalized):
        raise ValidationError.of(
            "username", "3-64 characters: letters, digits, '_', '.', '@' or '-'"
        )
    return normalized


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError.of("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")


async def create_agent(
    agents: AgentsRepository, username: str, password: str, display_name: str = ""
) -> dict[str, Any]:
    """Validate, hash and store a new agent; :class:`Conflict` if the name is taken."""
    normalized = normalize_username(username)
    check_password(password)
    try:
        return await agents.create(normalized, await hash_password(password), display_name)
    except DuplicateKey:
        raise Conflict(f"username {normalized!r} is taken", {"username": ["taken"]}) from None
