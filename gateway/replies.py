"""Saved replies: texts the team inserts by a shortcut, with fields filled in where
they are inserted (the inbox fills them; an API client fills them the same way).

Any agent may save one and use the others'; its author or an admin changes or
deletes it, so that a colleague's wording is not rewritten behind their back.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.callers import Caller
from gateway.errors import Conflict, Forbidden, NotFound, ValidationError
from storage.errors import DuplicateKey
from storage.lists import Page, Position
from storage.models import SavedReply
from storage.replies import RepliesRepository

# What a saved reply may name, as {{name}}: the conversation it goes into.
FIELDS = ("contact.name", "contact.external_id", "agent.name", "channel.name")
_FIELD = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def fields_of(text: str) -> list[str]:
    """The ``{{...}}`` fields ``text`` names that are not known: [] if none."""
    return [name for name in _FIELD.findall(text) if name not in FIELDS]


class SavedReplies:
    def __init__(self, replies: RepliesRepository) -> None:
        self.replies = replies

    async def create(self, fields: dict[str, Any], by: Caller) -> SavedReply:
        _check_fields(fields.get("text", ""))
        try:
            return await self.replies.create(fields["shortcut"], fields["text"], by.id)
        except DuplicateKey:
            raise _taken(fields["shortcut"]) from None

    async def get(self, reply_id: str) -> SavedReply:
        found = await self.replies.get(reply_id)
        if found is None:
            raise NotFound(f"No such saved reply: {reply_id}")
        return found

    async def page(self, after: Position | None, limit: int, prefix: str = "") -> Page[SavedReply]:
        return await self.replies.list_page(after, limit, prefix.lower())

    async def update(self, reply_id: str, changes: dict[str, Any], by: Caller) -> SavedReply:
        if not changes:
            raise ValidationError("nothing to change: send shortcut or text")
        _check_fields(changes.get("text", ""))
        _may_change(await self.get(reply_id), by)
        try:
            changed = await self.replies.update(reply_id, changes)
        except DuplicateKey:
            raise _taken(changes["shortcut"]) from None
        if changed is None:
            raise NotFound(f"No such saved reply: {reply_id}")
        return changed

    async def delete(self, reply_id: str, by: Caller) -> None:
        _may_change(await self.get(reply_id), by)
        if not await self.replies.delete(reply_id):
            raise NotFound(f"No such saved reply: {reply_id}")


def _check_fields(text: str) -> None:
    unknown = fields_of(text)
    if unknown:
        known = ", ".join("{{" + name + "}}" for name in FIELDS)
        raise ValidationError.of("text", f"no field {{{{{unknown[0]}}}}}: it may use {known}")


def _may_change(reply: SavedReply, by: Caller) -> None:
    if reply.created_by != by.id and not by.is_admin:
        raise Forbidden("only its author or an admin changes or deletes a saved reply")


def _taken(shortcut: str) -> Conflict:
    return Conflict(f"another saved reply has the shortcut /{shortcut}", {"shortcut": ["taken"]})
