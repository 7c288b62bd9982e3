"""Opaque cursors and ``{"results", "next"}`` pages for every list endpoint."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from tornado.web import RequestHandler

from gateway.errors import ValidationError
from storage.pages import Page, Position


def encode_cursor(position: Position) -> str:
    millis = int(position.created_at.timestamp() * 1000)
    raw = json.dumps([millis, position.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        millis, item_id = json.loads(raw)
        if not isinstance(millis, int) or not isinstance(item_id, str):
            raise ValueError(cursor)
        return Position(datetime.fromtimestamp(millis / 1000, UTC), item_id)
    except (ValueError, TypeError, binascii.Error, OverflowError, OSError):
        raise ValidationError.of("cursor", "not a cursor this API gave out") from None


def page_response(
    handler: RequestHandler, page: Page, present: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """The page's items, and a link to the next page with the same filters."""
    next_url = None
    if page.next is not None:
        arguments = {
            name: values[0].decode()
            for name, values in handler.request.query_arguments.items()
            if name != "cursor"
        }
        arguments["cursor"] = encode_cursor(page.next)
        request = handler.request
        next_url = f"{request.protocol}://{request.host}{request.path}?{urlencode(arguments)}"
    return {"results": [present(item) for item in page.items], "next": next_url}
