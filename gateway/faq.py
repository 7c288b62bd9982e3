"""FAQ auto-replies: match an inbound question, answer it through the outbox.

Matching is predictable: a question matches an FAQ when its normalised text
(case-folded, accents and punctuation removed, white space collapsed) equals the
FAQ's normalised question or one of its alternative phrasings.

Most inbound texts ask no FAQ, so each replica keeps the set of every enabled
phrasing in memory and a text outside it costs no I/O at all. Texts inside it go
through aiocache (memory, or Redis shared by replicas). A change made here
clears this replica's set and cache at once; other replicas see it within the
TTL. A cache that fails is skipped: the lookup reads MongoDB instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from aiocache import SimpleMemoryCache
from aiocache.base import BaseCache

from gateway.config import CacheConfig, FaqConfig
from storage.database import Storage
from storage.models import Contact, Message
from storage.records import utcnow

log = logging.getLogger("gateway.faq")

NAMESPACE = "faq"
_NO_MATCH: dict[str, str | None] = {"faq_id": None}  # cached too: the phrase asks no FAQ
MAX_PHRASING = 500  # the longest question (or alternative) an FAQ may have
# Texts longer than this cannot be an FAQ's phrasing with punctuation and spaces
# added, so they are not normalised: NFKD can make a text 18 times longer, and a
# 4,096-character text would hold the event loop for no answer.
MAX_QUESTION = 2 * MAX_PHRASING


def question_phrase(text: str) -> str:
    """The phrase an inbound text would match an FAQ by; "" if it is no question."""
    return normalize(text) if len(text) <= MAX_QUESTION else ""


def normalize(text: str) -> str:
    """Case-folded, without accents or punctuation, single-spaced."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    kept = []
    for char in decomposed:
        category = unicodedata.category(char)
        if category.startswith("M"):
            continue  # the accent of a decomposed letter
        kept.append(" " if category[0] in "PSZC" else char)
    return " ".join("".join(kept).split())


def make_cache(config: CacheConfig) -> BaseCache:
    if config.backend == "redis":
        from aiocache import RedisCache  # needs the redis package: only when configured

        url = urlsplit(config.url)
        db = int(url.path.strip("/") or 0)
        return RedisCache(
            endpoint=url.hostname or "127.0.0.1",
            port=url.port or 6379,
            db=db,
            password=url.password,
            namespace=NAMESPACE,
            create_connection_timeout=1.0,
        )
    return SimpleMemoryCache(namespace=NAMESPACE)


@dataclass(frozen=True, slots=True)
class FaqAnswer:
    """What an inbound text asked: the FAQ and its answer."""

    faq_id: str
    answer: str


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    no_faq: int = 0  # texts outside every phrasing: answered from memory


class FaqResponder:
    """Finds the FAQ a text asks, and queues its answer as an auto-reply."""

    def __init__(self, storage: Storage, cache: BaseCache, faq: FaqConfig, ttl: int) -> None:
        self.storage = storage
        self.cache = cache
        self.config = faq
        self.ttl = ttl
        self.stats = CacheStats()
        self._phrases: frozenset[str] | None = None
        self._phrases_loaded_at = 0.0
        self._loading = asyncio.Lock()

    async def lookup(self, text: str) -> FaqAnswer | None:
        """The answer of the enabled FAQ that ``text`` asks, if any."""
        return await self.lookup_phrase(question_phrase(text))

    async def lookup_phrase(self, phrase: str) -> FaqAnswer | None:
        """:meth:`lookup` for a text already normalised."""
        if not phrase:
            return None
        if phrase not in await self._known_phrases():
            self.stats.no_faq += 1
            return None
        cached = await self._cached(phrase)
        if cached is not None:
            self.stats.hits += 1
            return FaqAnswer(cached["faq_id"], cached["answer"]) if cached["faq_id"] else None
        self.stats.misses += 1
        faq = await self.storage.faqs.find_by_phrase(phrase)
        found: dict[str, str | None] = (
            {"faq_id": faq.id, "answer": faq.answer} if faq else _NO_MATCH
        )
        await self._remember(phrase, found)
        return FaqAnswer(faq.id, faq.answer) if faq else None

    async def _known_phrases(self) -> frozenset[str]:
        if self._phrases is None or time.monotonic() - self._phrases_loaded_at > self.ttl:
            async with self._loading:  # one reload, however many webhooks wait for it
                if self._phrases is None or time.monotonic() - self._phrases_loaded_at > self.ttl:
                    self._phrases = frozenset(await self.storage.faqs.enabled_phrases())
                    self._phrases_loaded_at = time.monotonic()
        return self._phrases

    async def _cached(self, phrase: str) -> dict[str, Any] | None:
        try:
            cached: dict[str, Any] | None = await self.cache.get(phrase)
            return cached
        except Exception as exc:  # a cache outage must not fail a webhook
            self.stats.errors += 1
            log.warning("FAQ cache unavailable (%s); reading MongoDB", type(exc).__name__)
            return None

    async def _remember(self, phrase: str, value: dict[str, str | None]) -> None:
        try:
            await self.cache.set(phrase, value, ttl=self.ttl)
        except Exception as exc:
            self.stats.errors += 1
            log.warning("FAQ cache unavailable (%s)", type(exc).__name__)

    async def invalidate(self) -> None:
        """An FAQ changed: forget every cached lookup (on this replica, or in Redis)."""
        self._phrases = None
        try:
            await self.cache.clear(namespace=NAMESPACE)
        except Exception as exc:
            log.warning("FAQ cache not cleared (%s); entries expire within the TTL", exc)

    async def reply(self, contact: Contact, found: FaqAnswer) -> Message | None:
        """Queue the answer ``lookup`` found unless it was sent to the contact lately;
        returns the queued message."""
        since = utcnow() - timedelta(seconds=self.config.repeat_window_seconds)
        messages = self.storage.messages
        if await messages.sent_faq_since(contact.id, found.faq_id, since):
            return None  # the same answer again would only loop
        reply, _ = await messages.insert_outbound(
            contact=contact,
            content=found.answer,
            agent=None,
            extra={"auto_reply": True, "faq_id": found.faq_id},
        )
        await self.storage.faqs.count_hit(found.faq_id)
        return reply

    async def close(self) -> None:
        client = getattr(self.cache, "client", None)
        if client is not None:
            # aiocache 0.12 closes Redis with the close() that redis-py 5 deprecates.
            await client.aclose()
        else:
            await self.cache.close()
