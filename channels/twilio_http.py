"""Twilio's async HTTP client, pointed at a configurable API base.

Imported only when a WhatsApp channel is built: it loads twilio and aiohttp.
"""

from __future__ import annotations

import base64

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response

from channels.whatsapp import TWILIO_API


class TwilioHttpClient(AsyncTwilioHttpClient):
    """Twilio's async client, sending to ``api_base`` instead of api.twilio.com.

    It also sends the credentials as a header itself: the library passes them as
    aiohttp's ``BasicAuth``, which aiohttp deprecates.
    """

    def __init__(self, api_base: str) -> None:
        super().__init__(timeout=30)
        self.api_base = api_base.rstrip("/")

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the overridden signature
        allow_redirects: bool = False,
    ) -> Response:
        if url.startswith(TWILIO_API):
            url = self.api_base + url[len(TWILIO_API) :]
        if auth is not None:
            credentials = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers = {**(headers or {}), "Authorization": f"Basic {credentials}"}
        return await super().request(
            method, url, params, data, headers, None, timeout, allow_redirects
        )
