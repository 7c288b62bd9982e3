"""What a list of records is, to those who ask for one: a page of items and where the
next begins. How a page is read is storage's business (storage/pages.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Position:
    """Where a page ended: the next begins below this key. Nothing else, so a client
    handed it in a cursor can tell storage nothing of how to read the next page."""

    key: str


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: Position | None
