"""Sign-in under attack: bursts, a shared proxy address, two gateways, stolen tokens.

And who may create the first agent, and who may scrape /metrics, once a proxy
stands in front of the gateway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from tornado.httpclient import AsyncHTTPClient

from gateway.clients import client_address, is_local, parse_networks
from gateway.config import AuthConfig, Config, ServerConfig
from gateway.runtime import build_services
from storage.database import Storage
from testkit.helpers import TEST_CONFIG, Client, sign_in, sign_up

LIMIT = TEST_CONFIG.auth.max_failed_logins
BEHIND_PROXY = dataclasses.replace(TEST_CONFIG, server=ServerConfig(trusted_proxies="127.0.0.1"))
FROM_AFAR = {"X-Forwarded-For": "198.51.100.7"}  # what the trusted proxy says of its client


async def _attempts(client: Client, bodies: list[dict], headers: dict | None = None) -> list[int]:
    """Every sign-in at once, on connections of their own."""
    http = AsyncHTTPClient(force_instance=True, max_clients=len(bodies))
    try:
        answers = await asyncio.gather(
            *(
                http.fetch(
                    client.base_url + "/auth/token/",
                    method="POST",
                    body=json.dumps(body),
                    headers={"Content-Type": "application/json", **(headers or {})},
                    raise_error=False,
                )
                for body in bodies
            )
        )
    finally:
        http.close()
    return [answer.code for answer in answers]


async def test_a_burst_of_wrong_passwords_has_at_most_the_limit_checked(api: Client) -> None:
    guesses = [{"username": "ana", "password": f"guess-{n:03}"} for n in range(50)]
    codes = await _attempts(api, guesses)
    assert codes.count(401) <= LIMIT  # each 401 is one password checked
    assert codes.count(401) + codes.count(429) == 50
    assert (await _attempts(api, [{"username": "ana", "password": "correct horse"}])) == [429]


async def test_failures_from_a_shared_address_never_lock_out_a_right_password(
    api: Client,
) -> None:
    # No trusted proxy is configured, so every client has the proxy's address (ours).
    spray = [{"username": f"user{n}", "password": "Winter2026!"} for n in range(4 * LIMIT + 5)]
    assert set(await _attempts(api, spray)) == {401}
    # ana has no failures of her own: she signs in (slowed down, not refused).
    assert (await sign_in(api.as_agent(None), "ana")).token
    # An account the attacker did try from that address is refused.
    assert await _attempts(api, [{"username": "user1", "password": "x"}]) == [429]


async def test_two_gateways_on_one_database_share_the_limit(
    storage: Storage, serve_app, api: Client
) -> None:
    other = await serve_app(build_services(TEST_CONFIG, storage))
    wrong = {"username": "ana", "password": "wrong horse"}
    for n in range(LIMIT):
        assert await _attempts(api if n % 2 else other, [wrong]) == [401]
    right = {"username": "ana", "password": "correct horse"}
    assert await _attempts(other, [right]) == [429]
    assert await _attempts(api, [right]) == [429]


async def test_a_reused_refresh_token_ends_the_sign_in_at_once(api: Client) -> None:
    anonymous = api.as_agent(None)
    # The thief rotates first with a stolen copy of the refresh token.
    status, thief = await anonymous.fetch(
        "POST", "/auth/token/refresh/", json_body={"refresh": api.refresh}
    )
    assert status == 200
    status, _ = await anonymous.fetch(
        "POST", "/auth/token/refresh/", json_body={"refresh": api.refresh}
    )
    assert status == 401  # the owner's turn reveals the reuse
    for token in (api.token, thief["access"]):
        assert (await api.as_agent(token).fetch("GET", "/api/v1/agents/"))[0] == 401
    status, _ = await anonymous.fetch(
        "POST", "/auth/token/refresh/", json_body={"refresh": thief["refresh"]}
    )
    assert status == 401
    assert (await sign_in(anonymous, "ana")).token  # a new sign-in works


async def test_logout_ends_its_sign_in_and_no_other(api: Client) -> None:
    other = await sign_in(api.as_agent(None), "ana")
    assert (await api.fetch("POST", "/auth/logout/"))[0] == 204
    assert (await api.fetch("GET", "/api/v1/agents/"))[0] == 401
    status, body = await api.as_agent(None).fetch(
        "POST", "/auth/token/refresh/", json_body={"refresh": api.refresh}
    )
    assert (status, body["error"]["message"]) == (401, "this sign-in has ended; sign in again")
    assert (await other.fetch("GET", "/api/v1/agents/"))[0] == 200
    assert (await api.as_agent(None).fetch("POST", "/auth/logout/"))[0] == 401


async def test_the_first_agent_is_created_only_from_this_machine(
    storage: Storage, serve_app
) -> None:
    client = await serve_app(build_services(BEHIND_PROXY, storage))
    body = {"username": "mallory", "password": "x" * 12}
    status, answer = await client.fetch(
        "POST", "/api/v1/agents/", json_body=body, headers=FROM_AFAR
    )
    assert status == 403
    assert "bot-gateway create-agent" in answer["error"]["message"]
    # An untrusted proxy on this machine is not this machine either.
    status, _ = await client.fetch(
        "POST", "/api/v1/agents/", json_body=body, headers={"Forwarded": "for=198.51.100.7"}
    )
    assert status == 403
    assert await storage.agents.collection.count_documents({}) == 0
    await sign_up(client, "ana")  # from 127.0.0.1, with no proxy in between


async def test_bootstrap_never_opens_again_once_an_agent_existed(
    api: Client, storage: Storage
) -> None:
    status, page = await api.fetch("GET", "/api/v1/agents/")
    [me] = page["results"]
    assert await storage.agents.delete(me["id"])  # the last admin: not through the API
    status, _ = await api.as_agent(None).fetch(
        "POST", "/api/v1/agents/", json_body={"username": "eve", "password": "x" * 12}
    )
    assert status == 401  # from this machine too: an agent existed once


async def test_open_registration_still_lets_anyone_in(storage: Storage, serve_app) -> None:
    config = dataclasses.replace(
        BEHIND_PROXY,
        auth=AuthConfig(jwt_secret=TEST_CONFIG.auth.jwt_secret, open_registration=True),
    )
    client = await serve_app(build_services(config, storage))
    body = {"username": "eve", "password": "x" * 12}
    status, eve = await client.fetch("POST", "/api/v1/agents/", json_body=body, headers=FROM_AFAR)
    assert (status, eve["role"]) == (201, "agent")  # the first caller is no admin
    admin = {**body, "username": "mallory", "role": "admin"}
    status, _ = await client.fetch("POST", "/api/v1/agents/", json_body=admin, headers=FROM_AFAR)
    assert status == 401  # an admin's token is needed for that


async def test_metrics_without_a_token_only_for_this_machine(storage: Storage, serve_app) -> None:
    async def scrape(client: Client, headers: dict[str, str]) -> int:
        url = client.base_url + "/metrics"
        return (await client.http.fetch(url, headers=headers, raise_error=False)).code

    client = await serve_app(build_services(BEHIND_PROXY, storage))
    assert await scrape(client, {}) == 200
    assert await scrape(client, FROM_AFAR) == 403
    direct = await serve_app(build_services(TEST_CONFIG, storage))  # no proxy trusted
    assert await scrape(direct, FROM_AFAR) == 403


PROXIES = parse_networks("10.0.0.0/8, 127.0.0.1")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client", "local"),
    [
        ("203.0.113.5", "", "203.0.113.5", False),  # no proxy
        ("203.0.113.5", "127.0.0.1", "203.0.113.5", False),  # an untrusted peer's header
        ("10.1.2.3", "198.51.100.7", "198.51.100.7", False),  # Caddy's client
        ("10.1.2.3", "6.6.6.6, 198.51.100.7", "198.51.100.7", False),  # a forged first hop
        ("10.1.2.3", "198.51.100.7, 10.9.9.9", "198.51.100.7", False),  # two trusted hops
        ("10.1.2.3", "", "10.1.2.3", False),  # the proxy itself
        ("10.1.2.3", "not an address", "not an address", False),
        ("127.0.0.1", "", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.1", "127.0.0.1", True),  # through a trusted local proxy
        ("::1", "", "::1", True),
        ("::ffff:127.0.0.1", "", "::ffff:127.0.0.1", True),
    ],
)
def test_client_addresses_behind_trusted_proxies(
    peer: str, forwarded_for: str, client: str, local: bool
) -> None:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    assert client_address(peer, headers, PROXIES) == client
    assert is_local(peer, headers, PROXIES) is local


def test_a_bad_trusted_proxy_is_a_config_error() -> None:
    with pytest.raises(Exception, match=r"trusted_proxies: 'caddy' is not an IP address"):
        Config(server=ServerConfig(trusted_proxies="10.0.0.0/8, caddy"))


async def test_wrong_passwords_from_one_address_lock_out_only_that_address(
    storage: Storage, serve_app
) -> None:
    client = await serve_app(build_services(BEHIND_PROXY, storage))
    await sign_up(client, "ana")  # from this machine: the first agent
    wrong = [{"username": "ana", "password": f"guess-{n}"} for n in range(LIMIT + 1)]
    assert (await _attempts(client, wrong, FROM_AFAR)).count(429) >= 1
    right = {"username": "ana", "password": "correct horse"}
    assert await _attempts(client, [right], FROM_AFAR) == [429]  # the guesser's address
    assert await _attempts(client, [right], {"X-Forwarded-For": "203.0.113.9"}) == [200]


async def test_a_spray_across_addresses_takes_turns_but_the_owners_address_does_not(
    storage: Storage, serve_app
) -> None:
    client = await serve_app(build_services(BEHIND_PROXY, storage))
    await sign_up(client, "ana")
    right = {"username": "ana", "password": "correct horse"}
    home = {"X-Forwarded-For": "203.0.113.9"}
    assert await _attempts(client, [right], home) == [200]  # ana signed in from home before
    wide = 4 * LIMIT
    for n in range(wide):  # one wrong guess from each of many addresses
        spray = {"X-Forwarded-For": f"198.51.100.{n + 1}"}
        assert await _attempts(client, [{"username": "ana", "password": "x"}], spray) == [401]
    # Past the username's limit, new addresses take turns: one check a second at most,
    # however many arrive at once.
    started = asyncio.get_running_loop().time()
    codes = await asyncio.gather(
        *(
            _attempts(
                client, [{"username": "ana", "password": "y"}], {"X-Forwarded-For": f"192.0.2.{n}"}
            )
            for n in range(1, 4)
        )
    )
    assert sorted(c for [c] in codes) == [401, 401, 401]
    assert asyncio.get_running_loop().time() - started >= 2 * 0.95  # three turns, a second apart
    assert await _attempts(client, [right], home) == [200]  # the owner's address does not wait


async def test_parallel_guesses_from_one_address_are_as_slow_as_sequential(api: Client) -> None:
    # Past 4 x the limit an address takes turns, one password check a second, however
    # many it sends at once; past a few seconds of waiting it is told to come back.
    wide = 4 * LIMIT
    spray = [{"username": f"user{n}", "password": "Winter2026!"} for n in range(wide)]
    assert set(await _attempts(api, spray)) == {401}
    started = asyncio.get_running_loop().time()
    guesses = [{"username": f"other{n}", "password": "Spring2026!"} for n in range(64)]
    codes = await _attempts(api, guesses)
    elapsed = asyncio.get_running_loop().time() - started
    assert codes.count(401) + codes.count(429) == 64
    # Each check after the first waited its turn: as sequential guessing would.
    assert codes.count(401) <= 1 + elapsed / 1.0, (codes.count(401), elapsed)
    assert codes.count(401) <= 1 + 5 + 1  # the queue holds five seconds of turns
