"""Saved replies: the team's texts, inserted by typing / and their shortcut."""

from __future__ import annotations

from typing import Any

from handlers import schemas
from handlers.base import BaseHandler, agents_only, presenter
from storage.lists import Page, Position
from storage.models import SavedReply

present = presenter(schemas.SavedReply())


class RepliesHandler(BaseHandler):
    @agents_only("save a reply: its author is an agent")
    async def post(self) -> None:
        """Save a reply.
        ---
        summary: Save a reply for the team, under a shortcut
        tags: [replies]
        requestBody:
          required: true
          content: {application/json: {schema: SavedReplyCreate}}
        responses:
          201: {description: The saved reply, content: {application/json: {schema: SavedReply}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          409: {$ref: "#/components/responses/Conflict"}
        """
        fields = self.json_body(schemas.SavedReplyCreate())
        self.write_json(present(await self.services.replies.create(fields, self.caller)), 201)

    async def get(self) -> None:
        """List saved replies.
        ---
        summary: List saved replies, newest first; prefix narrows them by shortcut
        tags: [replies]
        parameters: [{in: query, schema: SavedReplyQuery}]
        responses:
          200:
            description: A page of saved replies
            content: {application/json: {schema: SavedReplyPage}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        replies = self.services.replies

        async def page(after: Position | None, size: int, **query: Any) -> Page[SavedReply]:
            return await replies.page(after, size, query.get("prefix", ""))

        await self.write_page(page, present, schemas.SavedReplyQuery())


class ReplyHandler(BaseHandler):
    async def get(self, reply_id: str) -> None:
        """Read a saved reply.
        ---
        summary: Read a saved reply
        tags: [replies]
        parameters: [{in: path, name: reply_id, required: true, schema: {type: string}}]
        responses:
          200: {description: The saved reply, content: {application/json: {schema: SavedReply}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        self.write_json(present(await self.services.replies.get(reply_id)))

    @agents_only("change a saved reply: its author or an admin may")
    async def patch(self, reply_id: str) -> None:
        """Change a saved reply.
        ---
        summary: Change a saved reply (its author or an admin)
        tags: [replies]
        parameters: [{in: path, name: reply_id, required: true, schema: {type: string}}]
        requestBody:
          required: true
          content: {application/json: {schema: SavedReplyUpdate}}
        responses:
          200: {description: The saved reply, content: {application/json: {schema: SavedReply}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
          409: {$ref: "#/components/responses/Conflict"}
        """
        changes = self.json_body(schemas.SavedReplyUpdate())
        changed = await self.services.replies.update(reply_id, changes, self.caller)
        self.write_json(present(changed))

    @agents_only("delete a saved reply: its author or an admin may")
    async def delete(self, reply_id: str) -> None:
        """Delete a saved reply.
        ---
        summary: Delete a saved reply (its author or an admin)
        tags: [replies]
        parameters: [{in: path, name: reply_id, required: true, schema: {type: string}}]
        responses:
          204: {description: Deleted}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        await self.services.replies.delete(reply_id, self.caller)
        self.set_status(204)
        self.finish()


routes = [
    (r"/api/v1/replies/", RepliesHandler),
    (r"/api/v1/replies/(?P<reply_id>[^/]+)/", ReplyHandler),
]
