"""The OpenAPI document and the offline Swagger UI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from channels.registry import CHANNEL_TYPES
from gateway.metrics import route_template
from handlers.app import API_ROUTES
from handlers.base import implements, is_public
from testkit.browser import CHROMIUM, LOOPBACK_ONLY, QUIET
from testkit.helpers import Client


async def test_schema_is_valid_openapi_and_covers_every_route(client: Client) -> None:
    status, spec = await client.fetch("GET", "/api/v1/schema/")
    assert status == 200
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearer": []}]
    for pattern, handler in API_ROUTES:
        for method in ("get", "post", "patch", "delete"):
            if not implements(handler, method):
                continue
            operation = spec["paths"][route_template(pattern)][method]
            # Public operations say anonymous calls are fine ([] or {} among the
            # options); the rest inherit bearer security.
            security = operation.get("security", spec["security"])
            anonymous = security == [] or {} in security
            assert anonymous == is_public(handler, method), (pattern, method)
            for code, response in operation["responses"].items():
                if code.startswith("4"):
                    assert response["$ref"].startswith("#/components/responses/")
    assert spec["components"]["responses"]["BadRequest"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/Error"}
    assert "password" not in spec["components"]["schemas"]["Agent"]["properties"]
    # The channel types come from the one registry, wherever the schema lists them.
    webhook = spec["paths"]["/webhooks/{channel_type}/{channel}/{suffix}"]["post"]
    [kind] = [p for p in webhook["parameters"] if p["name"] == "channel_type"]
    assert kind["schema"]["enum"] == sorted(CHANNEL_TYPES)
    assert spec["components"]["schemas"]["Channel"]["properties"]["type"]["enum"] == sorted(
        CHANNEL_TYPES
    )


async def test_response_links_name_real_operations_and_parameters(client: Client) -> None:
    _, spec = await client.fetch("GET", "/api/v1/schema/")
    operations = {
        o["operationId"]: (o, path) for path, item in spec["paths"].items() for o in item.values()
    }
    linked = 0
    for operation, _ in operations.values():
        for code, response in operation["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            properties = (
                spec["components"]["schemas"][schema["$ref"].split("/")[-1]]["properties"]
                if "$ref" in schema
                else {}
            )
            for name, link in response.get("links", {}).items():
                target, _ = operations[link["operationId"]]
                accepted = {p["name"] for p in target["parameters"]}
                for parameter, expression in link["parameters"].items():
                    assert parameter in accepted, (operation["operationId"], name, parameter)
                    field = expression.removeprefix("$response.body#/").split("/")[0]
                    assert field in properties, (operation["operationId"], code, expression)
                linked += 1
    assert linked >= 10


async def test_docs_page_and_assets_are_served_locally(client: Client) -> None:
    page = await client.http.fetch(client.base_url + "/api/v1/docs/")
    html = page.body.decode()
    assert page.headers["Content-Type"].startswith("text/html")
    assert "https://" not in html
    assert "http://" not in html
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    init = (await client.http.fetch(client.base_url + "/api/v1/docs/init.js")).body.decode()
    assert 'url: "../schema/"' in init
    assert "petstore" not in init
    bundle = await client.http.fetch(client.base_url + "/api/v1/docs/static/swagger-ui-bundle.js")
    assert bundle.code == 200
    assert len(bundle.body) > 100_000


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
async def test_swagger_ui_renders_in_a_headless_browser_without_network(
    client: Client, tmp_path: Path
) -> None:
    command = [
        CHROMIUM,
        "--headless",
        *QUIET,
        LOOPBACK_ONLY,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        client.base_url + "/api/v1/docs/",
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    dom, _ = await asyncio.wait_for(process.communicate(), 120)
    rendered = dom.decode()
    # Swagger UI built these from our schema: the title and the operations.
    assert "bot-gateway" in rendered
    for path in ("/auth/token/", "/api/v1/agents/{agent_id}/", "/api/v1/messages/"):
        assert path in rendered
    assert "Failed to load API definition" not in rendered
