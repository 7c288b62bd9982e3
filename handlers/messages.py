"""Messages: read conversations, and send as the signed-in agent."""

from __future__ import annotations

import re

from gateway.errors import ValidationError
from handlers import schemas
from handlers.base import BaseHandler, found, presenter

present = presenter(schemas.Message())
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces


class MessagesHandler(BaseHandler):
    async def post(self) -> None:
        """Send a message.
        ---
        summary: Send a message to a contact as the signed-in agent
        description: >-
          The message is stored as `queued` and delivered through the contact's
          channel. Send an `Idempotency-Key` header to make retries safe: the same
          key returns the first message instead of sending a second. On WhatsApp,
          free-form `content` goes only within 24 hours of the contact's last
          message (409 `window_closed` after); an approved `template` goes any time.
        tags: [messages]
        parameters:
          - in: header
            name: Idempotency-Key
            schema: {type: string, pattern: "^[!-~]{1,255}$"}
        requestBody:
          required: true
          content: {application/json: {schema: MessageCreate}}
        responses:
          201: {description: The queued message, content: {application/json: {schema: Message}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
          409: {$ref: "#/components/responses/Conflict"}
        """
        key = self.request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
            raise ValidationError.of("Idempotency-Key", "1-255 printable characters, no spaces")
        data = self.json_body(schemas.MessageCreate())
        message, created = await self.services.sender.send(
            self.agent, data["contact_id"], data.get("content"), key, data.get("template")
        )
        if not created:
            self.set_header("Idempotent-Replayed", "true")
        self.write_json(present(message), 201)

    async def get(self) -> None:
        """List messages.
        ---
        summary: List messages, newest first
        description: >-
          `agent_id` is who sent a message; `assignee_id` is whose conversations
          it is in (inbound messages included); `conversation_id` is one
          conversation's.
        tags: [messages]
        parameters: [{in: query, schema: MessageQuery}]
        responses:
          200: {description: A page of messages, content: {application/json: {schema: MessagePage}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        conversations = self.services.conversations
        await self.write_page(conversations.messages_page, present, schemas.MessageQuery())


class MessageHandler(BaseHandler):
    async def get(self, message_id: str) -> None:
        """Read a message.
        ---
        summary: Read a message
        tags: [messages]
        parameters: [{in: path, name: message_id, required: true, schema: {type: string}}]
        responses:
          200: {description: The message, content: {application/json: {schema: Message}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        message = await self.services.storage.messages.get(message_id)
        self.write_json(present(found(message, "message", message_id)))


routes = [
    (r"/api/v1/messages/", MessagesHandler),
    (r"/api/v1/messages/(?P<message_id>[^/]+)/", MessageHandler),
]
