"""Channels: the bots and senders contacts write to. Secrets never leave the server."""

from __future__ import annotations

from typing import Any

from channels.base import Channel, SendError, webhook_path
from channels.registry import CHANNEL_TYPES
from gateway.agents import require_admin
from gateway.errors import BadGateway, NotFound
from handlers import schemas
from handlers.base import BaseHandler, found, needs, presenter
from storage.models import Scope, StoredChannel

_show = presenter(schemas.Channel())  # its fields only: never settings or secrets


def present(channel: StoredChannel) -> dict[str, Any]:
    shown = _show(channel)
    webhook = webhook_path(channel.type, channel.name)
    shown["webhook_path"] = webhook if channel.mode == "webhook" else None
    kind = CHANNEL_TYPES.get(channel.type, Channel)
    shown["max_text_length"] = kind.max_text
    rules = kind.media
    shown["files"] = None
    if rules is not None:
        types = sorted(rules.types) if rules.types is not None else None
        shown["files"] = {"max_bytes": dict(rules.max_bytes), "types": types,
                          "max_caption_length": rules.max_caption}  # fmt: skip
    return shown


class ChannelsHandler(BaseHandler):
    async def get(self) -> None:
        """List channels.
        ---
        summary: List channels
        tags: [channels]
        parameters: [{in: query, schema: PageQuery}]
        responses:
          200: {description: A page of channels, content: {application/json: {schema: ChannelPage}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        await self.write_page(self.services.storage.channels.list_page, present)


class ChannelHandler(BaseHandler):
    async def get(self, channel_id: str) -> None:
        """Read a channel.
        ---
        summary: Read a channel
        tags: [channels]
        parameters: [{in: path, name: channel_id, required: true, schema: {type: string}}]
        responses:
          200: {description: The channel, content: {application/json: {schema: Channel}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        channel = await self.services.storage.channels.get(channel_id)
        self.write_json(present(found(channel, "channel", channel_id)))

    @needs(Scope.ADMIN)
    async def patch(self, channel_id: str) -> None:
        """Name a channel's bot.
        ---
        summary: Name the bot that answers a channel's contacts first (admins)
        description: >-
          `bot_id` is an API token of role `bot`. From now on the channel's new and
          reopened conversations go to it first (status `bot`), and to the agents
          when it hands them off, misses the reply deadline
          (bots.reply_deadline_seconds), or an agent takes them. null: no bot;
          what it holds stays with it until handed off.
        tags: [channels]
        requestBody:
          required: true
          content: {application/json: {schema: ChannelUpdate}}
        responses:
          200: {description: The channel, content: {application/json: {schema: Channel}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        require_admin(self.caller, "name a channel's bot")
        bot_id = self.json_body(schemas.ChannelUpdate())["bot_id"]
        await self.services.bots.require_bot(bot_id)
        channels = self.services.storage.channels
        channel = found(await channels.set_bot(channel_id, bot_id), "channel", channel_id)
        self.services.bots.channel_changed(channel.id, bot_id)
        self.write_json(present(channel))


class TemplatesHandler(BaseHandler):
    async def get(self, channel_id: str) -> None:
        """List a channel's message templates.
        ---
        summary: The channel's templates (WhatsApp through Twilio), kept for a minute
        description: >-
          What `template` in POST /api/v1/messages/ takes: each template's
          `content_sid`, its variables, and `whatsapp_status` (only `approved`
          ones reach a contact outside WhatsApp's 24-hour window).
        tags: [channels]
        parameters: [{in: path, name: channel_id, required: true, schema: {type: string}}]
        responses:
          200: {description: The templates, content: {application/json: {schema: Templates}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
          502: {$ref: "#/components/responses/BadGateway"}
        """
        channel = self.services.channels.get(channel_id)
        if channel is None or not channel.sends_templates:
            raise NotFound(f"No channel with templates: {channel_id}")
        try:
            listed = await channel.list_templates()
        except SendError as exc:
            raise BadGateway(exc.message) from None
        self.write_json({"results": listed})


routes = [
    (r"/api/v1/channels/", ChannelsHandler),
    (r"/api/v1/channels/(?P<channel_id>[^/]+)/", ChannelHandler),
    (r"/api/v1/channels/(?P<channel_id>[^/]+)/templates/", TemplatesHandler),
]
