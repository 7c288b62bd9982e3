"""Files contacts sent, streamed to agents through the gateway.

The provider's handle (Telegram's file_id, Twilio's media URL) and the credentials
that open it stay here: the agent gets the bytes, with a type and a file name.
"""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import quote

from tornado.iostream import StreamClosedError

from channels.base import Download, MediaUnavailable
from gateway.errors import NotFound, PayloadTooLarge, error_for
from handlers.base import BaseHandler

FALLBACK_TYPE = "application/octet-stream"


def disposition(item: dict[str, Any], media_id: str) -> str:
    """Images show in place; anything else downloads. RFC 6266: an ASCII name and the
    exact one in UTF-8."""
    mime_type = item.get("mime_type") or FALLBACK_TYPE
    name = item.get("file_name") or f"{item['kind']}-{media_id}" + (
        mimetypes.guess_extension(mime_type) or ""
    )
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    how = "inline" if mime_type.startswith("image/") else "attachment"
    return f"{how}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


class MediaHandler(BaseHandler):
    async def get(self, message_id: str, media_id: str) -> None:
        """Download a file a contact sent.
        ---
        summary: Download a message's media (the gateway fetches it from the provider)
        description: >-
          Streams the file with its type and name. Files over `media.max_bytes`
          are refused with 413; a provider that fails gives 502.
        tags: [messages]
        responses:
          200: {description: The file, content: {application/octet-stream: {}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
          413: {$ref: "#/components/responses/PayloadTooLarge"}
          502: {$ref: "#/components/responses/BadGateway"}
        """
        index = int(media_id) if media_id.isdigit() and len(media_id) <= 3 else -1
        stored = await self.services.storage.messages.media_ref(message_id, index)
        channel = self.services.channels.get(stored[0]) if stored else None
        if stored is None or channel is None:
            raise NotFound(f"No such file: media {media_id} of message {message_id}")
        _, ref, item = stored
        cap = self.services.config.media.max_bytes
        try:
            download = await channel.open_media(ref, cap)
        except MediaUnavailable as exc:
            raise error_for(exc.status, exc.message) from None
        try:
            await self._stream(download, item, media_id, cap)
        finally:
            close = getattr(download.chunks, "aclose", None)  # the provider's response
            if close is not None:
                await close()

    async def _stream(
        self, download: Download, item: dict[str, Any], media_id: str, cap: int
    ) -> None:
        chunks = download.chunks
        try:
            first = await anext(chunks, b"")  # a provider's failure is still a JSON error
        except MediaUnavailable as exc:
            raise error_for(exc.status, exc.message) from None
        if len(first) > cap:
            raise PayloadTooLarge(f"the file is over the {cap}-byte limit")
        self.set_header(
            "Content-Type", item.get("mime_type") or download.content_type or FALLBACK_TYPE
        )
        self.set_header("Content-Disposition", disposition(item, media_id))
        self.set_header("Content-Security-Policy", "sandbox")  # an HTML or SVG file runs nothing
        sent = len(first)
        try:
            self.write(first)
            async for chunk in chunks:
                sent += len(chunk)
                if sent > cap:  # bigger than the provider said: cut, never a whole file
                    self.request.connection.close()  # type: ignore[union-attr]
                    return
                self.write(chunk)
                await self.flush()
        except MediaUnavailable:
            self.request.connection.close()  # type: ignore[union-attr]
            return
        except StreamClosedError:
            return  # the agent went away
        self.finish()


routes = [
    (r"/api/v1/messages/(?P<message_id>[^/]+)/media/(?P<media_id>[^/]+)/", MediaHandler),
]
