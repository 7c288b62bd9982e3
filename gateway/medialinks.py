"""Expiring links to agents' uploads, for providers that fetch a file themselves.

Twilio sends media only from a URL it can fetch (its ``MediaUrl``), with no
credentials of ours. The link names the upload, when it stops working and an
HMAC of both, so it cannot be guessed or stretched, and any gateway that shares the
signing secret serves it: nothing is stored per link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

PATH = "/media/"


class MediaLinks:
    """Signs and checks ``/media/<upload id>/<expires>/<signature>`` links."""

    def __init__(self, secret: str, public_url: str, seconds: int) -> None:
        # A key of its own: a link's signature is never a token's.
        self._key = hmac.digest(secret.encode(), b"bot-gateway media links", hashlib.sha256)
        self.public_url = public_url.rstrip("/")
        self.seconds = seconds

    def url(self, upload_id: str, expires: int | None = None) -> str:
        """The public link to an upload, working ``seconds`` from now (or until
        ``expires``, a Unix time); "" when the gateway has no public URL."""
        if not self.public_url:
            return ""
        until = int(time.time()) + self.seconds if expires is None else expires
        return f"{self.public_url}{PATH}{upload_id}/{until}/{self._sign(upload_id, until)}"

    def valid(self, upload_id: str, expires: str, signature: str) -> bool:
        """Whether a link is one we made and has not expired."""
        if not expires.isdigit() or len(expires) > 12 or int(expires) < time.time():
            return False
        return hmac.compare_digest(self._sign(upload_id, int(expires)), signature)

    def _sign(self, upload_id: str, expires: int) -> str:
        mac = hmac.digest(self._key, f"{upload_id}/{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
