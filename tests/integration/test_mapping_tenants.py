"""Tenant isolation through every cache backend: one wa_id in two tenants is two conversations,
and no lookup — hit or miss, forward or reverse — crosses tenants."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

import wastate
from wastate.cache.keys import MappingKeys

WA = "+919876543210"


@pytest.fixture(params=["none", "memory", "redis", "redis-without-l1"])
def backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """Each cache backend (and Redis with and without the near cache)."""
    if request.param == "none":
        return "none://", {}
    if request.param == "memory":
        return "memory://", {}
    url: str = request.getfixturevalue("redis_url")
    return url, {"near_cache": request.param == "redis"}


def tenant_crossings(store: wastate.Store) -> list[str]:
    """Run the isolation scenario on `store`; describe every lookup that crossed tenants."""
    one, two = f"a-{uuid.uuid4().hex[:10]}", f"b-{uuid.uuid4().hex[:10]}"
    crossings = []
    with store.unit_of_work(one) as uow:
        mine = uow.mappings.get_or_create(WA)
    with store.unit_of_work(one) as uow:  # now cached, both directions
        uow.mappings.by_wa_id(WA)
        uow.mappings.by_conversation(mine.conversation_id)
    with store.unit_of_work(two) as uow:
        if uow.mappings.by_wa_id(WA) is not None:
            crossings.append("by_wa_id saw the other tenant's mapping")
        if uow.mappings.by_conversation(mine.conversation_id) is not None:
            crossings.append("by_conversation saw the other tenant's mapping")
        theirs = uow.mappings.get_or_create(WA)
        if theirs.conversation_id == mine.conversation_id or theirs.tenant_id != two:
            crossings.append("get_or_create returned the other tenant's conversation")
    with store.unit_of_work(two) as uow:  # cached for tenant two now
        found = uow.mappings.get_or_create(WA)
        if found.conversation_id != theirs.conversation_id:
            crossings.append("tenant two lost its own conversation")
    with store.unit_of_work(one) as uow:
        again = uow.mappings.get_or_create(WA)
        if again.conversation_id != mine.conversation_id or again.tenant_id != one:
            crossings.append("tenant one now sees tenant two's mapping")
        uow.mappings.close(WA)
    with store.unit_of_work(two) as uow:
        still = uow.mappings.by_wa_id(WA)
        if still is None or still.conversation_id != theirs.conversation_id:
            crossings.append("closing in tenant one closed tenant two's conversation")
    return crossings


def test_one_wa_id_in_two_tenants_is_two_conversations_that_never_mix(
    make_store: Callable[..., wastate.Store],
    database_url: str,
    backend: tuple[str, dict[str, object]],
) -> None:
    """With every backend and database, no lookup crosses tenants."""
    cache_url, options = backend
    store = make_store(database_url, cache_url, **options)
    assert tenant_crossings(store) == []


class SeedKeys(MappingKeys):
    """The seed's keys: `mapping:wa:<wa_id>`, no tenant (the bug wastate must not repeat)."""

    def tenant_prefix(self, tenant_id: str) -> str:
        return f"{self._prefix}mapping:"


@pytest.mark.parametrize("near_cache", [True, False])
def test_the_scenario_catches_the_seeds_tenantless_cache_keys(
    make_store: Callable[..., wastate.Store], postgres_url: str, redis_url: str, near_cache: bool
) -> None:
    """The same scenario over tenant-less keys reports the crossing: the test has teeth."""
    store = make_store(postgres_url, redis_url, near_cache=near_cache)
    store._mapping_cache.keys = SeedKeys(f"seed-{uuid.uuid4().hex[:8]}")
    crossings = tenant_crossings(store)
    assert "by_wa_id saw the other tenant's mapping" in crossings
    assert "get_or_create returned the other tenant's conversation" in crossings
