"""Redis killed, paused and restarted mid-run: every call still answers from the database,
quickly (the circuit breaker), and nothing stale is served once Redis is back."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from conftest import service_missing
from test_cache import count_database_calls

import wastate
from wastate.domain.mappings import ConversationMapping

WA = "+919876543210"
TIMEOUT = 0.1  # cache_timeout_seconds of the stores under test


class RedisServer:
    """A throwaway redis-server on a spare loopback port, owned by one test."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("the redis-server program")  # raises: skips, or fails in CI
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)
            self.kill()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private Redis this test may kill."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def outage_store(
    make_store: Callable[..., wastate.Store], postgres_url: str, redis_server: RedisServer
) -> Callable[..., wastate.Store]:
    """Stores on the private Redis with short timeouts and a fast breaker probe."""

    def make(**options: object) -> wastate.Store:
        store = make_store(postgres_url, redis_server.url, cache_timeout_seconds=TIMEOUT, **options)
        store.mapping_cache.remote.retry_seconds = 0.1
        return store

    return make


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


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
    assert store.mapping_cache.remote.is_open


def test_a_paused_redis_costs_one_timeout_not_one_per_call(
    outage_store: Callable[..., wastate.Store], redis_server: RedisServer, tenant: str
) -> None:
    """Slow Redis: the first call pays the socket timeout, the breaker spares the rest."""
    store = outage_store(near_cache=False)
    with store.unit_of_work(tenant) as uow:
        known = uow.mappings.get_or_create(WA)
    redis_server.pause()
    started = time.perf_counter()
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == known
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(50):
        with store.unit_of_work(tenant) as uow:
            assert uow.mappings.by_wa_id(WA) == known
    rest = time.perf_counter() - started
    assert first < 5 * TIMEOUT
    assert rest < 50 * TIMEOUT / 5, f"50 calls took {rest:.3f}s: the breaker did not open"
    redis_server.resume()


def test_a_close_during_the_outage_is_not_undone_when_redis_returns_with_the_old_entry(
    outage_store: Callable[..., wastate.Store], redis_server: RedisServer, tenant: str
) -> None:
    """Redis paused (it keeps its data), a close commits, Redis resumes holding the active
    entry: the failed invalidation is replayed before Redis serves reads again."""
    store = outage_store(near_cache=False)
    with store.unit_of_work(tenant) as uow:
        first = uow.mappings.get_or_create(WA)
    forward = store.mapping_cache.keys.forward(tenant, WA)
    assert redis_server.client().get(forward)  # the active mapping is cached
    redis_server.pause()
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.close(WA) is not None
    assert store.mapping_cache.remote.pending >= 2
    redis_server.resume()
    # The old entry is still in Redis now; reads must never return it.
    for _ in range(40):
        with store.unit_of_work(tenant) as uow:
            assert uow.mappings.by_wa_id(WA) is None
            closed = uow.mappings.by_conversation(first.conversation_id)
            assert closed is not None
            assert closed.status == "closed"
        time.sleep(0.01)
    wait_until(lambda: not store.mapping_cache.remote.is_open)
    assert store.mapping_cache.remote.pending == 0
    assert redis_server.client().get(forward) in (None, b"")  # tombstoned by the replay
    with store.unit_of_work(tenant) as uow:
        second = uow.mappings.get_or_create(WA)
        assert second.conversation_id != first.conversation_id


def test_the_cache_is_used_again_after_redis_restarts(
    outage_store: Callable[..., wastate.Store], redis_server: RedisServer, tenant: str
) -> None:
    """Killed and restarted: the breaker closes by itself and hits stop costing SQL again."""
    store = outage_store(near_cache=False)
    with store.unit_of_work(tenant) as uow:
        known = uow.mappings.get_or_create(WA)
    redis_server.kill()
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == known
    assert store.mapping_cache.remote.is_open
    redis_server.start()
    wait_until(lambda: not store.mapping_cache.remote.is_open)
    failures = store.mapping_cache.remote.failures
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == known  # a miss that refills Redis
    store.mapping_cache.settle()  # the fill is sent without waiting for its reply
    calls = count_database_calls(store)
    with store.unit_of_work(tenant) as uow:
        assert uow.mappings.by_wa_id(WA) == known
    assert calls == {}
    # The fill connection that died with the old server was replaced without a new outage.
    assert store.mapping_cache.remote.failures == failures


def test_a_fill_whose_reply_never_comes_opens_the_breaker_when_settled(
    outage_store: Callable[..., wastate.Store], redis_server: RedisServer, tenant: str
) -> None:
    """Fills do not wait for Redis, but a Redis that stops answering is still noticed."""
    store = outage_store(near_cache=False)
    cache = store.mapping_cache
    with store.unit_of_work(tenant) as uow:
        uow.mappings.get_or_create("+15550001111")  # opens the fill connection
    cache.settle()
    redis_server.pause()
    cache.remote.fill([(cache.keys.forward(tenant, "+15550002222"), b"{}")], 10)  # no reply
    assert not cache.remote.is_open
    started = time.monotonic()
    cache.settle()
    assert time.monotonic() - started < 10 * TIMEOUT
    assert cache.remote.is_open
    redis_server.resume()
    wait_until(lambda: not cache.remote.is_open)
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
    cache = store.mapping_cache
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
    subscription = store.mapping_cache.subscription
    near = store.mapping_cache.near
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
