"""API tokens alone: minted with a prefix, found by the hash of the secret, a use noted
at most once a minute; and what a token may do as a caller."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

import pytest

from gateway.api_tokens import ApiTokens, is_api_token, secret_hash
from gateway.callers import Caller
from gateway.errors import Forbidden, Unauthorized
from storage.api_tokens import ApiTokensRepository
from storage.models import Agent, ApiToken, Role, Scope, TokenRole
from tests.unit.fakes import START, FakeClock


class FakeTokens:
    """The repository's rules the keeper relies on: lookup by hash, noted uses."""

    def __init__(self) -> None:
        self.by_hash: dict[str, ApiToken] = {}
        self.writes: list[datetime] = []

    async def create(
        self, name: str, role: TokenRole, scopes: frozenset[Scope], secret: tuple[str, str],
        created_by: str,
    ) -> ApiToken:  # fmt: skip
        token = ApiToken(f"t{len(self.by_hash)}", name, role, scopes, secret[1], created_by, START)
        self.by_hash[secret[0]] = token
        return token

    async def by_secret_hash(self, digest: str) -> ApiToken | None:
        return self.by_hash.get(digest)

    async def used(self, token_id: str, at: datetime, every: timedelta) -> None:
        self.writes.append(at)
        for digest, token in self.by_hash.items():
            if token.id == token_id:
                self.by_hash[digest] = replace(token, last_used_at=at)


def _keeper() -> tuple[ApiTokens, FakeTokens, FakeClock]:
    fake, clock = FakeTokens(), FakeClock()
    return ApiTokens(cast(ApiTokensRepository, fake), clock), fake, clock


async def test_a_secret_is_prefixed_random_and_kept_only_as_its_hash() -> None:
    keeper, fake, _ = _keeper()
    token, secret = await keeper.mint("bot", TokenRole.BOT, frozenset({Scope.READ}), "a1")
    _, other = await keeper.mint("bot", TokenRole.BOT, frozenset({Scope.READ}), "a1")
    assert is_api_token(secret)
    assert secret != other
    assert next(iter(fake.by_hash)) == secret_hash(secret) != secret
    assert token.hint == f"bgw_…{secret[-4:]}"
    assert (await keeper.resolve(secret)).id == token.id
    with pytest.raises(Unauthorized):
        await keeper.resolve(secret[:-1] + ("A" if secret[-1] != "A" else "B"))


async def test_a_busy_token_notes_its_use_once_a_minute() -> None:
    keeper, fake, clock = _keeper()
    _, secret = await keeper.mint("bot", TokenRole.BOT, frozenset({Scope.READ}), "a1")
    for _ in range(100):  # a request a second for 100 s
        await keeper.resolve(secret)
        clock.advance(1)
    assert fake.writes == [START, START + timedelta(seconds=60)]


def _agent(role: Role) -> Agent:
    return Agent("a1", "ana", "", True, START, START, "hash", role=role)


def _token(*scopes: Scope) -> ApiToken:
    return ApiToken("t1", "crm", TokenRole.INTEGRATION, frozenset(scopes), "bgw_…abcd", "a1", START)


@pytest.mark.parametrize(
    ("caller", "allowed", "admin"),
    [
        (Caller.of_agent(_agent(Role.AGENT)), set(Scope), False),
        (Caller.of_agent(_agent(Role.ADMIN)), set(Scope), True),
        (Caller.of_token(_token(Scope.READ)), {Scope.READ}, False),
        (Caller.of_token(_token(Scope.SEND, Scope.ADMIN)), {Scope.SEND, Scope.ADMIN}, True),
    ],
)
def test_a_token_may_do_what_its_scopes_say_and_an_agent_what_its_role_says(
    caller: Caller, allowed: set[Scope], admin: bool
) -> None:
    for scope in Scope:
        refused: Any = None
        try:
            caller.require(scope)
        except Forbidden as exc:
            refused = exc
        assert (refused is None) == (scope in allowed), scope
    assert caller.is_admin is admin
    if caller.token is not None:
        assert caller.ref.kind == "integration"
        with pytest.raises(Forbidden):
            caller.as_agent("be read as me")
    else:
        assert caller.as_agent("be read as me") is caller.agent
