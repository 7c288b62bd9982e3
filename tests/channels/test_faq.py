"""FAQ auto-replies on both cache backends, through the mock channel and Telegram."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from gateway.config import CacheConfig, FaqConfig
from gateway.faq import normalize
from testkit.helpers import async_wait_until, free_port
from tests.channels.conftest import MOCK, MOCK_HEADERS, MOCK_URL, Gateway
from tests.channels.test_telegram import telegram

URL, JSON = MOCK_URL, MOCK_HEADERS
FAQ = {
    "question": "Qual o horário de atendimento?",
    "alternatives": ["Que horas vocês abrem?"],
    "answer": "Atendemos de segunda a sexta, das 9h às 18h.",
}


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> CacheConfig:
    """The same tests on each cache backend."""
    if request.param == "redis":
        return CacheConfig(backend="redis", url=request.getfixturevalue("redis_url"))
    return CacheConfig()


def test_normalisation_folds_case_accents_punctuation_and_spaces() -> None:
    assert normalize("Qual o horário de atendimento?") == "qual o horario de atendimento"
    assert normalize("  QUAL o   HORÁRIO, de atendimento!!! ") == "qual o horario de atendimento"
    assert normalize("Ça va? Ñandú…") == "ca va nandu"
    assert normalize("?!…") == ""


async def _ask(gw: Gateway, contact: int, text: str) -> None:
    status, _ = await gw.post(URL, json.dumps({"contact_id": contact, "message": text}), JSON)
    assert status == 200


async def _replies(gw: Gateway) -> list[dict[str, Any]]:
    return await gw.messages(direction="out")


async def _create(gw: Gateway, body: dict[str, Any] = FAQ) -> dict[str, Any]:
    status, faq = await gw.agent.fetch("POST", "/api/v1/faqs/", json_body=body)
    assert status == 201, faq
    return faq


async def test_a_differently_written_question_gets_the_answer_as_an_auto_reply(
    gateway, cache
) -> None:
    gw: Gateway = await gateway(MOCK, cache=cache)
    faq = await _create(gw)
    await _ask(gw, 1, "qual O HORARIO de atendimento")
    [reply] = await _replies(gw)
    assert (reply["content"], reply["agent_id"], reply["auto_reply"]) == (FAQ["answer"], None, True)
    assert (await gw.final(reply["_id"]))["status"] == "sent"
    _, shown = await gw.agent.fetch("GET", f"/api/v1/messages/{reply['_id']}/")
    assert (shown["auto_reply"], shown["agent"]) == (True, None)
    # The alternative phrasing matches too; the question itself is still stored and assigned.
    await _ask(gw, 2, "Que horas VOCÊS abrem")
    assert len(await _replies(gw)) == 2
    assert len(await gw.messages(direction="in")) == 2
    _, counted = await gw.agent.fetch("GET", f"/api/v1/faqs/{faq['id']}/")
    assert counted["hits"] == 2


async def test_asking_again_within_the_window_gets_no_second_reply(gateway, cache) -> None:
    gw: Gateway = await gateway(MOCK, cache=cache)
    await _create(gw)
    for _ in range(3):
        await _ask(gw, 1, FAQ["question"])
    assert len(await _replies(gw)) == 1
    await _ask(gw, 2, FAQ["question"])  # another contact does get it
    assert len(await _replies(gw)) == 2


async def test_an_edited_answer_is_used_for_the_next_question(gateway, cache) -> None:
    gw: Gateway = await gateway(MOCK, cache=cache)
    faq = await _create(gw)
    await _ask(gw, 1, FAQ["question"])  # cached now
    status, _ = await gw.agent.fetch(
        "PATCH", f"/api/v1/faqs/{faq['id']}/", json_body={"answer": "Agora das 8h às 20h."}
    )
    assert status == 200
    await _ask(gw, 2, FAQ["question"])
    assert [r["content"] for r in await _replies(gw)] == [FAQ["answer"], "Agora das 8h às 20h."]
    await gw.agent.fetch("PATCH", f"/api/v1/faqs/{faq['id']}/", json_body={"enabled": False})
    await _ask(gw, 3, FAQ["question"])
    assert len(await _replies(gw)) == 2


async def test_the_second_lookup_is_a_cache_hit(gateway, cache) -> None:
    gw: Gateway = await gateway(MOCK, cache=cache)
    await _create(gw)
    faq = gw.services.faq
    first = await faq.lookup("Qual o horario de atendimento")
    misses, hits = faq.stats.misses, faq.stats.hits
    assert await faq.lookup("QUAL O HORÁRIO DE ATENDIMENTO?") == first
    assert (faq.stats.misses, faq.stats.hits) == (misses, hits + 1)
    # A text that is no FAQ's phrasing is answered from memory: no cache, no database.
    no_faq = faq.stats.no_faq
    assert await faq.lookup("something else") is None
    assert await faq.lookup("Something else!") is None
    assert (faq.stats.misses, faq.stats.hits) == (misses, hits + 1)
    assert faq.stats.no_faq == no_faq + 2


async def test_suggestions_list_an_unanswered_question_with_its_askers(gateway, cache) -> None:
    gw: Gateway = await gateway(MOCK, cache=cache)
    await _create(gw)
    for contact in (1, 2, 3):
        await _ask(gw, contact, "Vocês entregam no sábado?")
    await _ask(gw, 4, "vocês entregam no SABADO")
    await _ask(gw, 1, "Tem estacionamento?")
    await _ask(gw, 5, FAQ["question"])  # answered: never a suggestion
    status, body = await gw.agent.fetch("GET", "/api/v1/faqs/suggestions/?days=7")
    assert status == 200
    top = body["results"][0]
    assert (top["question"], top["count"], top["contacts"]) == ("voces entregam no sabado", 4, 4)
    assert [s["question"] for s in body["results"]] == [
        "voces entregam no sabado",
        "tem estacionamento",
    ]
    # Once an FAQ answers it, it is no longer suggested.
    await _create(gw, {"question": "Vocês entregam no sábado?", "answer": "Sim, até as 14h."})
    _, body = await gw.agent.fetch("GET", "/api/v1/faqs/suggestions/")
    assert [s["question"] for s in body["results"]] == ["tem estacionamento"]


async def test_suggestions_count_three_contacts_as_three(gateway, cache) -> None:
    gw: Gateway = await gateway(MOCK, cache=cache)
    for contact in (7, 8, 9):
        await _ask(gw, contact, "Aceitam pix?")
    _, body = await gw.agent.fetch("GET", "/api/v1/faqs/suggestions/")
    assert [(s["question"], s["count"], s["contacts"]) for s in body["results"]] == [
        ("aceitam pix", 3, 3)
    ]


async def test_auto_replies_can_be_off_per_channel_and_globally(gateway) -> None:
    quiet = dataclasses.replace(MOCK, faq_auto_reply=False)
    gw: Gateway = await gateway(quiet)
    await _create(gw)
    await _ask(gw, 1, FAQ["question"])
    assert await _replies(gw) == []
    assert len(await gw.messages(direction="in")) == 1


async def test_auto_replies_off_globally(gateway) -> None:
    gw: Gateway = await gateway(MOCK, faq=FaqConfig(auto_reply=False))
    await _create(gw)
    await _ask(gw, 1, FAQ["question"])
    assert await _replies(gw) == []


async def test_a_redis_outage_falls_back_to_mongodb(gateway) -> None:
    dead = CacheConfig(backend="redis", url=f"redis://127.0.0.1:{free_port()}/0")
    gw: Gateway = await gateway(MOCK, cache=dead)
    await _create(gw)  # the invalidation fails quietly too
    await _ask(gw, 1, FAQ["question"])
    [reply] = await _replies(gw)
    assert reply["content"] == FAQ["answer"]
    assert gw.services.faq.stats.errors >= 2


async def test_telegram_polling_contact_gets_the_answer_in_the_chat(
    gateway, telegram_api, cache
) -> None:
    gw: Gateway = await gateway(telegram(telegram_api, mode="polling"), cache=cache)
    await _create(gw)
    telegram_api.user_writes(555, "qual o HORÁRIO de atendimento???", first_name="Rui")

    async def answered() -> bool:
        return telegram_api.sent_to(555) == [FAQ["answer"]]

    await async_wait_until(answered, 15, "the auto-reply in the Telegram chat")
    [reply] = await _replies(gw)
    assert (await gw.final(reply["_id"]))["status"] == "sent"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"answer": "x"}, 400, "question"),
        ({"question": "?!", "answer": "x"}, 400, "question"),
        ({"question": "q", "answer": ""}, 400, "answer"),
        ({"question": "q", "answer": "x" * 4097}, 400, "answer"),
        ({"question": "q", "answer": "x", "alternatives": "not a list"}, 400, "alternatives"),
        ({"question": "q", "answer": "x", "enabled": "yes"}, 400, "enabled"),
        ({"question": "q", "answer": "x", "hits": 100}, 400, "hits"),
        ({"question": "QUAL o horario de atendimento", "answer": "x"}, 409, "question"),
    ],
)
async def test_invalid_faqs_are_refused(gateway, body, status, field) -> None:
    gw: Gateway = await gateway(MOCK)
    await _create(gw)
    code, answer = await gw.agent.fetch("POST", "/api/v1/faqs/", json_body=body)
    assert code == status
    assert field in answer["error"]["fields"]


async def test_faq_crud(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    faq = await _create(gw)
    assert set(faq) == {
        "id", "question", "alternatives", "answer", "enabled", "hits", "created_at", "updated_at",
    }  # fmt: skip
    _, page = await gw.agent.fetch("GET", "/api/v1/faqs/")
    assert [f["id"] for f in page["results"]] == [faq["id"]]
    status, changed = await gw.agent.fetch(
        "PATCH", f"/api/v1/faqs/{faq['id']}/", json_body={"alternatives": ["Abrem quando?"]}
    )
    assert (status, changed["alternatives"]) == (200, ["Abrem quando?"])
    assert (await gw.agent.fetch("PATCH", f"/api/v1/faqs/{faq['id']}/", json_body={}))[0] == 400
    assert await gw.agent.fetch("DELETE", f"/api/v1/faqs/{faq['id']}/") == (204, None)
    assert (await gw.agent.fetch("GET", f"/api/v1/faqs/{faq['id']}/"))[0] == 404
    assert (await gw.anonymous.fetch("GET", "/api/v1/faqs/"))[0] == 401
