"""Probes and the JSON shape of errors on unknown routes."""

from __future__ import annotations

from gateway.runtime import build_services
from storage.database import Storage
from testkit.helpers import TEST_CONFIG, Client, free_port


async def test_healthz_and_readyz_answer_when_the_database_does(client: Client) -> None:
    assert await client.fetch("GET", "/healthz") == (200, {"status": "ok"})
    assert await client.fetch("GET", "/readyz") == (200, {"status": "ready"})


async def test_readyz_is_503_with_a_reason_when_the_database_is_down(serve_app) -> None:
    # Nothing listens on this port: the ping fails within the probe's deadline.
    down = Storage.connect(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", "x")
    try:
        client = await serve_app(build_services(TEST_CONFIG, down))
        status, body = await client.fetch("GET", "/readyz")
        assert status == 503
        assert body["error"]["code"] == "unavailable"
        assert body["error"]["message"].startswith("database did not answer a ping")
        assert await client.fetch("GET", "/healthz") == (200, {"status": "ok"})
    finally:
        await down.close()


async def test_unknown_routes_are_json_404_for_every_method(client: Client) -> None:
    for method in ("GET", "POST", "DELETE", "PATCH"):
        status, body = await client.fetch(method, "/no/such/thing")
        assert status == 404
        assert body == {
            "error": {"code": "not_found", "message": "No such resource: /no/such/thing"}
        }


async def test_wrong_method_on_a_known_route_is_json_405(client: Client) -> None:
    status, body = await client.fetch("POST", "/healthz")
    assert status == 405
    assert body["error"]["code"] == "method_not_allowed"
