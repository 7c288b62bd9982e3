"""Where the newest documents of each listed collection are, for the page windows of
the embedded server (storage/pages.py).

That server cannot tell cheaply where a collection's newest document is: a sorted
``limit(1)`` reads every document first (0.8 s at 50,000 messages, measured). A
window measured back from now therefore found nothing in a collection that had been
quiet for longer than it, and the page then read every document (200,000 messages: a
503, and the requests behind it too). So the writers say what they wrote: this keeps
the newest ``KEEP`` keys of each collection in memory, and in one small document per
collection, so that a restarted gateway knows them too. A window then starts from
the newest key, and an unfiltered page from the key ``limit + 1`` below it.

The saved keys are a hint, never the truth: they may miss up to ``SAVE_SECONDS`` of
writes (saved at most that often, unjournaled) and name documents deleted since, and
a gateway sharing the database learns another's writes only from the pages it reads.
Pages stay correct with any of these: a window's top is never lowered, and one that
holds too little gets the page's second query as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from pymongo import DESCENDING
from pymongo.errors import PyMongoError

from storage.records import KEY, Collection, quick

log = logging.getLogger("storage.newest")

KEEP = 128  # a page of up to 100 and the one after it, with room to spare
SAVE_SECONDS = 1.0
MARKS = "newest_keys"


class NewestKeys:
    def __init__(self) -> None:
        self._keys: dict[str, list[str]] = {}  # ascending, at most KEEP
        # Whether a collection's keys stay put: a conversation's moves to its newest
        # message, so its older keys name nothing and only the newest one counts.
        self._stable: dict[str, bool] = {}
        self._unsaved: dict[str, list[str]] = {}
        self._saved_at = float("-inf")  # when the last background save started
        self._saving: asyncio.Task[None] | None = None
        self._marks: Collection | None = None

    async def track(self, collection: Collection, *, stable: bool) -> None:
        """Load ``collection``'s saved keys; on its first start with this version, find
        them once (a read of every document, on the embedded server)."""
        self._marks = marks = quick(collection.database[MARKS])
        saved = await marks.find_one({"_id": collection.name})
        if saved is None:
            found = collection.find({}, projection={KEY: 1}).sort(KEY, DESCENDING).limit(KEEP)
            keys = [d[KEY] async for d in found]
            await marks.update_one(
                {"_id": collection.name}, {"$setOnInsert": {"keys": sorted(keys)}}, upsert=True
            )
        else:
            keys = saved.get("keys", [])
        self._stable[collection.name] = stable
        self._keys[collection.name] = sorted(set(keys))[-KEEP:]
        self._unsaved[collection.name] = []

    def of(self, name: str) -> list[str]:
        """The newest keys known, oldest first; empty for a collection not tracked."""
        return self._keys.get(name, [])

    def stable(self, name: str) -> bool:
        return self._stable.get(name, False)

    def learn(self, name: str, keys: Iterable[str]) -> list[str]:
        """Keys seen in ``name`` (written here, or read from its newest page); returns
        those that are now among its newest."""
        if name not in self._keys:
            return []
        known = self._keys[name]
        fresh = {k for k in keys if k not in known}
        if not fresh:
            return []
        merged = sorted({*known, *fresh})[-KEEP:]
        self._keys[name] = merged
        return sorted(fresh.intersection(merged))

    def wrote(self, name: str, keys: Iterable[str]) -> None:
        """This process stored documents with ``keys`` in ``name``: remember them, and
        save what is new at most every ``SAVE_SECONDS``, in the background: the write
        that told us is stored, and its caller need not wait for a hint."""
        fresh = self.learn(name, keys)
        if not fresh:
            return
        self._unsaved[name] = sorted({*self._unsaved[name], *fresh})[-KEEP:]
        due = time.monotonic() - self._saved_at >= SAVE_SECONDS
        if due and (self._saving is None or self._saving.done()):
            self._saved_at = time.monotonic()
            self._saving = asyncio.get_running_loop().create_task(self._save_all())

    async def flush(self) -> None:
        """Save every collection's keys not saved yet (the gateway is stopping)."""
        if self._saving is not None:
            await self._saving  # never raises: _save logs its failures
        await self._save_all()

    async def _save_all(self) -> None:
        for name in list(self._unsaved):
            await self._save(name)

    async def _save(self, name: str) -> None:
        keys, self._unsaved[name] = self._unsaved[name], []
        if not keys or self._marks is None:
            return
        # Each gateway pushes only the keys it wrote; the server keeps the newest.
        push = {"$each": keys, "$sort": 1, "$slice": -KEEP}
        try:
            await self._marks.update_one({"_id": name}, {"$push": {"keys": push}}, upsert=True)
        except PyMongoError as exc:  # a hint: the write it follows is stored already
            log.warning("newest keys of %s not saved (%s)", name, type(exc).__name__)
            self._unsaved[name] = sorted({*keys, *self._unsaved[name]})[-KEEP:]
