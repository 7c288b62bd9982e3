"""/metrics after traffic: inbound, outbound, HTTP and FAQ cache counters, and the
conversations' backlog."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from gateway.config import MetricsConfig
from storage.records import utcnow
from testkit.helpers import async_wait_until
from tests.channels.conftest import MOCK, MOCK_HEADERS, Gateway

HEADERS = MOCK_HEADERS


async def _scrape(gw: Gateway, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await gw.anonymous.http.fetch(
        gw.anonymous.base_url + "/metrics", headers=headers, raise_error=False
    )
    return response.code, response.body.decode()


async def test_counters_after_traffic(gateway) -> None:
    gw: Gateway = await gateway(MOCK)
    body = json.dumps({"contact_id": 1, "message": "hi", "message_id": 1})
    for _ in range(2):  # stored, then a duplicate
        await gw.post("/webhooks/mock/mock/", body, HEADERS)
    await gw.post("/webhooks/mock/mock/", body, {"Content-Type": "application/json"})  # refused
    await gw.post("/webhooks/mock/mock/", "{}", HEADERS)  # invalid
    [inbound] = await gw.messages()
    sent = await gw.send(inbound["contact_id"], "hello")
    assert (await gw.final(sent["id"]))["status"] == "sent"
    await gw.services.faq.lookup("anything?")

    status, text = await _scrape(gw)  # from 127.0.0.1: no token needed
    assert status == 200
    for line in (
        'gateway_inbound_messages_total{channel="mock",result="stored"} 1.0',
        'gateway_inbound_messages_total{channel="mock",result="duplicate"} 1.0',
        'gateway_inbound_messages_total{channel="mock",result="refused"} 1.0',
        'gateway_inbound_messages_total{channel="mock",result="invalid"} 1.0',
        'gateway_outbound_messages_total{channel="mock",status="sent"} 1.0',
        'gateway_send_seconds_count{channel="mock"} 1.0',
        'gateway_http_requests_total{route="/api/v1/messages/",status="201"} 1.0',
        'gateway_http_requests_total{route="/webhooks/{channel_type}/{channel}/{suffix}",'
        'status="401"} 1.0',
        'gateway_http_request_duration_seconds_count{method="POST",route="/api/v1/messages/"} 1.0',
        "process_resident_memory_bytes ",
        "python_gc_collections_total{generation=",
        'gateway_faq_cache_lookups_total{result="no_faq"} 3.0',  # "hi" twice, "anything?"
        "gateway_outbox_depth 0.0",
    ):
        assert line in text, line
    assert "_created" not in text  # a timestamp series per counter, which nobody graphs


def _gauge(text: str, name: str) -> float | None:
    found = re.search(rf'^{name}{{channel="mock"}} (\S+)$', text, re.MULTILINE)
    return float(found[1]) if found else None


async def test_the_backlog_shows_open_and_queued_conversations_and_the_longest_wait(
    gateway,
) -> None:
    gw: Gateway = await gateway(MOCK)
    away = {"is_available": False}
    assert (await gw.agent.fetch("PATCH", "/api/v1/agents/me/", json_body=away))[0] == 200
    for contact in (1, 2):  # nobody to take them: both wait in the queue
        body = json.dumps({"contact_id": contact, "message": "hello?"})
        assert (await gw.post("/webhooks/mock/mock/", body, HEADERS))[0] == 200
    an_hour_ago = utcnow() - timedelta(hours=1)
    await gw.storage.conversations.collection.update_one(
        {"contact.external_id": "1"}, {"$set": {"last_inbound_at": an_hour_ago}}
    )
    text = (await _scrape(gw))[1]
    assert (
        _gauge(text, "gateway_conversations_open"),
        _gauge(text, "gateway_conversations_waiting"),
    ) == (2, 2)
    waited = _gauge(text, "gateway_conversation_longest_wait_seconds")
    assert waited is not None
    assert 3600 <= waited < 3600 + 120  # the one whose contact wrote an hour ago

    back = {"is_available": True}
    assert (await gw.agent.fetch("PATCH", "/api/v1/agents/me/", json_body=back))[0] == 200

    async def taken() -> bool:
        return _gauge((await _scrape(gw))[1], "gateway_conversations_waiting") == 0

    await async_wait_until(taken, 10, "the queue to be taken")
    text = (await _scrape(gw))[1]
    assert _gauge(text, "gateway_conversations_open") == 2
    assert _gauge(text, "gateway_conversation_longest_wait_seconds") == 0


async def test_a_configured_token_is_required(gateway) -> None:
    gw: Gateway = await gateway(MOCK, metrics=MetricsConfig(token="metrics-token-0123456789"))
    assert (await _scrape(gw))[0] == 401
    assert (await _scrape(gw, "wrong"))[0] == 401
    status, text = await _scrape(gw, "metrics-token-0123456789")
    assert status == 200
    assert "gateway_outbox_depth" in text
