"""The reference project's routes, driven black-box against `bot-gateway serve`."""

from __future__ import annotations

from functools import partial

from testkit.processes import Gateway, call


def test_reference_routes_end_to_end(gateway: Gateway) -> None:
    gateway.start()
    api = partial(call, gateway.url(""))

    # 1. The first agent bootstraps the system without credentials.
    status, ana = api("POST", "/api/v1/agents/", {"username": "ana", "password": "correct horse"})
    assert status == 201
    assert "password" not in ana

    # 2. Sign in, then rotate the refresh token; the old one is then refused, and
    #    presenting it ends that sign-in, the rotated tokens included.
    sign_in = {"username": "ana", "password": "correct horse"}
    status, pair = api("POST", "/auth/token/", sign_in)
    assert status == 200
    status, rotated = api("POST", "/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert status == 200
    assert api("GET", "/api/v1/agents/", token=rotated["access"])[0] == 200
    assert api("POST", "/auth/token/refresh/", {"refresh": pair["refresh"]})[0] == 401
    assert api("GET", "/api/v1/agents/", token=rotated["access"])[0] == 401
    status, pair = api("POST", "/auth/token/", sign_in)
    assert status == 200
    token = pair["access"]

    # 3. List, read and change yourself.
    status, agents = api("GET", "/api/v1/agents/", token=token)
    assert (status, [a["username"] for a in agents["results"]]) == (200, ["ana"])
    assert api("GET", f"/api/v1/agents/{ana['id']}/", token=token) == (200, ana)
    status, changed = api(
        "PATCH", f"/api/v1/agents/{ana['id']}/", {"display_name": "Ana"}, token=token
    )
    assert (status, changed["display_name"]) == (200, "Ana")

    # 4. Another agent's account is read-only to you.
    assert api("POST", "/api/v1/agents/", {"username": "bob", "password": "x" * 10})[0] == 401
    status, bob = api(
        "POST", "/api/v1/agents/", {"username": "bob", "password": "x" * 10}, token=token
    )
    assert status == 201
    status, body = api("PATCH", f"/api/v1/agents/{bob['id']}/", {"display_name": "B"}, token=token)
    assert (status, body["error"]["code"]) == (403, "forbidden")

    # 5. Contacts and messages list (empty on a fresh install); of the default
    #    channels only the mock one runs, the others having no credentials.
    for area in ("contacts", "messages"):
        assert api("GET", f"/api/v1/{area}/", token=token) == (200, {"results": [], "next": None})
    status, channels = api("GET", "/api/v1/channels/", token=token)
    assert (status, [(c["name"], c["type"]) for c in channels["results"]]) == (
        200,
        [("mock", "mock")],
    )

    # 6. Sending to an unknown contact is a JSON 404, and nothing is stored.
    status, body = api(
        "POST", "/api/v1/messages/", {"contact_id": "x", "content": "hi"}, token=token
    )
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert api("GET", "/api/v1/messages/", token=token)[1]["results"] == []
    assert "Traceback" not in gateway.log()
