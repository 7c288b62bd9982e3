"""The file of an outbound message, opened for its channel at send time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pymongo.errors import PyMongoError

from channels.base import ProviderError, Undeliverable
from channels.media import Attachment, file_name_of
from gateway.medialinks import MediaLinks
from storage.uploads import Upload, UploadsRepository


class OutboundFiles:
    """Turns a stored media item into an :class:`Attachment`: the agent's URL, or an
    upload with a fresh expiring link (each attempt gets its own) and its bytes."""

    def __init__(self, uploads: UploadsRepository, links: MediaLinks) -> None:
        self.uploads = uploads
        self.links = links

    async def attachment(self, item: dict[str, Any]) -> Attachment:
        kind, mime_type = item["kind"], item.get("mime_type") or ""
        if "upload" not in item:
            url = item["url"]
            return Attachment(kind, mime_type, item.get("file_name") or file_name_of(url), url)
        try:
            upload = await self.uploads.get(item["upload"])
        except PyMongoError as exc:  # retried: the file is there once the database is
            raise ProviderError(f"the upload could not be read ({type(exc).__name__})") from None
        if upload is None:
            raise Undeliverable("the uploaded file expired before it could be sent")
        return Attachment(
            kind, upload.mime_type, upload.file_name, self.links.url(upload.id),
            chunks=lambda: self._chunks(upload),
        )  # fmt: skip

    async def _chunks(self, upload: Upload) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.uploads.chunks_of(upload):
                yield chunk
        except PyMongoError as exc:
            raise ProviderError(f"the upload could not be read ({type(exc).__name__})") from None
        except ValueError:
            raise Undeliverable("the uploaded file expired before it could be sent") from None
