"""Channels: the bots and senders contacts write to. Secrets never leave the server."""

from __future__ import annotations

from typing import Any

from gateway.errors import NotFound
from handlers import schemas
from handlers.base import BaseHandler, dump
from handlers.pagination import decode_cursor, page_response

_channel = schemas.Channel()


def present(channel: dict[str, Any]) -> dict[str, Any]:
    # Whitelisted fields only: settings (tokens, secrets) are never shown.
    webhook = f"/webhooks/{channel['type']}/{channel['name']}/"
    return dump(
        _channel, {**channel, "webhook_path": webhook if channel["mode"] == "webhook" else None}
    )


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
        query = self.query(schemas.PageQuery())
        page = await self.services.storage.channels.list_page(
            decode_cursor(query.get("cursor")), query["page_size"]
        )
        self.write_json(page_response(self, page, present))


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
        if channel is None:
            raise NotFound(f"No such channel: {channel_id}")
        self.write_json(present(channel))


routes = [
    (r"/api/v1/channels/", ChannelsHandler),
    (r"/api/v1/channels/(?P<channel_id>[^/]+)/", ChannelHandler),
]
