"""Signing in, token rotation and reuse detection, bootstrap and throttling."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from gateway.config import AuthConfig, Config
from gateway.runtime import build_services
from gateway.tokens import TokenIssuer, load_or_create_secret
from storage.database import Storage
from testkit.helpers import TEST_CONFIG, Client, sign_in, sign_up

SECRET = TEST_CONFIG.auth.jwt_secret


async def test_first_agent_bootstraps_then_creating_agents_needs_a_token(client: Client) -> None:
    ana = await sign_up(client, "ana")
    status, body = await client.fetch(
        "POST", "/api/v1/agents/", json_body={"username": "mallory", "password": "x" * 12}
    )
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    bo = await sign_up(ana, "bob")  # an agent may add colleagues
    assert bo.token


async def test_open_registration_lets_anyone_create_an_agent(storage: Storage, serve_app) -> None:
    config = Config(auth=AuthConfig(jwt_secret=SECRET, open_registration=True))
    client = await serve_app(build_services(config, storage))
    await sign_up(client, "ana")
    assert (await sign_up(client, "bob")).token


async def test_wrong_username_and_wrong_password_look_the_same(api: Client) -> None:
    anonymous = api.as_agent(None)
    unknown = await anonymous.fetch(
        "POST", "/auth/token/", json_body={"username": "nobody", "password": "correct horse"}
    )
    wrong = await anonymous.fetch(
        "POST", "/auth/token/", json_body={"username": "ana", "password": "wrong horse"}
    )
    assert (
        unknown
        == wrong
        == (
            401,
            {"error": {"code": "unauthorized", "message": "invalid username or password"}},
        )
    )


async def test_usernames_are_case_insensitive_at_sign_in(api: Client) -> None:
    assert (await sign_in(api.as_agent(None), "  ANA ")).token


async def test_repeated_failures_are_throttled_with_retry_after(api: Client) -> None:
    anonymous = api.as_agent(None)
    attempt = {"username": "ana", "password": "guess-000"}
    for _ in range(TEST_CONFIG.auth.max_failed_logins):
        assert (await anonymous.fetch("POST", "/auth/token/", json_body=attempt))[0] == 401
    response = await anonymous.http.fetch(
        anonymous.base_url + "/auth/token/",
        method="POST",
        body='{"username": "ana", "password": "correct horse"}',
        headers={"Content-Type": "application/json"},
        raise_error=False,
    )
    # Even the right password waits: the attacker must not learn it was right.
    assert response.code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= TEST_CONFIG.auth.failed_login_window_seconds


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_family(api: Client) -> None:
    anonymous = api.as_agent(None)
    first_refresh = api.refresh
    status, pair = await anonymous.fetch(
        "POST", "/auth/token/refresh/", json_body={"refresh": first_refresh}
    )
    assert status == 200
    assert set(pair) == {"access", "refresh"}
    assert (await api.as_agent(pair["access"]).fetch("GET", "/api/v1/agents/"))[0] == 200

    # The first refresh token comes back: a copy leaked. It is refused ...
    status, body = await anonymous.fetch(
        "POST", "/auth/token/refresh/", json_body={"refresh": first_refresh}
    )
    assert status == 401
    assert "already used" in body["error"]["message"]
    # ... and so is the newer one from the same sign-in.
    status, _ = await anonymous.fetch(
        "POST", "/auth/token/refresh/", json_body={"refresh": pair["refresh"]}
    )
    assert status == 401
    # Another sign-in is a new family and works.
    assert (await sign_in(anonymous, "ana")).token


def _token(agent_id: str, kind: str, issued: datetime, ttl: timedelta, secret: str = SECRET) -> str:
    claims = {
        "sub": agent_id,
        "type": kind,
        "jti": "j",
        "fam": "f",
        "iat": issued,
        "exp": issued + ttl,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


async def _my_id(api: Client) -> str:
    status, page = await api.fetch("GET", "/api/v1/agents/")
    assert status == 200
    return next(a["id"] for a in page["results"] if a["username"] == "ana")


async def test_bad_credentials_are_401_on_every_protected_route(api: Client) -> None:
    agent_id = await _my_id(api)
    now = datetime.now(UTC)
    bad = {
        "missing": None,
        "expired": _token(agent_id, "access", now - timedelta(hours=1), timedelta(minutes=15)),
        "refresh as access": api.refresh,
        "wrong key": _token(agent_id, "access", now, timedelta(minutes=5), secret="k" * 40),
        "garbage": "not-a-jwt",
        "unknown agent": _token("nobody", "access", now, timedelta(minutes=5)),
    }
    for label, token in bad.items():
        caller = api.as_agent(token)
        for method, path in [
            ("GET", "/api/v1/agents/"),
            ("GET", f"/api/v1/agents/{agent_id}/"),
            ("GET", "/api/v1/contacts/"),
            ("GET", "/api/v1/channels/"),
            ("GET", "/api/v1/messages/"),
            ("POST", "/api/v1/messages/"),
        ]:
            status, body = await caller.fetch(method, path)
            assert status == 401, (label, method, path)
            assert body["error"]["code"] == "unauthorized"


async def test_an_access_token_is_not_a_refresh_token(api: Client) -> None:
    status, body = await api.as_agent(None).fetch(
        "POST", "/auth/token/refresh/", json_body={"refresh": api.token}
    )
    assert (status, body["error"]["message"]) == (401, "expected an refresh token")


async def test_a_new_password_ends_older_sessions(api: Client) -> None:
    agent_id = await _my_id(api)
    old = _token(agent_id, "access", datetime.now(UTC) - timedelta(minutes=2), timedelta(hours=1))
    assert (await api.as_agent(old).fetch("GET", "/api/v1/agents/"))[0] == 200
    other = await sign_in(api.as_agent(None), "ana")
    change = {"password": "battery staple", "current_password": "correct horse"}
    status, _ = await api.fetch("PATCH", f"/api/v1/agents/{agent_id}/", json_body=change)
    assert status == 200
    assert (await api.as_agent(old).fetch("GET", "/api/v1/agents/"))[0] == 401
    assert (await other.fetch("GET", "/api/v1/agents/"))[0] == 401  # every other sign-in
    assert (await api.fetch("GET", "/api/v1/agents/"))[0] == 200  # but the one that changed it
    assert (await sign_in(api.as_agent(None), "ana", "battery staple")).token


async def test_a_stolen_access_token_cannot_change_the_password(api: Client) -> None:
    agent_id = await _my_id(api)
    url = f"/api/v1/agents/{agent_id}/"
    status, body = await api.fetch("PATCH", url, json_body={"password": "mallory was here"})
    assert (status, list(body["error"]["fields"])) == (400, ["current_password"])
    wrong = {"password": "mallory was here", "current_password": "a guess"}
    status, body = await api.fetch("PATCH", url, json_body=wrong)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert (await sign_in(api.as_agent(None), "ana", "correct horse")).token  # still hers


def test_token_issuer_round_trip_and_type_check() -> None:
    issuer = TokenIssuer(SECRET, timedelta(minutes=15), timedelta(days=7))
    pair = issuer.issue_pair("agent-1")
    access = issuer.decode(pair["access"], "access")
    refresh = issuer.decode(pair["refresh"], "refresh")
    assert access.agent_id == refresh.agent_id == "agent-1"
    assert access.family == refresh.family
    assert access.jti != refresh.jti
    assert timedelta(minutes=14) < access.expires_at - access.issued_at <= timedelta(minutes=15)
    # exp has whole seconds, the issue time milliseconds
    assert (
        timedelta(days=7, seconds=-1) < refresh.expires_at - refresh.issued_at <= timedelta(days=7)
    )


def test_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create_secret("", tmp_path)
    assert len(first) >= 32
    assert load_or_create_secret("", tmp_path) == first
    assert stat.S_IMODE((tmp_path / "jwt_secret").stat().st_mode) == 0o600
    assert load_or_create_secret("c" * 32, tmp_path) == "c" * 32
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".jwt_secret")]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ana"},
        {"username": "ana", "password": 5},
        {"username": "ana", "password": "correct horse", "otp": "1"},
    ],
)
async def test_invalid_sign_in_bodies_are_400(api: Client, body: dict) -> None:
    status, answer = await api.as_agent(None).fetch("POST", "/auth/token/", json_body=body)
    assert status == 400
    assert answer["error"]["code"] == "validation_error"
