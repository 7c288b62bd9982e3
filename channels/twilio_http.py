"""Twilio's async HTTP client, pointed at a configurable API base, on the channels'
one HTTP policy (channels/http.py): one pooled session for the library's calls, the
media files and the Content API.

Imported only when a WhatsApp channel is built: it loads twilio and aiohttp.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urljoin

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response

from channels.base import (
    ChannelMisconfigured,
    Download,
    MediaUnavailable,
    NetworkFailure,
    ProviderError,
)
from channels.http import (
    CALL_SECONDS,
    FAILURES,
    capped,
    download_timeout,
    provider_session,
)

REDIRECTS = (301, 302, 303, 307, 308)


class TwilioHttpClient(AsyncTwilioHttpClient):
    """Twilio's async client, sending to ``api_base`` instead of api.twilio.com.

    It also sends the credentials as a header itself: the library passes them as
    aiohttp's ``BasicAuth``, which aiohttp deprecates.
    """

    def __init__(self, api_base: str, twilio_api: str, connections: int) -> None:
        """Calls the twilio library makes to ``twilio_api`` (its fixed host) go to
        ``api_base`` instead: the same, or a fake Twilio in tests."""
        super().__init__(pool_connections=False, timeout=CALL_SECONDS)  # our session, below
        self.session = provider_session(connections)
        self.api_base = api_base.rstrip("/")
        self.twilio_api = twilio_api

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
        if url.startswith(self.twilio_api):
            url = self.api_base + url[len(self.twilio_api) :]
        if auth is not None:
            headers = {**(headers or {}), "Authorization": _basic(auth)}
        return await super().request(
            method, url, params, data, headers, None, timeout, allow_redirects
        )

    async def open_media(self, url: str, auth: tuple[str, str], max_bytes: int) -> Download:
        """A media URL of a webhook, fetched with the account's credentials. They go to
        Twilio's API only: its redirect to a signed storage URL is followed without them
        (https://www.twilio.com/docs/messaging/api/media-resource#fetch-media-file)."""
        if not url.startswith(self.twilio_api + "/"):  # https only, Twilio's own host only
            raise MediaUnavailable(404, "not a Twilio media URL")
        url = self.api_base + url[len(self.twilio_api) :]
        session, timeout = self.session, download_timeout()
        try:
            response = await session.get(
                url, headers={"Authorization": _basic(auth)}, allow_redirects=False, timeout=timeout
            )
            if response.status in REDIRECTS and "Location" in response.headers:
                response.release()
                location = urljoin(url, response.headers["Location"])
                response = await session.get(location, timeout=timeout)
        except FAILURES as exc:
            reason = f"Twilio's media server failed ({type(exc).__name__})"
            raise MediaUnavailable(502, reason) from None
        if response.status != 200:
            response.release()
            if response.status == 404:
                raise MediaUnavailable(404, "Twilio no longer has this file")
            raise MediaUnavailable(502, f"Twilio answered {response.status} for the file")
        chunks = capped(response, max_bytes, "Twilio's media server")
        return Download(chunks, content_type=response.headers.get("Content-Type"))

    async def get_json(self, url: str, auth: tuple[str, str], base: str) -> dict[str, Any]:
        """One Content API page; the credentials go to ``base``'s host only."""
        if not url.startswith(base.rstrip("/") + "/"):
            raise ProviderError("Twilio gave a next page on another host")
        try:
            async with self.session.get(url, headers={"Authorization": _basic(auth)}) as answer:
                if answer.status in (401, 403):
                    raise ChannelMisconfigured(f"Twilio refused the credentials ({answer.status})")
                if answer.status != 200:
                    raise ProviderError(f"Twilio's Content API answered {answer.status}")
                data = await answer.json(content_type=None)
        except (*FAILURES, ValueError) as exc:
            raise NetworkFailure(f"Twilio's Content API failed ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise ProviderError("Twilio's Content API answered no object")
        return data

    async def close(self) -> None:
        await self.session.close()


def _basic(auth: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
