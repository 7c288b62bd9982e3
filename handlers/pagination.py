"""Opaque cursors and ``{"results", "next"}`` pages for every list endpoint.

A cursor carries an HMAC under a key derived from the JWT secret: a client can only
hand back a cursor the API gave out (a tampered one is a 400). It holds the key the
next page starts below and nothing of how storage reads it.
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
    payload = _b64(json.dumps([position.key], separators=(",", ":")).encode())
    return f"{payload}.{_mac(secret, payload)}"


def decode_cursor(cursor: str | None, secret: bytes) -> Position | None:
    if cursor is None:
        return None
    key: Any = None
    payload, _, mac = cursor.partition(".")
    # Ours are about 70 characters; the MAC is checked before anything is parsed.
    if len(cursor) <= MAX_CURSOR and hmac.compare_digest(mac, _mac(secret, payload)):
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            # [key]; a cursor given out before an upgrade also holds a density, unused.
            key = json.loads(raw)[0]
        except (ValueError, TypeError, LookupError, binascii.Error, RecursionError):
            key = None
    if not (isinstance(key, str) and _KEY.fullmatch(key)):
        raise ValidationError.of("cursor", "not a cursor this API gave out")
    return Position(key)


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
