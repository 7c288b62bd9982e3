"""Opaque cursors and ``{"results", "next"}`` pages for every list endpoint."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from tornado.web import RequestHandler

from gateway.errors import ValidationError
from storage.pages import Page, Position

_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def encode_cursor(position: Position) -> str:
    density = round(position.ms_per_item, 3)
    raw = json.dumps([position.key, density], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    if cursor is None:
        return None
    try:
        key, density = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error):
        key = density = None
    valid_density = type(density) in (int, float) and 0 <= density < 1e12
    if not (isinstance(key, str) and _KEY.fullmatch(key) and valid_density):
        raise ValidationError.of("cursor", "not a cursor this API gave out")
    return Position(key, float(density))


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
