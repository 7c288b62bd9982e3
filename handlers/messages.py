"""Messages: read conversations, and send as the signed-in agent."""

from __future__ import annotations

import re
from typing import Any

from channels.media import MB, file_name_of, guess_type, upload_type
from common.wire import essence
from gateway.conversations import me_or
from gateway.errors import GatewayError, ValidationError
from gateway.messages import OutgoingFile
from handlers import schemas
from handlers.base import BaseHandler, found, load, needs, presenter, single_values
from handlers.multipart import parse_form
from storage.lists import Page, Position
from storage.models import Message, Scope

present = presenter(schemas.Message())
FORM_OVERHEAD = 64 * 1024  # a multipart body's boundaries, headers and text fields
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces


class MessagesHandler(BaseHandler):
    @needs(Scope.SEND)
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
          A file goes as multipart (`file`, with `content` as its caption) or as a
          `media_url` the provider fetches; each channel's limits and types apply
          (400 names the one broken).
        tags: [messages]
        parameters:
          - in: header
            name: Idempotency-Key
            schema: {type: string, pattern: "^[!-~]{1,255}$"}
        requestBody:
          required: true
          content:
            application/json: {schema: MessageCreate}
            multipart/form-data:
              schema:
                type: object
                required: [contact_id, file]
                properties:
                  contact_id: {type: string}
                  content: {type: string, description: The file's caption}
                  file: {type: string, format: binary}
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
        file = None
        if self._is_upload:
            data, file = self._upload()
        else:
            data = self.json_body(schemas.MessageCreate())
            if "media_url" in data:
                url = data["media_url"]
                name = data.get("file_name") or file_name_of(url)
                file = OutgoingFile(data.get("media_type") or guess_type(url), name, url=url)
        message, created = await self.services.sender.send(
            self.caller.ref,
            data["contact_id"],
            data.get("content"),
            key,
            data.get("template"),
            file,
        )
        if not created:
            self.set_header("Idempotent-Replayed", "true")
        self.write_json(present(message), 201)

    @property
    def _is_upload(self) -> bool:
        return essence(self.request.headers.get("Content-Type", "")) == "multipart/form-data"

    @property
    def max_body(self) -> int:
        if self._is_upload:  # a file and a few short fields
            return self.services.config.media.max_bytes + FORM_OVERHEAD
        return super().max_body

    def too_large(self) -> GatewayError:
        if self._is_upload:
            cap = self.services.config.media.max_bytes
            return ValidationError.of(
                "file", f"at most {cap // MB} MB ({cap} bytes, media.max_bytes)"
            )
        return super().too_large()

    def _upload(self) -> tuple[dict[str, Any], OutgoingFile]:
        """A multipart send's fields and its one file; a 400 for anything else."""
        try:
            content_type = self.request.headers.get("Content-Type", "")
            arguments, files = parse_form(self.take_body(), content_type)
        except ValueError as exc:
            raise GatewayError(f"malformed multipart/form-data: {exc}") from None
        if [f.name for f in files] != ["file"]:
            raise ValidationError.of("file", "send one file, in the part named file")
        data = load(schemas.MessageUpload(), single_values(arguments, "field"))
        [upload] = files
        if len(upload.data) > self.services.config.media.max_bytes:
            raise self.too_large()
        name = clean_file_name(upload.file_name)
        mime_type = upload_type(upload.content_type, name, upload.data)
        return data, OutgoingFile(mime_type, name, data=upload.data)

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

        async def page(after: Position | None, size: int, **filters: Any) -> Page[Message]:
            for name in ("agent_id", "assignee_id"):  # "me": the caller
                if name in filters:
                    filters[name] = me_or(self.caller, filters[name])
            return await conversations.messages_page(after, size, **filters)

        await self.write_page(page, present, schemas.MessageQuery())


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


def clean_file_name(name: str) -> str:
    """The name an upload is stored and sent with: its last path segment (browsers
    once sent C:\\fakepath\\...), printable, at most 255 characters."""
    base = name.replace("\\", "/").rpartition("/")[2]
    printable = "".join(c for c in base if c.isprintable()).strip()
    return printable[:255] or "file"


routes = [
    (r"/api/v1/messages/", MessagesHandler),
    (r"/api/v1/messages/(?P<message_id>[^/]+)/", MessageHandler),
]
