"""The cache layer: backends, registry, near cache, single flight, and the caching decorator's
rules (fill after commit, nothing from a rollback, invalidation, contact names, activity)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from helpers import FakeClock, FakeMonotonic, count_database_calls, wait_until

import wastate
from wastate.cache import (
    CachedMappingRepository,
    NearCache,
    NullCache,
    SingleFlight,
    backend_class,
    open_cache,
)
from wastate.cache.base import Cache, announcement, read_announcement
from wastate.cache.breaker import GuardedCache
from wastate.cache.memory import MemoryCache
from wastate.cache.redis import RedisCache
from wastate.domain.mappings import ConversationMapping, MappingStatus
from wastate.errors import ConfigurationError
from wastate.repositories.mappings import SqlMappingRepository
from wastate.settings import Settings

WA = "+919876543210"


@pytest.fixture(params=["memory", "redis"])
def cache_url(request: pytest.FixtureRequest) -> str:
    """Each caching backend in turn."""
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


def mapping_keys(store: wastate.Store, tenant: str, mapping: ConversationMapping) -> list[str]:
    keys = store._mapping_cache.keys
    return [keys.forward(tenant, mapping.wa_id), keys.reverse(tenant, mapping.conversation_id)]


# -- backends ------------------------------------------------------------------------------------


def test_the_registry_resolves_every_builtin_scheme_through_entry_points() -> None:
    """memory, none, redis and rediss come from the `wastate.cache_backends` entry points."""
    assert backend_class("memory") is MemoryCache
    assert backend_class("none") is NullCache
    assert backend_class("redis") is RedisCache
    assert backend_class("rediss") is RedisCache


def test_an_unknown_scheme_is_a_configuration_error_naming_the_variable() -> None:
    """A typo in the cache URL fails at connect time with a clear message."""
    with pytest.raises(ConfigurationError, match=r"WASTATE_CACHE_URL.*'memcached'"):
        open_cache("memcached://x", Settings(cache_url="memcached://x"))


def test_memory_cache_expires_entries_and_keeps_live_ones_on_fill() -> None:
    """An entry stored for `ttl` is live until just before `ttl` has passed and gone at `ttl`;
    an only-if-absent fill never overwrites a live entry, and does fill an expired one."""
    clock = FakeMonotonic()
    cache = MemoryCache("memory://", monotonic=clock)
    expires = clock.now + 5
    cache.set_many([("a", b"1")], 5, only_if_absent=True)
    clock.now = math.nextafter(expires, 0)
    cache.set_many([("a", b"2")], 10, only_if_absent=True)
    assert cache.get("a") == b"1"
    clock.now = expires
    assert cache.get("a") is None
    cache.set_many([("a", b"3")], 10, only_if_absent=True)
    assert cache.get("a") == b"3"


def test_the_registry_gives_an_in_process_backend_the_clock() -> None:
    """`open_cache(..., monotonic=)` reaches `memory://`; a backend that does not time entries
    itself is built as before, with (url, settings)."""
    clock = FakeMonotonic()
    cache = open_cache("memory://", Settings(cache_url="memory://"), monotonic=clock)
    cache.set_many([("a", b"1")], 5, only_if_absent=False)
    clock.advance(5)
    assert cache.get("a") is None
    assert isinstance(open_cache("none://", Settings(cache_url="none://"), monotonic=clock), Cache)


def test_memory_cache_drops_the_least_recently_used_entry_when_full() -> None:
    """The size bound evicts the entry read longest ago."""
    cache = MemoryCache("memory://?size=2")
    cache.set_many([("a", b"1"), ("b", b"2")], 10, only_if_absent=False)
    assert cache.get("a") == b"1"
    cache.set_many([("c", b"3")], 10, only_if_absent=False)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1", None, b"3")


def test_redis_cache_tombstones_block_fills_and_reach_subscribers(redis_url: str) -> None:
    """An invalidation leaves a tombstone that a late fill cannot overwrite, and is published."""
    cache = RedisCache(redis_url, Settings(cache_url=redis_url))
    channel = f"test-channel-{time.monotonic_ns()}"
    received: list[bytes] = []
    resets: list[int] = []
    listener = cache.subscribe(channel, received.append, lambda: resets.append(1))
    try:
        assert listener.connected.wait(5)  # type: ignore[attr-defined]
        key = f"test-key-{time.monotonic_ns()}"
        cache.set_many([(key, b"old")], 10, only_if_absent=True)
        cache.invalidate(
            [key], tombstone_seconds=5, announce=(channel, announcement("origin-1", [key]))
        )
        cache.set_many([(key, b"late fill")], 10, only_if_absent=True)
        assert cache.get(key) == b""
        wait_until(lambda: bool(received))  # the listener thread
        assert [read_announcement(message) for message in received] == [("origin-1", [key])]
        assert resets  # subscribing counts as a (re)connect: the near cache starts empty
    finally:
        listener.close()
        cache.close()


def test_redis_fills_keep_taken_keys_and_settle_applies_every_fill_sent(redis_url: str) -> None:
    """Fills go out without waiting for replies, yet keep SET NX order and tombstone rules."""
    cache = RedisCache(redis_url, Settings(cache_url=redis_url))
    try:
        base = f"test-fill-{time.monotonic_ns()}"
        cache.fill([(f"{base}:a", b"1"), (f"{base}:b", b"2")], 10)
        cache.fill([(f"{base}:a", b"overwritten?")], 10)
        cache.invalidate([f"{base}:c"], tombstone_seconds=5, announce=None)
        cache.fill([(f"{base}:c", b"late fill")], 10)
        many = [(f"{base}:many:{n}", str(n).encode()) for n in range(300)]
        for item in many:
            cache.fill([item], 10)
        cache.settle()
        assert (cache.get(f"{base}:a"), cache.get(f"{base}:b")) == (b"1", b"2")
        assert cache.get(f"{base}:c") == b""  # the tombstone refused the fill
        assert [cache.get(key) for key, _ in many] == [value for _, value in many]
    finally:
        cache.close()


def test_near_cache_drops_a_fill_that_raced_an_invalidation() -> None:
    """A value read before an invalidation never lands in L1 after it."""
    near = NearCache(ttl_seconds=10, size=10)
    stale = object()
    generation = near.generation
    near.discard(["k"])
    near.put([("k", stale)], generation)  # type: ignore[list-item]
    assert near.get("k") is None


def test_near_cache_entries_expire_after_their_ttl() -> None:
    """The L1 TTL bounds staleness when an invalidation message is lost: an entry is served
    until just before `ttl` has passed since it was put, and not from `ttl` on."""
    clock = FakeMonotonic()
    near = NearCache(ttl_seconds=5, size=10, monotonic=clock)
    value = object()
    expires = clock.now + 5
    near.put([("k", value)], near.generation)  # type: ignore[list-item]
    clock.now = math.nextafter(expires, 0)
    assert near.get("k") is value
    clock.now = expires
    assert near.get("k") is None


class FlakyCache(MemoryCache):
    """`memory://` that fails every call while `down` (a cache server that is unreachable)."""

    def __init__(self) -> None:
        super().__init__("memory://")
        self.down = False
        self.pings = 0

    def get(self, key: str) -> bytes | None:
        if self.down:
            raise ConnectionError("down")
        return super().get(key)

    def ping(self) -> None:
        self.pings += 1
        if self.down:
            raise ConnectionError("down")


def test_the_breaker_probes_exactly_retry_seconds_after_it_opened() -> None:
    """Open until just before `retry_seconds` have passed since the failure (no probe is sent,
    even when asked), half-open from then on; the probe that answers closes it."""
    clock = FakeMonotonic()
    backend = FlakyCache()
    breaker = GuardedCache(
        backend,
        channel=None,
        origin="o",
        namespace_pattern="*",
        tombstone_seconds=5,
        retry_seconds=2,
        monotonic=clock,
    )
    try:
        assert breaker.state == "closed"
        backend.down = True
        due = clock.now + 2
        assert breaker.get("k") is None
        assert breaker.state == "open"
        backend.down = False
        backend.set_many([("k", b"v")], 10, only_if_absent=False)
        clock.now = math.nextafter(due, 0)
        assert breaker.state == "open"
        assert breaker.probe() is False
        assert breaker.get("k") is None  # open: the backend is not asked
        assert (backend.pings, breaker.failures) == (0, 1)
        clock.now = due
        assert breaker.state == "half-open"
        assert breaker.probe() is True
        assert (breaker.state, backend.pings) == ("closed", 1)
        assert breaker.get("k") == b"v"
    finally:
        breaker.close()


def test_a_failed_probe_makes_the_next_one_due_retry_seconds_later() -> None:
    """A probe the backend does not answer keeps the breaker open for another `retry_seconds`,
    counted from that probe."""
    clock = FakeMonotonic()
    backend = FlakyCache()
    breaker = GuardedCache(
        backend,
        channel=None,
        origin="o",
        namespace_pattern="*",
        tombstone_seconds=5,
        retry_seconds=2,
        monotonic=clock,
    )
    try:
        backend.down = True
        breaker.get("k")
        clock.advance(3)  # the probe was due at +2; it runs late, at +3
        assert breaker.probe() is False
        assert (breaker.state, backend.pings) == ("open", 1)
        due = clock.now + 2
        backend.down = False
        clock.now = math.nextafter(due, 0)
        assert (breaker.probe(), breaker.state, backend.pings) == (False, "open", 1)
        clock.now = due
        assert (breaker.probe(), breaker.state, backend.pings) == (True, "closed", 2)
    finally:
        breaker.close()


def test_the_probe_thread_closes_the_breaker_once_its_clock_says_so() -> None:
    """The background prober follows the injected clock too: with the clock held it never
    probes, however often it wakes; moved to the probe time, it probes and closes the breaker by
    itself."""
    clock = FakeMonotonic()
    reads = 0

    def counted() -> float:
        nonlocal reads
        reads += 1
        return clock()

    backend = FlakyCache()
    breaker = GuardedCache(
        backend,
        channel=None,
        origin="o",
        namespace_pattern="*",
        tombstone_seconds=5,
        retry_seconds=0.01,  # also how often (real seconds) the thread re-reads the clock
        monotonic=counted,
    )
    try:
        backend.down = True
        breaker.get("k")
        backend.down = False
        wait_until(lambda: reads >= 20)  # the thread has woken and read the clock many times
        assert (breaker.state, backend.pings) == ("open", 0)
        clock.advance(0.01)
        wait_until(lambda: breaker.state == "closed")
        assert backend.pings == 1
    finally:
        breaker.close()


def test_single_flight_runs_one_load_for_concurrent_callers() -> None:
    """Eight threads asking for one key at once share one call."""
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    barrier = threading.Barrier(8)

    def load() -> int:
        nonlocal calls
        calls += 1
        time.sleep(0.2)
        return 42

    results: list[int] = []

    def worker() -> None:
        barrier.wait()
        results.append(flight.do("k", load))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (calls, results) == (1, [42] * 8)


# -- the decorator -------------------------------------------------------------------------------


def test_the_store_always_uses_the_caching_decorator(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """With `none://` too, so activity is recorded the same way."""
    store = make_store(database_url, "none://")
    with store.unit_of_work(tenant) as uow:
        assert isinstance(uow.mappings, CachedMappingRepository)
    assert isinstance(store._mapping_cache.backend, NullCache)
    assert store._mapping_cache.near is None


def test_a_hit_asks_the_database_nothing(
    make_store: Callable[..., wastate.Store],
    database_url: str,
    cache_url: str,
    tenant: str,
) -> None:
    """Once filled, both directions answer without touching the database."""
    store = make_store(database_url, cache_url)
    subscription = store._mapping_cache.subscription
    if subscription is not None:  # its first connect clears the L1: let that happen first
        assert subscription.connected.wait(5)  # type: ignore[attr-defined]
    with store.unit_of_work(tenant) as uow:
        created = uow.mappings.get_or_create(WA, contact_name="Asha")
    with store.unit_of_work(tenant) as uow:  # created with a name: invalidated, refilled here
        assert uow.mappings.by_wa_id(WA) == created
    calls = count_database_calls(store)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.get_or_create(WA) == created
        assert uow.mappings.by_wa_id("919876543210@c.us") == created
        assert uow.mappings.by_conversation(created.conversation_id) == created
        assert uow.mappings.get_or_create(WA, contact_name="  Asha ") == created
    assert calls == {}
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create(WA, contact_name="Someone Else")
    assert calls == {"get_or_create": 1}  # the counter does see database calls


def test_hits_come_from_l2_when_the_near_cache_is_off(
    make_store: Callable[..., wastate.Store],
    database_url: str,
    redis_url: str,
    tenant: str,
) -> None:
    """Redis alone serves hits (as parsed JSON, equal to the database's mapping)."""
    store = make_store(database_url, redis_url, near_cache=False)
    with store.unit_of_work(tenant) as uow:
        created = uow.mappings.get_or_create(WA)
    store._mapping_cache.settle()  # fills do not wait for Redis's reply
    raw = redis.Redis.from_url(redis_url).get(store._mapping_cache.keys.forward(tenant, WA))
    assert raw is not None
    assert ConversationMapping.model_validate_json(raw) == created
    calls = count_database_calls(store)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.get_or_create(WA) == created
    assert calls == {}


def test_nothing_is_cached_from_a_rolled_back_transaction(
    make_store: Callable[..., wastate.Store], database_url: str, cache_url: str, tenant: str
) -> None:
    """A mapping created in a rolled-back unit of work is in no cache layer afterwards."""
    store = make_store(database_url, cache_url)
    with pytest.raises(RuntimeError), store.unit_of_work(tenant) as uow:
        doomed = uow.mappings.get_or_create(WA)
        assert uow.mappings.by_wa_id(WA) == doomed  # visible inside its own transaction
        raise RuntimeError("abort")
    cache = store._mapping_cache
    cache.settle()  # a fill still on its way would count
    for key in mapping_keys(store, tenant, doomed):
        assert cache.near is None or cache.near.get(key) is None
        assert not cache.backend.get(key)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) is None
        assert uow.mappings.by_conversation(doomed.conversation_id) is None
        assert uow.mappings.get_or_create(WA).conversation_id != doomed.conversation_id


def test_a_close_is_read_back_inside_its_own_transaction_and_seen_after_commit(
    make_store: Callable[..., wastate.Store], database_url: str, cache_url: str, tenant: str
) -> None:
    """The cache never hides this unit of work's own uncommitted writes."""
    store = make_store(database_url, cache_url)
    with store.unit_of_work(tenant) as uow:
        first = uow.mappings.get_or_create(WA)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == first  # a hit
        uow.mappings.close(WA)
        assert uow.mappings.by_wa_id(WA) is None
        closed = uow.mappings.by_conversation(first.conversation_id)
        assert closed is not None
        assert closed.status is MappingStatus.CLOSED
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) is None
        second = uow.mappings.get_or_create(WA)
        assert second.conversation_id != first.conversation_id
        old = uow.mappings.by_conversation(first.conversation_id)
        assert old is not None
        assert old.status is MappingStatus.CLOSED


def test_a_rolled_back_close_leaves_the_cached_mapping_in_place(
    make_store: Callable[..., wastate.Store], database_url: str, cache_url: str, tenant: str
) -> None:
    """Invalidations run only after commit: a rollback keeps the (still true) entry."""
    store = make_store(database_url, cache_url)
    with store.unit_of_work(tenant) as uow:
        first = uow.mappings.get_or_create(WA)
    uow = store.unit_of_work(tenant)
    uow.mappings.close(WA)
    uow.rollback()
    uow.close()
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == first


def test_correlate_invalidates_the_generated_reverse_key(
    make_store: Callable[..., wastate.Store], database_url: str, cache_url: str, tenant: str
) -> None:
    """After correlation the generated conversation id no longer resolves, the new one does."""
    store = make_store(database_url, cache_url)
    with store.unit_of_work(tenant) as uow:
        generated = uow.mappings.get_or_create(WA)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_conversation(generated.conversation_id) == generated  # cached
        uow.mappings.correlate(WA, "genesys-conv-1", "comm-1")
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_conversation(generated.conversation_id) is None
        found = uow.mappings.by_conversation("genesys-conv-1")
        assert found is not None
        assert found.communication_id == "comm-1"
        forward = uow.mappings.get_or_create(WA)
        assert forward.conversation_id == "genesys-conv-1"


def test_a_creation_with_a_name_invalidates_instead_of_filling(
    make_store: Callable[..., wastate.Store], postgres_url: str, redis_url: str, tenant: str
) -> None:
    """A named get_or_create that missed may have lost the creation race and renamed another
    process's (possibly cached) mapping: it tombstones the keys instead of filling them."""
    store = make_store(postgres_url, redis_url)
    with store.unit_of_work(tenant) as uow:
        named = uow.mappings.get_or_create(WA, contact_name="Asha")
    with store.unit_of_work(tenant) as uow:
        unnamed = uow.mappings.get_or_create("+15550001111")
    store._mapping_cache.settle()
    backend = store._mapping_cache.backend
    keys = store._mapping_cache.keys
    assert backend.get(keys.forward(tenant, WA)) == b""  # a tombstone
    assert backend.get(keys.reverse(tenant, named.conversation_id)) == b""
    filled = backend.get(keys.forward(tenant, "+15550001111"))
    assert filled is not None
    assert ConversationMapping.model_validate_json(filled) == unnamed


def test_a_different_contact_name_goes_to_the_database_and_is_cached_after(
    make_store: Callable[..., wastate.Store], database_url: str, cache_url: str, tenant: str
) -> None:
    """A hit never swallows a rename."""
    store = make_store(database_url, cache_url)
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create(WA, contact_name="Asha")
    with store.unit_of_work(tenant) as uow:
        renamed = uow.mappings.get_or_create(WA, contact_name="Asha K")
        assert renamed.contact_name == "Asha K"
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.get_or_create(WA).contact_name == "Asha K"
        found = uow.mappings.by_conversation(renamed.conversation_id)
        assert found is not None
        assert found.contact_name == "Asha K"


def test_expire_and_purge_invalidate_both_directions(
    make_store: Callable[..., wastate.Store], database_url: str, cache_url: str, tenant: str
) -> None:
    """Expired mappings stop resolving forward; purged ones stop resolving at all."""
    clock = FakeClock()
    store = make_store(database_url, cache_url, clock=clock)
    with store.unit_of_work(tenant) as uow:
        first = uow.mappings.get_or_create(WA)
        assert uow.mappings.by_conversation(first.conversation_id) == first
    clock.advance(hours=2)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.expire_idle(timedelta(hours=1)) == 1
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) is None
        expired = uow.mappings.by_conversation(first.conversation_id)
        assert expired is not None
        assert expired.status is MappingStatus.EXPIRED
    clock.advance(hours=2)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.purge(timedelta(hours=1)) == 1
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_conversation(first.conversation_id) is None


def test_hits_record_activity_and_expiry_flushes_it_first(
    make_store: Callable[..., wastate.Store], database_url: str, cache_url: str, tenant: str
) -> None:
    """A mapping used from the cache recently is not expired as idle."""
    clock = FakeClock()
    store = make_store(database_url, cache_url, clock=clock, activity_flush_seconds=600)
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create(WA)
        uow.mappings.get_or_create("+15550001111")
    clock.advance(hours=2)
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create(WA)  # a hit: recorded, not written
    assert store._activity.pending() == 1
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.expire_idle(timedelta(hours=1)) == 1
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) is not None
        assert uow.mappings.by_wa_id("+15550001111") is None


def test_a_close_in_one_store_reaches_another_stores_near_cache(
    make_store: Callable[..., wastate.Store], postgres_url: str, redis_url: str, tenant: str
) -> None:
    """Two stores (as two processes would): pub/sub invalidates the other's L1 in time."""
    first = make_store(postgres_url, redis_url, near_cache_ttl_seconds=60)
    second = make_store(postgres_url, redis_url, near_cache_ttl_seconds=60)
    for store in (first, second):
        assert store._mapping_cache.subscription is not None
        assert store._mapping_cache.subscription.connected.wait(5)  # type: ignore[attr-defined]
    with first.unit_of_work(tenant) as uow:
        created = uow.mappings.get_or_create(WA)
    with second.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == created  # now in second's L1
    with first.unit_of_work(tenant) as uow:
        uow.mappings.close(WA)

    def closed_in_second() -> bool:
        with second.unit_of_work(tenant) as uow:
            return uow.mappings.by_wa_id(WA) is None

    wait_until(closed_in_second, seconds=2)  # pub/sub: the other store's listener thread


def test_a_store_ignores_the_echo_of_its_own_invalidation(
    make_store: Callable[..., wastate.Store], postgres_url: str, redis_url: str, tenant: str
) -> None:
    """Its own announcement, arriving after it refilled the key, leaves its L1 alone; the same
    announcement from another store clears it."""
    store = make_store(postgres_url, redis_url, near_cache_ttl_seconds=60)
    subscription = store._mapping_cache.subscription
    assert subscription is not None
    assert subscription.connected.wait(5)  # type: ignore[attr-defined]  # (connecting clears L1)
    with store.unit_of_work(tenant) as uow:
        created = uow.mappings.get_or_create(WA)
    near = store._mapping_cache.near
    assert near is not None
    key = store._mapping_cache.keys.forward(tenant, created.wa_id)
    assert near.get(key) == created

    store._mapping_cache._on_invalidation(announcement(store._mapping_cache.origin, [key]))
    assert near.get(key) == created

    store._mapping_cache._on_invalidation(announcement("another-store", [key]))
    assert near.get(key) is None


def test_a_lost_invalidation_is_bounded_by_the_near_cache_ttl(
    make_store: Callable[..., wastate.Store], postgres_url: str, redis_url: str, tenant: str
) -> None:
    """With its listener gone (every message lost), a store serves an old mapping until just
    before `near_cache_ttl_seconds` have passed since it cached it — and the truth from then on."""
    clock = FakeMonotonic()
    first = make_store(postgres_url, redis_url)
    second = make_store(postgres_url, redis_url, near_cache_ttl_seconds=5, monotonic=clock)
    subscription = second._mapping_cache.subscription
    assert subscription is not None
    subscription.close()
    with first.unit_of_work(tenant) as uow:
        created = uow.mappings.get_or_create(WA)
    expires = clock.now + 5
    with second.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == created  # in second's L1 now
    with first.unit_of_work(tenant) as uow:
        uow.mappings.close(WA)
    clock.now = math.nextafter(expires, 0)
    with second.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == created  # stale: the listener mattered
    clock.now = expires
    with second.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) is None


def test_a_store_times_its_cache_layers_by_its_monotonic_clock(
    make_store: Callable[..., wastate.Store], database_url: str, tenant: str
) -> None:
    """`wastate.connect(..., monotonic=)` reaches the near cache and the `memory://` backend:
    an L1 entry is served until just before its TTL and then comes from L2, which holds it
    until the mapping TTL, after which the database is asked."""
    clock = FakeMonotonic()
    store = make_store(
        database_url,
        "memory://",
        monotonic=clock,
        near_cache_ttl_seconds=5,
        mapping_ttl_seconds=100,
    )
    with store.unit_of_work(tenant) as uow:
        created = uow.mappings.get_or_create(WA)  # fills L1 and L2 (its L2 TTL: 90 to 100 s)
    near = store._mapping_cache.near
    assert near is not None
    key = store._mapping_cache.keys.forward(tenant, WA)
    calls = count_database_calls(store)
    start = clock.now
    clock.now = math.nextafter(start + 5, 0)
    assert near.get(key) == created
    clock.now = start + 5
    assert near.get(key) is None
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == created  # from L2, refilling L1
    assert calls == {}
    assert near.get(key) == created
    clock.now = start + 100
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == created
    assert calls == {"by_wa_id": 1}


@pytest.mark.parametrize("cache_kind", ["none", "redis", "redis-without-l1"])
def test_concurrent_misses_on_one_key_do_one_database_read(
    make_store: Callable[..., wastate.Store],
    postgres_url: str,
    tenant: str,
    cache_kind: str,
    request: pytest.FixtureRequest,
) -> None:
    """Twelve threads missing one key at once: one read, twelve equal answers (both ways)."""
    cache_url = "none://" if cache_kind == "none" else request.getfixturevalue("redis_url")
    store = make_store(
        postgres_url, cache_url, near_cache=cache_kind != "redis-without-l1", pool_size=12
    )
    with store.unit_of_work(tenant) as uow:
        created = SqlMappingRepository(uow._db).get_or_create(WA)  # in the database only
    counter = count_database_calls(store, delay=0.1)
    cache = store._mapping_cache
    for lookup, counted in [
        (lambda m: m.get_or_create(WA), "get_or_create"),
        (lambda m: m.by_conversation(created.conversation_id), "by_conversation"),
    ]:
        if cache.enabled:
            cache.invalidate(mapping_keys(store, tenant, created))
            time.sleep(0.05)
        barrier = threading.Barrier(12)
        results: list[ConversationMapping | None] = []

        def worker(
            lookup: Callable[[Any], ConversationMapping | None],
            barrier: threading.Barrier,
            results: list[ConversationMapping | None],
        ) -> None:
            barrier.wait()
            with store.unit_of_work(tenant) as uow:
                results.append(lookup(uow.mappings))

        threads = [
            threading.Thread(target=worker, args=(lookup, barrier, results)) for _ in range(12)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [created] * 12
        assert counter == {counted: 1}, counter
        counter.clear()


@pytest.mark.parametrize("cache_kind", ["none", "redis"])
def test_concurrent_creations_in_one_process_agree_and_share_nothing_uncommitted(
    make_store: Callable[..., wastate.Store],
    postgres_url: str,
    tenant: str,
    cache_kind: str,
    request: pytest.FixtureRequest,
) -> None:
    """Eight threads creating one new user: the creator's uncommitted row is not handed to the
    others (they wait for the database), and all end with the same conversation."""
    cache_url = "none://" if cache_kind == "none" else request.getfixturevalue("redis_url")
    store = make_store(postgres_url, cache_url, pool_size=8)
    counter = count_database_calls(store, delay=0.05)
    barrier = threading.Barrier(8)
    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        with store.unit_of_work(tenant) as uow:
            results.append(uow.mappings.get_or_create(WA).conversation_id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(set(results)) == 1
    assert counter["get_or_create"] >= 2  # the creation's result was not shared
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) is not None
