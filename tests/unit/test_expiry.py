"""The sweep alone, on an in-memory collection of list keys: it deletes every expired
document and nothing newer, in windows that hold about a target's worth, walks back
only to where the last sweep got, and finds old ones past a gap on a first start."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from typing import Any, cast

from storage.expiry import TARGET, Expiring, Expiry
from storage.records import KEY, Collection, key_floor, millis, new_id, utcnow

DAY_MS = 86_400_000
RETENTION = 30 * 86_400


@dataclass
class Deleted:
    deleted_count: int


class Keys:
    """A collection as far as the sweep uses it: ranges of list keys (kept sorted)."""

    name = "messages"

    def __init__(self, keys: set[str]) -> None:
        self.sorted = sorted(keys)
        self.deletes: list[int] = []

    @property
    def keys(self) -> set[str]:
        return set(self.sorted)

    def _range(self, query: dict[str, Any]) -> tuple[int, int]:
        bounds = query[KEY]
        low = bisect.bisect_left(self.sorted, bounds.get("$gte", ""))
        return low, bisect.bisect_left(self.sorted, bounds["$lt"])

    async def delete_many(self, query: dict[str, Any]) -> Deleted:
        low, high = self._range(query)
        del self.sorted[low:high]
        self.deletes.append(high - low)
        return Deleted(high - low)

    async def find_one(self, query: dict[str, Any], projection: Any = None) -> Any:
        low, high = self._range(query)
        return {"_id": self.sorted[low]} if high > low else None


@dataclass
class Meta:
    marks: dict[str, Any] = field(default_factory=dict)

    async def find_one(self, query: dict[str, Any]) -> Any:
        return self.marks.get(query["_id"])

    async def update_one(self, query: dict[str, Any], update: dict[str, Any], upsert: bool) -> None:
        self.marks[query["_id"]] = update["$set"]


async def _no_pause(seconds: float) -> None:
    pass


def _sweeper() -> Expiry:
    return Expiry(cast(Collection, Meta()), pause=0, sleep=_no_pause)


def _keys(days_ago: float, count: int, per_second: float) -> set[str]:
    """``count`` keys, ``per_second`` apart, the newest ``days_ago`` old."""
    newest = millis(utcnow()) - int(days_ago * DAY_MS)
    return {key_floor(newest - int(n * 1000 / per_second)) + f"-{n}" for n in range(count)}


def _target(keys: Keys) -> Expiring:
    return Expiring(cast(Collection, keys))


async def test_every_expired_one_goes_in_windows_of_about_the_target_and_nothing_newer() -> None:
    expired = _keys(30.01, 30_000, per_second=2)  # 4 hours of traffic, just expired
    fresh = {new_id() for _ in range(500)}
    keys = Keys(expired | fresh)
    sweeper = _sweeper()
    assert await sweeper.sweep(_target(keys), RETENTION) == 30_000
    assert keys.keys == fresh
    assert max(keys.deletes) <= 4 * TARGET  # the density is learned in a few windows
    busy = [n for n in keys.deletes if n]
    assert sum(busy) / len(busy) >= TARGET / 2  # and then kept near the target


async def test_the_next_sweep_walks_back_only_to_where_the_last_got() -> None:
    keys = Keys(_keys(30.01, 1_000, per_second=1))
    sweeper = _sweeper()
    await sweeper.sweep(_target(keys), RETENTION)
    windows = len(keys.deletes)
    keys.sorted = sorted(keys.keys | _keys(29.9999, 10, per_second=1))  # not yet expired
    assert await sweeper.sweep(_target(keys), RETENTION) == 0
    assert len(keys.deletes) - windows <= 2  # from the cutoff to the mark: a moment


async def test_a_first_sweep_finds_old_documents_past_a_long_gap() -> None:
    keys = Keys(_keys(45, 300, per_second=0.5) | _keys(30.001, 50, per_second=1))
    assert await _sweeper().sweep(_target(keys), RETENTION) == 350
    assert keys.keys == set()
    assert max(keys.deletes) <= 4 * TARGET


async def test_busy_hours_and_quiet_ones_keep_each_delete_small() -> None:
    rng = random.Random(7)
    keys: set[str] = set()
    for hour in range(48):  # two days of busy hours (up to 5 a second) and quiet ones
        if rng.random() < 0.5:
            count = rng.randint(1, 5_000)
            keys |= _keys(31 + hour / 24, count, per_second=rng.uniform(count / 3600, 5))
    collection = Keys(keys)
    await _sweeper().sweep(_target(collection), RETENTION)
    assert collection.keys == set()
    # Past a quiet stretch the first window holds at most MAX_SPAN_MS of the traffic.
    assert max(collection.deletes) <= 60 * 5
