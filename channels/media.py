"""Media both ways. What a contact sent besides text, as a channel tells the gateway
(:data:`Media`: a file, a location, a shared contact, or a kind we only name). Files
agents send: what one is (:class:`Attachment`), and what a channel takes
(:class:`MediaRules`), checked before anything is stored."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

MB = 1024 * 1024

# The first bytes of the types channels treat specially: a file named .jpg that is
# not a JPEG would reach Telegram as a broken photo and be refused by Twilio.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (4, b"ftyp", "video/mp4"),  # the ISO media family; M4A is audio/mp4 (sniffed so)
)


# RFC 6838 4.2: a media type's names, type/subtype, at most 127 characters each;
# RFC 9110 5.6.6: parameters, a token = a token or a quoted string of visible ASCII.
_NAME = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(f"{_NAME}/{_NAME}")
_PARAMETER = re.compile(
    r"\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+=([A-Za-z0-9!#$%&'*+.^_`|~-]+|\"[ !#-~]*\")\s*"
)


def media_type(value: object) -> str | None:
    """A provider's declared type if it is a valid one (``audio/ogg; codecs=opus``),
    its ``type/subtype`` if only that is, else None: a control or non-Latin-1
    character would otherwise break the Content-Type header of every download."""
    if not isinstance(value, str) or len(value) > 255:
        return None
    name, *parameters = value.split(";")
    name = name.strip().lower()
    if not _MEDIA_TYPE.fullmatch(name):
        return None
    if parameters and all(_PARAMETER.fullmatch(p) for p in parameters):
        return "; ".join([name, *(p.strip() for p in parameters)])
    return name


def kind_of(mime_type: str) -> str:
    """image, audio, video or document: how a type is sent and shown."""
    major = mime_type.split("/")[0]
    return major if major in ("image", "audio", "video") else "document"


def sniff(data: bytes) -> str | None:
    """The type the bytes show themselves to be, among the ones we check; else None."""
    for offset, magic, mime_type in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            if magic == b"ftyp" and data[8:11] == b"M4A":
                return "audio/mp4"
            return mime_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def guess_type(name: str) -> str:
    """The type a file name or a URL's path suggests, or ""."""
    path = urlsplit(name).path if "://" in name else name
    return mimetypes.guess_type(path, strict=False)[0] or ""


def file_name_of(url: str) -> str:
    """The last segment of a URL's path: the name a provider shows for it."""
    return urlsplit(url).path.rstrip("/").rpartition("/")[2][:255]


@dataclass(frozen=True)
class MediaFile:
    """A file a contact sent; ``ref`` is the channel's own handle to fetch it (a
    Telegram file_id, a Twilio media URL, a Graph API media id), never shown."""

    kind: str  # photo, voice, document, image, audio, video, sticker, ...
    ref: str
    mime_type: str | None = None  # as the provider declared it (media_type checks it)
    size: int | None = None  # when the provider says it before the file is fetched
    file_name: str | None = None
    caption: str | None = None


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    kind: str = "location"


@dataclass(frozen=True)
class SharedContact:
    phone_number: str
    file_name: str | None = None  # the contact's name, where a file's would be shown
    kind: str = "contact"


@dataclass(frozen=True)
class Unsupported:
    """A kind of message we store by its name only (a poll, a game)."""

    caption: str | None = None
    kind: str = "other"


Media = MediaFile | Location | SharedContact | Unsupported


def listed(item: Media) -> dict[str, Any]:
    """An item as a message stores it and the API lists it (storage/models.py
    ``shown_media`` numbers the items and leaves the ``ref`` out)."""
    return {"kind": item.kind, **{k: v for k, v in asdict(item).items() if k != "kind"}}


@dataclass(frozen=True)
class Attachment:
    """A file an agent sends, as a channel needs it."""

    kind: str  # image, audio, video or document (kind_of)
    mime_type: str  # "" when unknown (a URL whose path names no type)
    file_name: str
    # Where the provider may fetch it: the agent's URL, or the gateway's expiring link
    # to an upload ("" for an upload on a gateway with no public URL).
    url: str
    # An upload's bytes, a chunk at a time, afresh at each call; None: sent by URL. A
    # file gone meanwhile ends it with a SendError.
    chunks: Callable[[], AsyncIterator[bytes]] | None = None


@dataclass(frozen=True)
class MediaRules:
    """What a channel sends as files: the largest of each kind (a kind not listed is
    not sent), the types it takes (None: any), and the longest caption."""

    max_bytes: Mapping[str, int]
    types: frozenset[str] | None = None
    max_caption: int = 1024
    # The provider fetches uploads from the gateway (Twilio): they need a public URL.
    fetches_uploads: bool = False
    name: str = ""  # how the errors name the provider

    def refuse(self, kind: str, mime_type: str, size: int | None) -> str | None:
        """Why the channel would not send such a file, naming the limit; or None."""
        if self.types is not None and mime_type and mime_type not in self.types:
            allowed = ", ".join(sorted(self.types))
            return f"{self.name} does not send {mime_type} files; it sends {allowed}"
        if kind not in self.max_bytes:
            return f"{self.name} sends no {kind} files"
        limit = self.max_bytes[kind]
        if size is not None and size > limit:
            return f"{self.name} sends {kind} files of at most {limit // MB} MB ({limit} bytes)"
        return None


GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


def upload_type(declared: str, file_name: str, data: bytes) -> str:
    """An upload's type: what its bytes show where we can tell (a provider checks
    them), else what the agent declared or its name suggests."""
    declared = media_type(declared) or ""
    if declared in GENERIC_TYPES:
        declared = guess_type(file_name)
    sniffed = sniff(data)
    if sniffed is None:
        return declared or "application/octet-stream"
    if sniffed == "video/mp4" and declared.startswith(("video/", "audio/")):
        return declared  # one ISO media container: the agent knows the codec
    return sniffed
