"""Channel leases: one holder at a time, renewed by it, taken over once they run out."""

from __future__ import annotations

from datetime import timedelta

from storage.database import Storage
from storage.records import utcnow


async def test_one_holder_at_a_time_until_the_lease_runs_out(storage: Storage) -> None:
    leases = storage.leases
    soon = utcnow() + timedelta(seconds=30)
    assert await leases.hold("chan", "a", soon)
    assert not await leases.hold("chan", "b", soon)  # a holds it
    assert await leases.hold("chan", "a", soon + timedelta(seconds=5))  # a renews
    assert await leases.holders() == {"chan": "a"}
    # a stops renewing: once its lease has run out, b takes it. (Ran out a second
    # ago: "until now" is not yet out within the same millisecond.)
    ran_out = utcnow() - timedelta(seconds=1)
    await leases.collection.update_one({"_id": "chan"}, {"$set": {"until": ran_out}})
    assert await leases.hold("chan", "b", soon)
    assert not await leases.hold("chan", "a", soon)
    assert await leases.holders() == {"chan": "b"}


async def test_a_released_lease_is_taken_at_once_and_force_takes_any(storage: Storage) -> None:
    leases = storage.leases
    later = utcnow() + timedelta(seconds=60)
    assert await leases.hold("chan", "a", later)
    await leases.release(["chan"], "b")  # not b's to release
    assert not await leases.hold("chan", "b", later)
    await leases.release(["chan"], "a")
    assert await leases.hold("chan", "b", later)
    assert await leases.hold("chan", "c", later, force=True)  # the embedded server's one gateway
    assert await leases.holders() == {"chan": "c"}
