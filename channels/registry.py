"""Channel types by name: a new channel is one module and one line here."""

from __future__ import annotations

from channels.base import Channel
from channels.mock import MockChannel
from channels.telegram import TelegramChannel
from channels.whatsapp import WhatsAppChannel
from channels.whatsapp_cloud import WhatsAppCloudChannel

CHANNEL_TYPES: dict[str, type[Channel]] = {
    MockChannel.type: MockChannel,
    TelegramChannel.type: TelegramChannel,
    WhatsAppChannel.type: WhatsAppChannel,
    WhatsAppCloudChannel.type: WhatsAppCloudChannel,
}


def webhook_suffixes() -> list[str]:
    """Every webhook path suffix some channel type declares ("" for messages)."""
    return sorted({r.suffix for kind in CHANNEL_TYPES.values() for r in kind.webhook_routes})
