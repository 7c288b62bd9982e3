"""Agents' outbound messages: validated, stored as queued, then handed to delivery."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from channels.media import kind_of
from gateway.config import MediaConfig
from gateway.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    ValidationError,
    WindowClosed,
)
from storage.database import Storage
from storage.errors import DuplicateKey
from storage.models import AgentRef, Contact, Message
from storage.records import utcnow
from storage.uploads import QuotaExceeded, Upload

if TYPE_CHECKING:
    from gateway.channels import ChannelSet


@dataclass(frozen=True)
class OutgoingFile:
    """A file an agent sends: uploaded ``data``, or a ``url`` the provider fetches."""

    mime_type: str  # "" when unknown
    file_name: str
    data: bytes | None = None
    url: str = ""


def request_fingerprint(
    contact_id: str,
    content: str | None,
    template: Mapping[str, Any] | None,
    file: OutgoingFile | None,
) -> str:
    """What identifies a send for its Idempotency-Key: the whole request, a file's
    bytes (by their hash) or URL included, so a retry matches and nothing else does."""
    shown: list[Any] = [contact_id, content, dict(template) if template else None]
    if file is not None:
        data = hashlib.sha256(file.data).hexdigest() if file.data is not None else None
        shown.append([file.mime_type, file.file_name, file.url, data])
    text = json.dumps(shown, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_KEY_REUSED = "this Idempotency-Key was used for a different message"


async def _no_rules(agent: AgentRef, contact: Contact) -> None:
    pass


def window_expires_at(contact: Contact, window: timedelta | None) -> datetime | None:
    """When free-form text stops reaching the contact, on a channel with a reply
    window (from their last message); None where there is none."""
    if window is None:
        return None
    return (contact.last_message_at or contact.created_at) + window


class Sender:
    """Sends as an agent or an API token (``agent``: who the message names).
    ``known_contact`` gives a contact the inbound path wrote lately (agents answer
    who wrote: that saves reading it), ``channels`` what each channel takes (its
    text limit, reply window, templates), and ``queued`` hands new messages to
    delivery."""

    def __init__(
        self,
        storage: Storage,
        *,
        known_contact: Callable[[str], Contact | None],
        channels: ChannelSet,
        queued: Callable[[list[Message]], Awaitable[None]],
        public_url: str = "",
        upload_limits: MediaConfig | None = None,
        before_send: Callable[[AgentRef, Contact], Awaitable[None]] | None = None,
    ) -> None:
        self.storage = storage
        self.known_contact = known_contact
        self.channels = channels
        self.queued = queued
        self.public_url = public_url  # where providers that fetch uploads find them
        self.upload_limits = upload_limits or MediaConfig()  # quotas per agent and in all
        self.before_send = before_send or _no_rules

    async def send(
        self,
        agent: AgentRef,
        contact_id: str,
        content: str | None,
        idempotency_key: str | None = None,
        template: Mapping[str, Any] | None = None,
        file: OutgoingFile | None = None,
    ) -> tuple[Message, bool]:
        """Store an agent's message to a contact as ``queued``: ``content``, an
        approved ``template`` (``{content_sid, variables}``), which WhatsApp takes
        at any time, or a ``file`` with ``content`` as its caption. Returns
        ``(message, created)``. A retry with the same ``idempotency_key`` returns the
        first message; the same key with a different request is a :class:`Conflict`."""
        fingerprint = request_fingerprint(contact_id, content, template, file)
        contact = self.known_contact(contact_id) or await self.storage.contacts.get(contact_id)
        if contact is None:
            raise NotFound(f"No such contact: {contact_id}")
        channel_id = contact.channel_id
        extra: dict[str, Any] | None = None
        upload = None
        if template is not None:
            if not self.channels.sends_templates(channel_id):
                raise ValidationError.of("template", "this contact's channel sends no templates")
            content = template_text(template)
            extra = {"template": dict(template)}
        elif file is not None:
            item = self._check_file(contact, file, content or "")
            self._check_window(contact)
            if file.data is not None:
                upload = await self._store(agent, file.data, file.mime_type, file.file_name)
                item["upload"] = upload.id
            content = content or f"[{item['kind']}] {file.file_name}"
            extra = {"meta": {"media": [item]}}
        else:
            assert content is not None  # the schema asks for one of the three
            self._check_free_form(contact, content)
        try:
            await self.before_send(agent, contact)  # a bot lane's rules (gateway/bot_lane.py)
            message, created = await self.storage.messages.insert_outbound(
                contact=contact, content=content, agent=agent, extra=extra,
                idempotency=(idempotency_key, fingerprint) if idempotency_key else None,
            )  # fmt: skip
        except BaseException as exc:
            if upload is not None:  # nothing half-stored: the file goes with the message
                await self.storage.uploads.delete(upload.id)
            if isinstance(exc, DuplicateKey):  # the key's first request was another
                raise Conflict(_KEY_REUSED) from None
            raise
        if not created and upload is not None:  # a replay: the first message has its file
            await self.storage.uploads.delete(upload.id)
        if not created and (message.contact_id, message.content) != (contact_id, content):
            raise Conflict(_KEY_REUSED)
        if created:
            await self.queued([message])
        return message, created

    async def _store(self, agent: AgentRef, data: bytes, mime_type: str, name: str) -> Upload:
        """An upload stored, within the agent's hourly quota and the store's cap."""
        uploads, limits = self.storage.uploads, self.upload_limits
        try:
            per_hour, total = limits.upload_bytes_per_agent_hour, limits.max_stored_upload_bytes
            quota = await uploads.reserve(agent.id, len(data), per_hour, total)
        except QuotaExceeded as exc:
            if exc.limit == "hour":
                raise TooManyRequests(
                    f"over {per_hour} bytes of uploads this hour "
                    "(media.upload_bytes_per_agent_hour); try again later",
                    600,
                ) from None
            raise PayloadTooLarge(
                f"the gateway stores at most {total} bytes of uploads "
                "(media.max_stored_upload_bytes); send a media_url instead"
            ) from None
        return await uploads.put(data, mime_type, name, quota)

    def _check_file(self, contact: Contact, file: OutgoingFile, caption: str) -> dict[str, Any]:
        """The stored description of a file the contact's channel sends; else a 400."""
        field = "media_url" if file.data is None else "file"
        rules = self.channels.media(contact.channel_id)
        if rules is None:
            raise ValidationError.of(field, "this contact's channel sends no files")
        kind = kind_of(file.mime_type)
        size = len(file.data) if file.data is not None else None
        refused = rules.refuse(kind, file.mime_type, size)
        if refused is not None:
            raise ValidationError.of(field, refused)
        if len(caption) > rules.max_caption:
            raise ValidationError.of(
                "content", f"a caption of at most {rules.max_caption} characters on this channel"
            )
        if file.data is not None and rules.fetches_uploads and not self.public_url:
            raise ValidationError.of(
                "file",
                f"{rules.name} fetches uploads from the gateway, which needs "
                "server.public_url (PUBLIC_URL) for that; send a media_url instead",
            )
        item: dict[str, Any] = {
            "kind": kind,
            "mime_type": file.mime_type or None,
            "size": size,
            "file_name": file.file_name or None,
            "caption": caption or None,
        }
        if file.url:
            item["url"] = file.url
        return item

    def _check_free_form(self, contact: Contact, content: str) -> None:
        limit = self.channels.max_text(contact.channel_id)
        if len(content) > limit:  # the channel's provider would refuse it
            raise ValidationError.of("content", f"at most {limit} characters on this channel")
        self._check_window(contact)

    def _check_window(self, contact: Contact) -> None:
        closes = window_expires_at(contact, self.channels.reply_window(contact.channel_id))
        if closes is not None and closes <= utcnow():
            raise WindowClosed(
                f"the contact last wrote over 24 hours ago: WhatsApp's window closed at "
                f"{closes.isoformat()}. Free-form text reaches them again once they write; "
                "until then only an approved template message does."
            )


def template_text(template: Mapping[str, Any]) -> str:
    """What a template message shows in the thread: its id and variables."""
    variables = json.dumps(template.get("variables") or {}, ensure_ascii=False, sort_keys=True)
    return f"[template {template['content_sid']}] {variables}"
