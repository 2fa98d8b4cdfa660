"""Redis killed, paused and restarted mid-run: every call still answers from the database,
quickly (the circuit breaker), and nothing stale is served once Redis is back.

The stores run on a fake monotonic clock: the breaker stays open until a test moves the clock
past its probe time, so "still open" and "closed again" are steps of the test, not races with
the probe thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from helpers import FakeMonotonic, RedisServer, count_database_calls, wait_until

import wastate
from wastate.domain.mappings import ConversationMapping

WA = "+919876543210"
TIMEOUT = 0.1  # cache_timeout_seconds of the stores under test
RETRY = 0.1  # the breaker's retry_seconds: on the fake clock, and the prober's real re-read period


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private Redis this test may kill."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def monotonic() -> FakeMonotonic:
    """The outage stores' monotonic clock (their breakers probe when the test moves it)."""
    return FakeMonotonic()


@pytest.fixture
def outage_store(
    make_store: Callable[..., wastate.Store],
    postgres_url: str,
    redis_server: RedisServer,
    monotonic: FakeMonotonic,
) -> Callable[..., wastate.Store]:
    """Stores on the private Redis with short timeouts, on the fake monotonic clock; their
    probe thread re-reads that clock every 0.1 real seconds."""

    def make(**options: object) -> wastate.Store:
        store = make_store(
            postgres_url,
            redis_server.url,
            cache_timeout_seconds=TIMEOUT,
            monotonic=monotonic,
            **options,
        )
        store._mapping_cache.remote.retry_seconds = RETRY
        return store

    return make


def breaker_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wastate.cache.breaker"]


def reach_probe_time(monotonic: FakeMonotonic) -> None:
    """Move the clock to when a breaker opened at the current reading probes."""
    monotonic.advance(RETRY)


def test_every_call_answers_from_the_database_while_redis_is_dead(
    outage_store: Callable[..., wastate.Store], redis_server: RedisServer, tenant: str
) -> None:
    """Killed Redis: lookups, creations and closes all work, and return the database's truth."""
    store = outage_store(near_cache=False)
    with store.unit_of_work(tenant) as uow:
        known = uow.mappings.get_or_create(WA)
    redis_server.kill()
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.get_or_create(WA) == known
        assert uow.mappings.by_conversation(known.conversation_id) is not None
        fresh = uow.mappings.get_or_create("+15550001111")
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id("+15550001111") == fresh
        assert uow.mappings.close(WA) is not None
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) is None
    assert store._mapping_cache.remote.is_open


def test_a_paused_redis_costs_one_timeout_not_one_per_call(
    outage_store: Callable[..., wastate.Store],
    redis_server: RedisServer,
    tenant: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Slow Redis: the first call ends at the socket timeout (one warning), the breaker spares
    the rest: they never reach Redis, so no second call fails."""
    store = outage_store(near_cache=False)
    remote = store._mapping_cache.remote
    with store.unit_of_work(tenant) as uow:
        known = uow.mappings.get_or_create(WA)
    redis_server.pause()
    with caplog.at_level(logging.WARNING, logger="wastate.cache.breaker"):
        with store.unit_of_work(tenant) as uow:
            assert uow.mappings.by_wa_id(WA) == known
        for _ in range(50):
            with store.unit_of_work(tenant) as uow:
                assert uow.mappings.by_wa_id(WA) == known
    assert (remote.state, remote.failures) == ("open", 1)
    (warning,) = breaker_warnings(caplog)
    assert "Timeout" in warning
    redis_server.resume()


def test_a_close_during_the_outage_is_not_undone_when_redis_returns_with_the_old_entry(
    outage_store: Callable[..., wastate.Store],
    redis_server: RedisServer,
    tenant: str,
    monotonic: FakeMonotonic,
) -> None:
    """Redis paused (it keeps its data), a close commits, Redis resumes holding the active
    entry: until the probe, reads skip Redis; the probe replays the failed invalidation before
    Redis serves reads again."""
    store = outage_store(near_cache=False)
    remote = store._mapping_cache.remote
    with store.unit_of_work(tenant) as uow:
        first = uow.mappings.get_or_create(WA)
    forward = store._mapping_cache.keys.forward(tenant, WA)
    old_entry = redis_server.client().get(forward)
    assert old_entry  # the active mapping is cached
    redis_server.pause()
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.close(WA) is not None
    assert remote.pending >= 2
    redis_server.resume()
    # The tombstone written before the timeout may still reach Redis from the socket buffer;
    # across a network partition it would not: put the old entry back, as such a Redis holds it.
    redis_server.client().set(forward, old_entry)
    probe_at = monotonic.now + RETRY
    monotonic.now = math.nextafter(probe_at, 0)
    for _ in range(3):  # just before the probe: Redis answers again, yet is not read
        with store.unit_of_work(tenant) as uow:
            assert uow.mappings.by_wa_id(WA) is None
            closed = uow.mappings.by_conversation(first.conversation_id)
            assert closed is not None
            assert closed.status == "closed"
    assert (remote.state, remote.probe()) == ("open", False)
    monotonic.now = probe_at
    assert remote.state in ("half-open", "closed")  # (the probe thread may be quicker)
    assert remote.probe()
    assert remote.pending == 0
    assert redis_server.client().get(forward) in (None, b"")  # tombstoned by the replay
    with store.unit_of_work(tenant) as uow:
        second = uow.mappings.get_or_create(WA)
        assert second.conversation_id != first.conversation_id


def test_the_cache_is_used_again_after_redis_restarts(
    outage_store: Callable[..., wastate.Store],
    redis_server: RedisServer,
    tenant: str,
    monotonic: FakeMonotonic,
) -> None:
    """Killed and restarted: the breaker closes by itself (its probe thread, once the probe is
    due) and hits stop costing SQL again."""
    store = outage_store(near_cache=False)
    with store.unit_of_work(tenant) as uow:
        known = uow.mappings.get_or_create(WA)
    redis_server.kill()
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == known
    assert store._mapping_cache.remote.is_open
    redis_server.start()
    assert store._mapping_cache.remote.state == "open"
    reach_probe_time(monotonic)
    wait_until(lambda: not store._mapping_cache.remote.is_open)  # the probe thread's work
    failures = store._mapping_cache.remote.failures
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == known  # a miss that refills Redis
    store._mapping_cache.settle()  # the fill is sent without waiting for its reply
    calls = count_database_calls(store)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == known
    assert calls == {}
    # The fill connection that died with the old server was replaced without a new outage.
    assert store._mapping_cache.remote.failures == failures


def test_a_fill_whose_reply_never_comes_opens_the_breaker_when_settled(
    outage_store: Callable[..., wastate.Store],
    redis_server: RedisServer,
    tenant: str,
    monotonic: FakeMonotonic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fills do not wait for Redis, but a Redis that stops answering is still noticed: the
    settle ends at the socket timeout and opens the breaker."""
    store = outage_store(near_cache=False)
    cache = store._mapping_cache
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+15550001111")  # opens the fill connection
    cache.settle()
    redis_server.pause()
    cache.remote.fill([(cache.keys.forward(tenant, "+15550002222"), b"{}")], 10)  # no reply
    assert not cache.remote.is_open
    with caplog.at_level(logging.WARNING, logger="wastate.cache.breaker"):
        cache.settle()
    assert cache.remote.is_open
    (warning,) = breaker_warnings(caplog)
    assert "Timeout" in warning
    redis_server.resume()
    reach_probe_time(monotonic)
    assert cache.remote.probe()
    with store.unit_of_work(tenant) as uow:
        created = uow.mappings.get_or_create(WA)
    cache.settle()
    assert not cache.remote.is_open
    raw = redis_server.client().get(cache.keys.forward(tenant, WA))
    assert raw is not None
    assert ConversationMapping.model_validate_json(raw) == created


def test_fills_into_a_stalled_redis_cost_each_caller_one_timeout_at_most(
    outage_store: Callable[..., wastate.Store], redis_server: RedisServer, tenant: str
) -> None:
    """Fills share one connection, yet callers stuck behind a stalled one do not queue up."""
    store = outage_store(near_cache=False)
    cache = store._mapping_cache
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create(WA)  # opens the fill connection
    cache.settle()
    redis_server.pause()
    callers = 16
    durations: list[float] = []

    def fill(number: int) -> None:
        started = time.monotonic()
        cache.remote.fill([(cache.keys.forward(tenant, f"+1555000{number:04d}"), b"{}")], 10)
        durations.append(time.monotonic() - started)

    threads = [threading.Thread(target=fill, args=(number,)) for number in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One after another they would take callers × TIMEOUT (1.6 s) for the last one.
    assert max(durations) < callers * TIMEOUT / 2
    assert cache.remote.is_open


def test_the_near_cache_is_cleared_when_its_listener_reconnects(
    outage_store: Callable[..., wastate.Store], redis_server: RedisServer, tenant: str
) -> None:
    """Invalidations sent while the listener was away are lost: so the L1 starts over."""
    store = outage_store(near_cache_ttl_seconds=600)
    subscription = store._mapping_cache.subscription
    near = store._mapping_cache.near
    assert subscription is not None
    assert near is not None
    assert subscription.connected.wait(5)  # type: ignore[attr-defined]
    with store.unit_of_work(tenant) as uow:
        found: ConversationMapping = uow.mappings.get_or_create(WA)
    assert len(near) == 2
    redis_server.kill()
    wait_until(lambda: not subscription.connected.is_set())  # type: ignore[attr-defined]
    redis_server.start()
    wait_until(subscription.connected.is_set)  # type: ignore[attr-defined]
    assert len(near) == 0
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.get_or_create(WA) == found
