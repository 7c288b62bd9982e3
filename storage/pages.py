"""Keyset pagination: newest first by ``(created_at, _id)``, one indexed query a page.

A page ends at a :class:`Position`; the next page starts strictly after it. Unlike
skip/limit this costs the same at any depth and never repeats or drops a document
when new ones arrive meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from storage.records import to_record

NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]


@dataclass(frozen=True)
class Position:
    created_at: datetime
    id: str


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next: Position | None


async def fetch_page(
    collection: AsyncCollection, query: dict[str, Any], after: Position | None, limit: int
) -> Page:
    if after is not None:
        # The range on created_at uses the index; the $nor only drops the few
        # documents that share the boundary's timestamp.
        boundary = {
            "created_at": {"$lte": after.created_at},
            "$nor": [{"created_at": after.created_at, "_id": {"$gte": after.id}}],
        }
        query = {"$and": [query, boundary]} if query else boundary
    documents = await collection.find(query).sort(NEWEST_FIRST).limit(limit + 1).to_list()
    items = [to_record(d) for d in documents[:limit]]
    last = items[-1] if len(documents) > limit else None
    return Page(items, Position(last["created_at"], last["id"]) if last else None)  # type: ignore[arg-type]
