"""The channels' one HTTP policy (channels/http.py): pools sized to the gateway's
delivery concurrency, in every channel that makes its own calls."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from channels.base import ChannelContext
from channels.http import provider_session
from channels.whatsapp import WhatsAppChannel, WhatsAppSettings
from channels.whatsapp_cloud import WhatsAppCloudChannel, WhatsAppCloudSettings


async def test_a_provider_session_pools_as_many_connections_as_sends_at_once() -> None:
    session = provider_session(48)
    try:
        assert (session.connector.limit, session.connector.limit_per_host) == (48, 48)  # type: ignore[union-attr]
    finally:
        await session.close()


TWILIO = WhatsAppSettings(account_sid="AC1", auth_token="t", from_number="+1")
CLOUD = WhatsAppCloudSettings(access_token="t", phone_number_id="1")


@pytest.mark.parametrize(
    ("kind", "settings", "pool"),
    [
        (WhatsAppChannel, TWILIO, lambda channel: channel.http.session.connector),
        (WhatsAppCloudChannel, CLOUD, lambda channel: channel.http.connector),
    ],
    ids=["whatsapp", "whatsapp_cloud"],
)
async def test_each_channel_sizes_its_pool_from_the_context(kind, settings, pool) -> None:  # type: ignore[no-untyped-def]
    record = SimpleNamespace(id="c1", name="c", mode="webhook", webhook_secret="s")
    channel = kind(record, settings, ChannelContext("", connections=5))
    try:
        assert pool(channel).limit == 5
    finally:
        await channel.close()
