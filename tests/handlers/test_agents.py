"""Agents: read everyone, change and delete only yourself; admins create, disable,
demote and delete agents, and the last admin stays."""

from __future__ import annotations

import pytest

from testkit.helpers import Client, sign_in, sign_up


async def _ids(api: Client) -> dict[str, str]:
    status, page = await api.fetch("GET", "/api/v1/agents/")
    assert status == 200
    return {agent["username"]: agent["id"] for agent in page["results"]}


async def test_list_read_and_patch_yourself(api: Client) -> None:
    await sign_up(api, "bob")
    ids = await _ids(api)
    assert set(ids) == {"ana", "bob"}

    status, me = await api.fetch("GET", f"/api/v1/agents/{ids['ana']}/")
    assert status == 200
    assert set(me) == {"id", "username", "display_name", "is_available", "role", "disabled",
                       "created_at", "updated_at"}  # fmt: skip
    assert (me["role"], me["disabled"]) == ("admin", False)  # the first agent

    status, changed = await api.fetch(
        "PATCH",
        f"/api/v1/agents/{ids['ana']}/",
        json_body={"display_name": "Ana M.", "is_available": False},
    )
    assert status == 200
    assert (changed["display_name"], changed["is_available"]) == ("Ana M.", False)
    assert changed["updated_at"] >= me["updated_at"]


async def test_another_agent_can_be_read_but_not_changed_or_deleted(api: Client) -> None:
    bob = await sign_up(api, "bob")
    ids = await _ids(api)
    assert (await bob.fetch("GET", f"/api/v1/agents/{ids['ana']}/"))[0] == 200
    for who, other in ((bob, "ana"), (api, "bob")):  # an admin changes no one's name either
        status, body = await who.fetch(
            "PATCH", f"/api/v1/agents/{ids[other]}/", json_body={"display_name": "hacked"}
        )
        assert (status, body["error"]["code"]) == (403, "forbidden")
    assert (await bob.fetch("DELETE", f"/api/v1/agents/{ids['ana']}/"))[0] == 403
    status, ana = await api.fetch("GET", f"/api/v1/agents/{ids['ana']}/")
    assert ana["display_name"] == ""


async def test_only_an_admin_creates_agents_and_gives_roles(api: Client) -> None:
    bob = await sign_up(api, "bob")
    status, me = await bob.fetch("GET", "/api/v1/agents/me/")
    assert me["role"] == "agent"  # made by an admin, with no role asked for
    body = {"username": "eve", "password": "long enough"}
    status, refused = await bob.fetch("POST", "/api/v1/agents/", json_body=body)
    assert (status, refused["error"]["code"]) == (403, "forbidden")
    assert "only an admin" in refused["error"]["message"]
    status, refused = await bob.fetch(
        "PATCH", f"/api/v1/agents/{me['id']}/", json_body={"role": "admin"}
    )
    assert status == 403  # not even their own
    status, cai = await api.fetch(
        "POST", "/api/v1/agents/", json_body={**body, "username": "cai", "role": "admin"}
    )
    assert (status, cai["role"]) == (201, "admin")
    status, bad = await api.fetch("POST", "/api/v1/agents/", json_body={**body, "role": "root"})
    assert (status, list(bad["error"]["fields"])) == (400, ["role"])
    assert set(await _ids(api)) == {"ana", "bob", "cai"}


async def test_a_disabled_agent_is_signed_out_at_once_until_enabled(api: Client) -> None:
    bob = await sign_up(api, "bob")
    bob_id = (await _ids(api))["bob"]
    status, changed = await api.fetch(
        "PATCH", f"/api/v1/agents/{bob_id}/", json_body={"disabled": True}
    )
    assert (status, changed["disabled"], changed["is_available"]) == (200, True, False)
    status, refused = await bob.fetch("GET", "/api/v1/agents/me/")
    assert status == 401
    assert "disabled" in refused["error"]["message"]
    status, _ = await bob.fetch("POST", "/auth/token/refresh/", json_body={"refresh": bob.refresh})
    assert status == 401
    body = {"username": "bob", "password": "correct horse"}
    status, refused = await api.as_agent(None).fetch("POST", "/auth/token/", json_body=body)
    assert (status, "disabled" in refused["error"]["message"]) == (401, True)
    await api.fetch("PATCH", f"/api/v1/agents/{bob_id}/", json_body={"disabled": False})
    again = await sign_in(api, "bob")
    assert (await again.fetch("GET", "/api/v1/agents/me/"))[0] == 200


async def test_the_last_admin_cannot_be_demoted_disabled_or_deleted(api: Client) -> None:
    bob = await sign_up(api, "bob")
    ids = await _ids(api)
    ana = f"/api/v1/agents/{ids['ana']}/"
    for change in ({"role": "agent"}, {"disabled": True}):
        status, refused = await api.fetch("PATCH", ana, json_body=change)
        assert (status, refused["error"]["code"]) == (409, "conflict"), change
    assert (await api.fetch("DELETE", ana))[0] == 409
    bob_path = f"/api/v1/agents/{ids['bob']}/"
    assert (await api.fetch("PATCH", bob_path, json_body={"role": "admin"}))[0] == 200
    status, demoted = await bob.fetch("PATCH", ana, json_body={"role": "agent"})
    assert (status, demoted["role"]) == (200, "agent")  # another admin is left
    assert (await bob.fetch("DELETE", ana))[0] == 204


async def test_deleting_yourself_ends_your_session(api: Client) -> None:
    bob = await sign_up(api, "bob")
    bob_id = (await _ids(api))["bob"]
    assert await bob.fetch("DELETE", f"/api/v1/agents/{bob_id}/") == (204, None)
    assert (await bob.fetch("GET", "/api/v1/agents/"))[0] == 401
    assert (await api.fetch("GET", f"/api/v1/agents/{bob_id}/"))[0] == 404


async def test_duplicate_username_is_409_whatever_the_case(api: Client) -> None:
    status, body = await api.fetch(
        "POST", "/api/v1/agents/", json_body={"username": "ANA", "password": "another one"}
    )
    assert status == 409
    assert body["error"]["fields"] == {"username": ["taken"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "eve", "password": "long enough", "is_superuser": True}, "is_superuser"),
        ({"username": "eve", "password": "long enough", "is_staff": True}, "is_staff"),
        ({"username": "eve", "password": "short"}, "password"),
        ({"username": "eve", "password": ["a list"]}, "password"),
        ({"username": "e", "password": "long enough"}, "username"),
        ({"username": "bad name!", "password": "long enough"}, "username"),
        ({"username": 7, "password": "long enough"}, "username"),
        ({"password": "long enough"}, "username"),
        ({"username": "eve", "password": "long enough", "display_name": None}, "display_name"),
    ],
)
async def test_invalid_or_privileged_fields_are_400_naming_the_field(
    api: Client, body: dict, field: str
) -> None:
    status, answer = await api.fetch("POST", "/api/v1/agents/", json_body=body)
    assert status == 400
    assert answer["error"]["code"] == "validation_error"
    assert field in answer["error"]["fields"]
    assert "eve" not in await _ids(api)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"is_available": "yes"},
        {"is_available": 1},
        {"username": "renamed"},
        {"password": "short"},
        {"is_superuser": True},
    ],
)
async def test_invalid_patches_are_400_and_change_nothing(api: Client, body: dict) -> None:
    ana_id = (await _ids(api))["ana"]
    _, before = await api.fetch("GET", f"/api/v1/agents/{ana_id}/")
    status, answer = await api.fetch("PATCH", f"/api/v1/agents/{ana_id}/", json_body=body)
    assert status == 400
    assert answer["error"]["code"] == "validation_error"
    assert (await api.fetch("GET", f"/api/v1/agents/{ana_id}/"))[1] == before


async def test_password_hash_is_never_returned(api: Client) -> None:
    await sign_up(api, "bob")
    ana_id = (await _ids(api))["ana"]
    answers = [
        await api.fetch("GET", "/api/v1/agents/"),
        await api.fetch("GET", f"/api/v1/agents/{ana_id}/"),
        await api.fetch(
            "PATCH",
            f"/api/v1/agents/{ana_id}/",
            json_body={"password": "new pass 1", "current_password": "correct horse"},
        ),
    ]
    for _, body in answers:
        assert "password" not in str(body)
        assert "argon2" not in str(body)
    assert (await sign_in(api.as_agent(None), "ana", "new pass 1")).token


async def test_unknown_agent_is_404(api: Client) -> None:
    status, body = await api.fetch("GET", "/api/v1/agents/nope/")
    assert (status, body["error"]["message"]) == (404, "No such agent: nope")
    assert (await api.fetch("PATCH", "/api/v1/agents/nope/", json_body={"display_name": "x"}))[
        0
    ] == 404
