"""The base handler: bad input is a 4xx JSON error, never a 500; auth is enforced."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from tornado.web import RequestHandler

from gateway.config import ServerConfig
from gateway.runtime import build_services
from handlers import app as app_module
from handlers.app import make_app
from handlers.base import BaseHandler, public
from testkit.helpers import TEST_CONFIG, Client, sign_up


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "bad_request"),
        ('["a", "list"]', "application/json", 400, "bad_request"),
        ('"text"', "application/json", 400, "bad_request"),
        (b"\xff\xfe", "application/json", 400, "bad_request"),
        ("", "application/json", 400, "bad_request"),
        ('{"contact_id": "x", "content": "y"}', "text/plain", 415, "unsupported_media_type"),
        ('{"contact_id": "x", "content": "y"}', "", 415, "unsupported_media_type"),
        (
            "contact_id=x&content=y",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        ('{"contact_id": ["x"], "content": {"a": 1}}', "application/json", 400, "validation_error"),
        (
            '{"contact_id": "x", "content": "y", "agent_id": "z"}',
            "application/json",
            400,
            "validation_error",
        ),
    ],
)
async def test_malformed_bodies_are_4xx_json(
    api: Client, body: str | bytes, content_type: str, status: int, code: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await api.fetch("POST", "/api/v1/messages/", body=body, headers=headers)
    assert answer[0] == status
    assert answer[1]["error"]["code"] == code


async def test_oversized_body_is_413_before_it_is_read(api: Client) -> None:
    big = '{"contact_id": "x", "content": "' + "a" * TEST_CONFIG.server.max_body_bytes + '"}'
    status, body = await api.fetch(
        "POST", "/api/v1/messages/", body=big, headers={"Content-Type": "application/json"}
    )
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    # The refusal comes before authentication too: nobody can make us buffer it.
    status, _ = await api.as_agent(None).fetch(
        "POST", "/auth/token/", body=big, headers={"Content-Type": "application/json"}
    )
    assert status == 413


async def test_oversized_chunked_body_is_413(api: Client) -> None:
    chunk = b"a" * 65536
    count = TEST_CONFIG.server.max_body_bytes // len(chunk) + 2

    async def producer(write):  # type: ignore[no-untyped-def]
        await write(b'{"contact_id": "x", "content": "')
        for _ in range(count):
            await write(chunk)
        await write(b'"}')

    response = await api.http.fetch(
        api.base_url + "/api/v1/messages/",
        method="POST",
        body_producer=producer,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api.token}"},
        raise_error=False,
    )
    assert response.code == 413


async def test_wrong_method_is_405_json_with_allow(api: Client) -> None:
    for method in ("DELETE", "PUT"):
        response = await api.http.fetch(
            api.base_url + "/api/v1/messages/",
            method=method,
            headers={"Authorization": f"Bearer {api.token}"},
            body=b"" if method == "PUT" else None,
            raise_error=False,
            allow_nonstandard_methods=True,
        )
        assert response.code == 405
        assert response.headers["Allow"] == "GET, POST, OPTIONS"  # OPTIONS: CORS preflights
        assert json.loads(response.body) == {
            "error": {"code": "method_not_allowed", "message": "Method Not Allowed"}
        }


def test_the_app_refuses_a_handler_that_could_skip_authentication(storage) -> None:
    class Sneaky(BaseHandler):
        async def prepare(self) -> None:  # would skip the token check
            pass

        async def get(self) -> None:
            self.write_json({})

    class Foreign(RequestHandler):
        def get(self) -> None:
            self.write("{}")

    @public("a test says why")
    class Declared(RequestHandler):
        def get(self) -> None:
            self.write("{}")

    services = build_services(TEST_CONFIG, storage)
    original = list(app_module.API_ROUTES)
    try:
        for handler, problem in [
            (Sneaky, "overrides prepare"),
            (Foreign, "is not a BaseHandler and not marked public"),
        ]:
            app_module.API_ROUTES[:] = [*original, (r"/x", handler)]
            with pytest.raises(TypeError, match=problem):
                make_app(services)
        app_module.API_ROUTES[:] = [*original, (r"/x", Declared)]
        with pytest.raises(TypeError, match="has no OpenAPI docstring"):
            make_app(services)
    finally:
        app_module.API_ROUTES[:] = original


async def test_cors_answers_only_the_allowed_origins(storage, serve_app) -> None:
    config = dataclasses.replace(
        TEST_CONFIG, server=ServerConfig(cors_origins="https://inbox.example.com")
    )
    client = await serve_app(build_services(config, storage))
    agent = await sign_up(client, "ana")

    async def call(method: str, origin: str, **headers: str) -> Any:
        return await client.http.fetch(
            client.base_url + "/api/v1/messages/",
            method=method,
            headers={"Origin": origin, **headers},
            raise_error=False,
            allow_nonstandard_methods=True,
        )

    ask = {"Access-Control-Request-Method": "POST"}
    preflight = await call("OPTIONS", "https://inbox.example.com", **ask)
    assert preflight.code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://inbox.example.com"
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Idempotency-Key" in preflight.headers["Access-Control-Allow-Headers"]
    stranger = await call("OPTIONS", "https://evil.example.com", **ask)
    assert stranger.code == 204
    assert "Access-Control-Allow-Origin" not in stranger.headers  # the browser refuses
    listed = await call("GET", "https://inbox.example.com", Authorization=f"Bearer {agent.token}")
    assert listed.code == 200
    assert listed.headers["Access-Control-Allow-Origin"] == "https://inbox.example.com"
    assert "Origin" in listed.headers["Vary"]
    assert "X-Request-ID" in listed.headers["Access-Control-Expose-Headers"]


async def test_the_gateways_address_leads_to_the_inbox(client: Client) -> None:
    answer = await client.http.fetch(
        client.base_url + "/", follow_redirects=False, raise_error=False
    )
    assert (answer.code, answer.headers["Location"]) == (302, "/inbox/")
