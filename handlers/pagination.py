"""Opaque cursors and ``{"results", "next"}`` pages for every list endpoint.

A cursor carries an HMAC under a key derived from the JWT secret: a client can only
hand back a cursor the API gave out, so no crafted position or density can make a
page read more than the planner chose (a tampered cursor is a 400).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from tornado.web import RequestHandler

from gateway.errors import ValidationError
from storage.lists import Page, Position

T = TypeVar("T")
MAX_CURSOR = 200
_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.digest(secret, payload.encode(), hashlib.sha256)[:16])


def encode_cursor(position: Position, secret: bytes) -> str:
    density = round(position.ms_per_item, 3)
    payload = _b64(json.dumps([position.key, density], separators=(",", ":")).encode())
    return f"{payload}.{_mac(secret, payload)}"


def decode_cursor(cursor: str | None, secret: bytes) -> Position | None:
    if cursor is None:
        return None
    key: Any = None
    density: Any = None
    payload, _, mac = cursor.partition(".")
    # Ours are about 90 characters; the MAC is checked before anything is parsed.
    if len(cursor) <= MAX_CURSOR and hmac.compare_digest(mac, _mac(secret, payload)):
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            key, density = json.loads(raw)
        except (ValueError, TypeError, binascii.Error, RecursionError):
            key = density = None
    # bool is an int to isinstance, not a density.
    valid_density = isinstance(density, int | float) and not isinstance(density, bool)
    if not (isinstance(key, str) and _KEY.fullmatch(key) and valid_density and 0 <= density < 1e12):
        raise ValidationError.of("cursor", "not a cursor this API gave out")
    return Position(key, float(density))


def page_response(
    handler: RequestHandler, page: Page[T], present: Callable[[T], dict[str, Any]]
) -> dict[str, Any]:
    """The page's items, and a link to the next page with the same filters."""
    next_url = None
    if page.next is not None:
        # The query as it came, bytes and all (a q=%ff was read as U+FFFD).
        arguments: dict[str, str | bytes] = {
            name: values[0]
            for name, values in handler.request.query_arguments.items()
            if name != "cursor"
        }
        arguments["cursor"] = encode_cursor(page.next, handler.settings["cursor_key"])
        # Never from the request's Host, which the caller chooses: from the public
        # URL (so behind TLS it says https), or relative to this request.
        public_url = handler.settings.get("public_url", "")
        next_url = f"{public_url.rstrip('/')}{handler.request.path}?{urlencode(arguments)}"
    return {"results": [present(item) for item in page.items], "next": next_url}
