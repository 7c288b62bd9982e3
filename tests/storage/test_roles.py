"""Agents made before roles existed get them at the next start: the first one made
(the installation's owner) is the admin, the others agents."""

from __future__ import annotations

from storage.database import Storage
from storage.models import Role
from testkit.helpers import RETENTION_SECONDS


async def test_agents_from_before_roles_get_them_at_the_next_start(storage: Storage) -> None:
    made = [await storage.agents.create(name, "hash") for name in ("owner", "bea", "cai")]
    await storage.agents.collection.update_many({}, {"$unset": {"role": ""}})  # as they were
    assert {a.role for a in [await storage.agents.get(m.id) for m in made] if a} == {Role.AGENT}

    await storage.ensure_indexes(RETENTION_SECONDS)
    roles = {m.username: (await storage.agents.get(m.id)).role for m in made}  # type: ignore[union-attr]
    assert roles == {"owner": Role.ADMIN, "bea": Role.AGENT, "cai": Role.AGENT}
    await storage.agents.update(made[1].id, {"role": Role.ADMIN.value})
    await storage.ensure_indexes(RETENTION_SECONDS)  # given once: later changes stay
    assert (await storage.agents.get(made[1].id)).role is Role.ADMIN  # type: ignore[union-attr]
