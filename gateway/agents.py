"""Rules for agent accounts, shared by the CLI and the REST API."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from gateway.callers import Caller
from gateway.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationError
from gateway.passwords import MIN_PASSWORD_LENGTH, hash_password
from storage.agents import AgentsRepository
from storage.errors import DuplicateKey
from storage.models import Agent, Role
from storage.records import utcnow

_USERNAME = re.compile(r"[a-z0-9][a-z0-9_.@-]{2,63}")


def fold_username(username: str) -> str:
    """Usernames are case-insensitive: ``Alice`` and ``alice`` are one account."""
    return username.strip().lower()


def normalize_username(username: str) -> str:
    """The stored form of a new username; a :class:`ValidationError` if it is not one."""
    normalized = fold_username(username)
    if not _USERNAME.fullmatch(normalized):
        raise ValidationError.of(
            "username", "3-64 characters: letters, digits, '_', '.', '@' or '-'"
        )
    return normalized


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError.of("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")


class Registration(StrEnum):
    BOOTSTRAP = "bootstrap"  # the first agent, without credentials
    OPEN = "open"  # anyone (auth.open_registration)
    AGENT = "agent"  # an agent's token is needed


async def registration(
    agents: AgentsRepository, open_registration: bool, from_this_machine: bool
) -> Registration:
    """How a request to create an agent must be authorised.

    The first agent needs no credentials only from this machine, and only while no
    agent was ever created: a public instance is never open to its first caller,
    and deleting every agent does not open it again.
    """
    if open_registration:
        return Registration.OPEN
    if await agents.ever_existed():
        return Registration.AGENT
    if not from_this_machine:
        raise Forbidden(
            "no agent exists yet: create the first one with `bot-gateway create-agent` "
            "on the server, or with this request from the server itself"
        )
    return Registration.BOOTSTRAP


async def create_agent(
    agents: AgentsRepository,
    username: str,
    password: str,
    display_name: str = "",
    *,
    bootstrap: bool = False,
    role: Role | None = None,
) -> Agent:
    """Validate, hash and store a new agent; :class:`Conflict` if the name is taken.
    ``role``, or an agent; the bootstrapped first agent is an admin. (Open
    registration never makes one: a public instance's first caller is no admin.)"""
    normalized = normalize_username(username)
    check_password(password)
    if bootstrap:
        role = Role.ADMIN
    try:
        return await agents.create(
            normalized,
            await hash_password(password),
            display_name,
            bootstrap=bootstrap,
            role=role or Role.AGENT,
        )
    except DuplicateKey:
        if bootstrap and await agents.get_by_username(normalized) is None:
            # Another first agent won the race: this request now needs credentials.
            raise Unauthorized("an agent exists already; authenticate to add agents") from None
        raise Conflict(f"username {normalized!r} is taken", {"username": ["taken"]}) from None


def require_admin(me: Caller, action: str) -> None:
    """:class:`Forbidden` unless ``me`` is an admin (or an API token with the admin
    scope); ``action`` says what was refused."""
    if not me.is_admin:
        raise Forbidden(f"only an admin can {action}")


# What an agent changes of their own account, and what only an admin changes.
OWN_FIELDS = frozenset({"display_name", "password", "current_password", "is_available"})
ADMIN_FIELDS = frozenset({"role", "disabled"})


def may_change(target: Agent, me: Caller, fields: set[str]) -> None:
    """Agents change their own account's own fields; an admin changes every agent's
    role and whether it is disabled, and deletes any agent (``fields`` empty)."""
    if fields & OWN_FIELDS and target.id != me.id:
        raise Forbidden("agents change only their own name, password and availability")
    if fields & ADMIN_FIELDS or (not fields and target.id != me.id):
        require_admin(me, "change another agent's role or account, or disable one")


async def keep_an_admin(agents: AgentsRepository, target: Agent, leaves: bool) -> None:
    """:class:`Conflict` if ``target`` is the last enabled admin and ``leaves`` (is
    demoted, disabled or deleted): the installation would have nobody to manage it."""
    last = leaves and target.role is Role.ADMIN and not target.disabled
    if last and await agents.admins_besides(target.id) == 0:
        raise Conflict("the last admin cannot be demoted, disabled or deleted")


async def update_agent(
    agents: AgentsRepository,
    agent_id: str,
    changes: dict[str, Any],
    keep_sign_in: str | None = None,
) -> Agent:
    """Apply a validated PATCH; a new password ends every sign-in made before it
    but ``keep_sign_in`` (the one that changed it, through the API)."""
    if not changes:
        raise ValidationError(
            "nothing to change: send display_name, password, is_available, role or disabled"
        )
    update = {k: v for k, v in changes.items() if k != "password"}
    if changes.get("disabled") is True:  # its sign-ins end now, on every gateway
        update.update(is_available=False, tokens_valid_after=utcnow(), kept_sign_in=None)
    if "password" in changes:
        check_password(changes["password"])
        update["password_hash"] = await hash_password(changes["password"])
        update["tokens_valid_after"] = utcnow()
        update["kept_sign_in"] = keep_sign_in
    updated = await agents.update(agent_id, update)
    if updated is None:
        raise NotFound(f"No such agent: {agent_id}")
    return updated
