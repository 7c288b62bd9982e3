"""Files contacts sent, streamed to agents through the gateway.

The provider's handle (Telegram's file_id, Twilio's media URL) and the credentials
that open it stay here: the agent gets the bytes, with a type and a file name.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tornado.iostream import StreamClosedError

from channels.base import Download, MediaUnavailable
from channels.media import kind_of, media_type
from gateway.errors import NotFound, PayloadTooLarge, error_for
from handlers.base import BaseHandler, public
from storage.uploads import Upload

if TYPE_CHECKING:
    from gateway.runtime import Services

FALLBACK_TYPE = "application/octet-stream"


def disposition(item: dict[str, Any], media_id: str) -> str:
    """Images show in place; anything else downloads. RFC 6266: an ASCII name and the
    exact one in UTF-8."""
    mime_type = media_type(item.get("mime_type")) or FALLBACK_TYPE
    name = item.get("file_name") or f"{item['kind']}-{media_id}" + (
        mimetypes.guess_extension(mime_type) or ""
    )
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    how = "inline" if mime_type.startswith("image/") else "attachment"
    return f"{how}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


class MediaHandler(BaseHandler):
    async def get(self, message_id: str, media_id: str) -> None:
        """Download a file a contact sent, or one an agent uploaded.
        ---
        summary: Download a message's media (a contact's is fetched from the provider)
        description: >-
          Streams the file with its type and name: a contact's from the provider,
          an agent's upload from the database. Files over `media.max_bytes` are
          refused with 413; a provider that fails gives 502; a file sent by URL
          was never fetched by the gateway and is 404.
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
        missing = NotFound(f"No such file: media {media_id} of message {message_id}")
        if stored is None:
            raise missing
        channel_id, ref, item = stored
        cap = self.services.config.media.max_bytes
        if "upload" in item:  # an agent's: in our database, not the provider's
            upload = await self.services.storage.uploads.get(item["upload"])
            if upload is None:
                raise missing
            await self._stream(upload_download(self.services, upload), item, media_id, cap)
            return
        channel = self.services.channels.get(channel_id)
        if channel is None:
            raise missing
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
        # Stored before types were checked, or the provider's own: a valid one or none.
        shown = media_type(item.get("mime_type")) or media_type(download.content_type)
        self.set_header("Content-Type", shown or FALLBACK_TYPE)
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


def upload_download(services: Services, upload: Upload) -> Download:
    return Download(_whole(services.storage.uploads.chunks_of(upload)), upload.mime_type)


async def _whole(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except ValueError:  # expired while being read: cut, never a short file as whole
        raise MediaUnavailable(404, "the file expired") from None


@public("providers fetch agents' uploads with no credentials: the link is signed")
class PublicMediaHandler(BaseHandler):
    """An upload at its expiring link (gateway/medialinks.py), for Twilio's MediaUrl.
    Twilio asks with HEAD and GET and checks the Content-Type against the bytes."""

    secret_path = True  # the access log shows the route, never the signature

    async def get(self, upload_id: str, expires: str, signature: str) -> None:
        """An agent's upload, for the provider that sends it.
        ---
        summary: An uploaded file at its signed, expiring link (Twilio's MediaUrl)
        description: >-
          The gateway gives this link to the provider when it sends an agent's
          upload. A guessed, altered or expired link is 404, like a missing file.
        tags: [messages]
        security: []
        parameters:
          - {in: path, name: upload_id, required: true, schema: {type: string}}
          - {in: path, name: expires, required: true, schema: {type: integer}}
          - {in: path, name: signature, required: true, schema: {type: string}}
        responses:
          200: {description: The file, content: {application/octet-stream: {}}}
          404: {$ref: "#/components/responses/NotFound"}
        """
        upload = await self._upload(upload_id, expires, signature)
        self._headers_for(upload)
        try:
            async for chunk in upload_download(self.services, upload).chunks:
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return  # the provider went away
        except MediaUnavailable:
            self.request.connection.close()  # type: ignore[union-attr]  # cut: not whole
            return
        self.finish()

    async def head(self, upload_id: str, expires: str, signature: str) -> None:
        self._headers_for(await self._upload(upload_id, expires, signature))
        self.finish()

    async def _upload(self, upload_id: str, expires: str, signature: str) -> Upload:
        upload = None
        if self.services.links.valid(upload_id, expires, signature):
            upload = await self.services.storage.uploads.get(upload_id)
        if upload is None:  # expired, guessed or gone: the same answer
            raise NotFound("No such file (or its link has expired)")
        return upload

    def _headers_for(self, upload: Upload) -> None:
        item = {"kind": kind_of(upload.mime_type), "mime_type": upload.mime_type,
                "file_name": upload.file_name}  # fmt: skip
        self.set_header("Content-Type", upload.mime_type)
        self.set_header("Content-Length", str(upload.size))
        self.set_header("Content-Disposition", disposition(item, "0"))
        self.set_header("Content-Security-Policy", "sandbox")


routes = [
    (r"/api/v1/messages/(?P<message_id>[^/]+)/media/(?P<media_id>[^/]+)/", MediaHandler),
    (
        r"/media/(?P<upload_id>[A-Za-z0-9_-]{1,64})/(?P<expires>[0-9]{1,12})/(?P<signature>[A-Za-z0-9_-]{1,64})",
        PublicMediaHandler,
    ),
]
