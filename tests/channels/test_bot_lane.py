"""A channel's bot answers first: its conversations wait for it (status bot, offered
to no agent), it replies and hands off with its token, a missed reply deadline
hands off by itself, and once an agent takes over the bot's sends are refused."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from gateway.config import BotsConfig
from storage.records import utcnow
from testkit.helpers import Client, async_wait_until, sign_up
from tests.channels.conftest import MOCK, MOCK_HEADERS, MOCK_URL, Gateway

PATIENT = BotsConfig(reply_deadline_seconds=600, recheck_seconds=0.05)


async def _write(gw: Gateway, contact: int, text: str = "oi") -> None:
    body = json.dumps({"contact_id": contact, "message": text})
    assert (await gw.post(MOCK_URL, body, MOCK_HEADERS))[0] == 200


async def _with_a_bot(gw: Gateway) -> tuple[Client, str]:
    """A bot token named as the mock channel's bot; ``(its client, the channel id)``."""
    status, minted = await gw.agent.fetch(
        "POST",
        "/api/v1/tokens/",
        json_body={"name": "Ajudante", "role": "bot", "scopes": ["read", "send", "conversations"]},
    )
    assert status == 201
    _, channels = await gw.agent.fetch("GET", "/api/v1/channels/")
    [channel] = channels["results"]
    status, named = await gw.agent.fetch(
        "PATCH", f"/api/v1/channels/{channel['id']}/", json_body={"bot_id": minted["id"]}
    )
    assert (status, named["bot_id"]) == (200, minted["id"])
    return gw.agent.as_agent(minted["token"]), channel["id"]


async def _conversation(client: Client, contact: int) -> dict[str, Any]:
    _, page = await client.fetch("GET", "/api/v1/conversations/?page_size=100")
    [found] = [c for c in page["results"] if c["contact"]["external_id"] == str(contact)]
    return found


async def _reply(client: Client, conversation: dict[str, Any], text: str) -> tuple[int, Any]:
    body = {"contact_id": conversation["contact"]["id"], "content": text}
    return await client.fetch("POST", "/api/v1/messages/", json_body=body)


async def test_a_bot_answers_first_then_hands_off_to_the_agents(gateway) -> None:
    gw: Gateway = await gateway(MOCK, bots=PATIENT)
    bot, _ = await _with_a_bot(gw)
    await _write(gw, 1, "Olá")
    assert await gw.services.assigner.offer() == 0  # ana is available: nothing for her
    conversation = await _conversation(bot, 1)
    assert (conversation["status"], conversation["assignee_id"]) == ("bot", None)
    _, held = await bot.fetch("GET", "/api/v1/conversations/?status=bot")
    assert [c["id"] for c in held["results"]] == [conversation["id"]]

    status, reply = await _reply(bot, conversation, "Sou o assistente. Em que posso ajudar?")
    assert status == 201
    assert reply["agent"]["kind"] == "bot"
    path = f"/api/v1/conversations/{conversation['id']}/"
    status, moved = await bot.fetch(
        "POST", f"{path}handoff/", json_body={"reason": "pediu um reembolso"}
    )
    assert (status, moved["status"], moved["handoff_reason"]) == (200, "open", "pediu um reembolso")

    async def assigned() -> bool:
        return (await _conversation(gw.agent, 1))["assignee_id"] is not None

    await async_wait_until(assigned, 10, "the hand-off to be assigned")
    status, refused = await _reply(bot, conversation, "ainda aqui")
    assert (status, refused["error"]["code"]) == (409, "conflict")
    again = await bot.fetch("POST", f"{path}handoff/", json_body={"reason": "again"})
    assert again[0] == 409

    # Resolved, then the contact writes again: back to the bot first.
    assert (await gw.agent.fetch("PATCH", path, json_body={"status": "resolved"}))[0] == 200
    await _write(gw, 1, "Outra pergunta")
    reopened = await _conversation(bot, 1)
    assert (reopened["status"], reopened["handoff_reason"]) == ("bot", None)
    assert (await _reply(bot, reopened, "Claro"))[0] == 201


async def test_a_missed_reply_deadline_hands_off_by_itself(gateway) -> None:
    quick = BotsConfig(reply_deadline_seconds=0.3, recheck_seconds=0.05)
    gw: Gateway = await gateway(MOCK, bots=quick)
    bot, _ = await _with_a_bot(gw)
    await _write(gw, 1)

    async def handed_off() -> bool:
        return (await _conversation(gw.agent, 1))["status"] == "open"

    await async_wait_until(handed_off, 10, "the deadline to hand it off")
    moved = await _conversation(gw.agent, 1)
    assert moved["handoff_reason"] == "the bot did not reply within 0.3 s"
    assert (await _reply(bot, moved, "desculpe a demora"))[0] == 409


async def test_an_agent_takes_over_and_the_bots_next_send_is_refused(gateway) -> None:
    gw: Gateway = await gateway(MOCK, bots=PATIENT)
    bot, _ = await _with_a_bot(gw)
    await _write(gw, 1)
    await _write(gw, 2)
    first, second = await _conversation(bot, 1), await _conversation(bot, 2)
    path = f"/api/v1/conversations/{first['id']}/"
    status, taken = await gw.agent.fetch("PATCH", path, json_body={"assignee_id": "me"})
    assert status == 200
    assert (taken["status"], taken["handoff_reason"]) == ("open", "taken over by ana")
    assert taken["assignee_id"] is not None
    assert (await _reply(bot, first, "eu respondo"))[0] == 409
    # An agent who simply answers a conversation the bot holds takes it over too.
    assert (await _reply(gw.agent, second, "Oi, aqui é a Ana"))[0] == 201
    answered = await _conversation(gw.agent, 2)
    assert (answered["status"], answered["handoff_reason"]) == ("open", "ana answered")
    assert answered["assignee_id"] == taken["assignee_id"]
    assert (await _reply(bot, second, "eu respondo"))[0] == 409


async def test_only_an_admin_names_a_bot_and_only_a_bot_token(gateway) -> None:
    gw: Gateway = await gateway(MOCK, bots=PATIENT)
    _, channels = await gw.agent.fetch("GET", "/api/v1/channels/")
    path = f"/api/v1/channels/{channels['results'][0]['id']}/"
    status, minted = await gw.agent.fetch(
        "POST", "/api/v1/tokens/", json_body={"name": "crm", "role": "integration",
                                             "scopes": ["read"]}
    )  # fmt: skip
    assert status == 201
    for bot_id in (minted["id"], "no-such-token"):
        status, refused = await gw.agent.fetch("PATCH", path, json_body={"bot_id": bot_id})
        assert (status, list(refused["error"]["fields"])) == (400, ["bot_id"])
    bob = await sign_up(gw.agent, "bob")
    assert (await bob.fetch("PATCH", path, json_body={"bot_id": None}))[0] == 403
    await _write(gw, 1)  # no bot: the agents' as before
    assert (await _conversation(gw.agent, 1))["status"] == "open"


async def test_a_bot_whose_subscription_fails_hands_off_what_it_holds(gateway) -> None:
    quick = BotsConfig(failing_subscription_seconds=1, recheck_seconds=0.05)
    gw: Gateway = await gateway(MOCK, bots=quick)
    bot, _ = await _with_a_bot(gw)
    _, channels = await gw.agent.fetch("GET", "/api/v1/channels/")
    bot_id = channels["results"][0]["bot_id"]
    hook = {"url": "https://bot.example.com/hook", "events": ["message.created"]}
    status, subscription = await gw.agent.fetch(
        "POST", "/api/v1/subscriptions/", json_body={**hook, "bot_id": bot_id}
    )
    assert (status, subscription["bot_id"]) == (201, bot_id)
    await _write(gw, 1)
    assert (await _conversation(bot, 1))["status"] == "bot"
    # What the sender records when the bot's endpoint answers 502 (and has for a while).
    since = utcnow() - timedelta(seconds=5)
    await gw.storage.subscriptions.failing(subscription["id"], since, "HTTP 502")

    async def handed_off() -> bool:
        return (await _conversation(gw.agent, 1))["status"] == "open"

    await async_wait_until(handed_off, 10, "the failing subscription to hand it off")
    moved = await _conversation(gw.agent, 1)
    assert moved["handoff_reason"] == "the bot's webhook is failing: HTTP 502"
