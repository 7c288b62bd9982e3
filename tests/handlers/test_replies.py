"""Saved replies: any agent saves one for the team under a shortcut, finds them by
the shortcut's start, and only its author or an admin changes or deletes it."""

from __future__ import annotations

from typing import Any

import pytest

from testkit.helpers import Client, sign_up

THANKS = {"shortcut": "thanks", "text": "Thank you, {{contact.name}}! {{agent.name}} here."}


async def _save(agent: Client, body: dict[str, Any]) -> dict[str, Any]:
    status, saved = await agent.fetch("POST", "/api/v1/replies/", json_body=body)
    assert status == 201, saved
    return dict(saved)  # type: ignore[call-overload]


async def test_a_saved_reply_is_the_teams_and_found_by_its_shortcut(api: Client) -> None:
    bea = await sign_up(api, "bea")
    mine = await _save(bea, THANKS)
    await _save(api, {"shortcut": "thanks-long", "text": "Thank you for waiting."})
    await _save(api, {"shortcut": "hours", "text": "We open at 9."})
    status, found = await api.fetch("GET", "/api/v1/replies/?prefix=tha")
    assert status == 200
    assert sorted(r["shortcut"] for r in found["results"]) == ["thanks", "thanks-long"]
    status, everyone = await bea.fetch("GET", "/api/v1/replies/")
    assert sorted(r["shortcut"] for r in everyone["results"]) == ["hours", "thanks", "thanks-long"]
    status, read = await api.fetch("GET", f"/api/v1/replies/{mine['id']}/")
    assert (status, read["text"], read["created_by"]) == (200, THANKS["text"], mine["created_by"])


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"shortcut": "Thanks", "text": "x"}, 400, "shortcut: 1 to 32 of a-z"),
        ({"shortcut": "a b", "text": "x"}, 400, "shortcut: 1 to 32 of a-z"),
        ({"shortcut": "x" * 33, "text": "x"}, 400, "shortcut: 1 to 32 of a-z"),
        ({"shortcut": "ok", "text": ""}, 400, "text"),
        ({"shortcut": "ok", "text": "Hi {{contact.email}}"}, 400,
         "text: no field {{contact.email}}: it may use {{contact.name}}"),
        ({"shortcut": "thanks", "text": "again"}, 409,
         "another saved reply has the shortcut /thanks"),
    ],
)  # fmt: skip
async def test_what_cannot_be_saved_says_why_and_stores_nothing(
    api: Client, body: dict[str, Any], status: int, says: str
) -> None:
    await _save(api, THANKS)
    answered, error = await api.fetch("POST", "/api/v1/replies/", json_body=body)
    assert answered == status
    assert says in error["error"]["message"]
    _, listed = await api.fetch("GET", "/api/v1/replies/")
    assert [r["shortcut"] for r in listed["results"]] == ["thanks"]


async def test_its_author_or_an_admin_changes_it_and_no_one_else(api: Client) -> None:
    bea = await sign_up(api, "bea")
    cai = await sign_up(api, "cai")
    saved = await _save(bea, THANKS)
    path = f"/api/v1/replies/{saved['id']}/"
    assert (await cai.fetch("PATCH", path, json_body={"text": "mine now"}))[0] == 403
    assert (await cai.fetch("DELETE", path))[0] == 403
    status, changed = await bea.fetch("PATCH", path, json_body={"text": "Thanks!"})
    assert (status, changed["text"]) == (200, "Thanks!")
    assert (await bea.fetch("PATCH", path, json_body={}))[0] == 400
    assert (await api.fetch("PATCH", path, json_body={"shortcut": "ty"}))[0] == 200  # an admin
    assert (await api.fetch("DELETE", path))[0] == 204
    assert (await api.fetch("GET", path))[0] == 404
    assert (await api.fetch("DELETE", path))[0] == 404


async def test_an_api_token_reads_them_but_saves_none(api: Client) -> None:
    await _save(api, THANKS)
    status, minted = await api.fetch("POST", "/api/v1/tokens/", json_body={
        "name": "crm", "role": "integration", "scopes": ["read", "conversations"]})  # fmt: skip
    assert status == 201, minted
    token = api.as_agent(minted["token"])
    assert (await token.fetch("GET", "/api/v1/replies/"))[0] == 200
    assert (await token.fetch("POST", "/api/v1/replies/", json_body=THANKS))[0] == 403
