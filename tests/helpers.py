"""Test helpers shared by several test modules, in one place (test modules never import each
other): fake clocks, a throwaway redis-server, a database-call counter, a bounded wait, a real
`wastate serve` process, and the paths of the checkout.

Import them as `from helpers import FakeClock` from any test folder: tests/conftest.py is the
rootdir conftest, and pytest puts its folder, `tests/`, on the path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from conftest import service_missing

import wastate
from wastate.cache import CachedMappingRepository
from wastate.domain.mappings import ConversationMapping
from wastate.repositories.mappings import SqlMappingRepository

__all__ = [
    "ROOT",
    "TESTS",
    "WASTATE",
    "CountingMappings",
    "FakeClock",
    "FakeMonotonic",
    "RedisServer",
    "Server",
    "clean_environment",
    "count_database_calls",
    "free_port",
    "serving",
    "wait_until",
]

# Paths by what they are, not by how deep a test module sits (tests live in sub-folders).
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# The console script of the interpreter running the tests (the venv's `wastate`).
WASTATE = Path(sys.executable).with_name("wastate")
# Variables that would point a server somewhere else than the test says.
_CONFIG_VARS = ("WASTATE_", "DB_", "REDIS_")


class FakeClock:
    """A wall clock the test moves by hand: aware UTC datetimes, for a store's `clock=`."""

    def __init__(self, now: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeMonotonic:
    """Monotonic seconds the test moves by hand, for a store's (or a cache layer's)
    `monotonic=`: the near cache, `memory://` and the circuit breaker read time only through it,
    so a bound can be checked exactly (set `now` to `math.nextafter(bound, 0)`, then to `bound`)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll `condition` until it holds; fail after `seconds` (for work another thread or process
    does: a pub/sub message arriving, a server starting, a background probe)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


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

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, seconds=10)
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


def count_database_calls(store: wastate.Store, delay: float = 0.0) -> dict[str, int]:
    """From now on, count the calls `store`'s caching decorator makes to the SQL repository."""
    counter: dict[str, int] = {}
    cache = store._mapping_cache
    # The store hands each unit of work its parts: swap in a mapping factory that counts.
    store._uow_resources = dataclasses.replace(
        store._uow_resources,
        mappings=lambda db: CachedMappingRepository(
            CountingMappings(SqlMappingRepository(db), counter, delay), db, cache
        ),
    )
    return counter


class CountingMappings:
    """The SQL repository with every call counted (optionally slowed, so threads overlap).

    Every database statement of the mapping family goes through it, so a count of zero means
    the database was not asked."""

    def __init__(
        self, inner: SqlMappingRepository, counter: dict[str, int], delay: float = 0.0
    ) -> None:
        self._inner = inner
        self._counter = counter
        self._delay = delay
        self._lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._lock:
            self._counter[name] = self._counter.get(name, 0) + 1
        if self._delay:
            time.sleep(self._delay)

    def by_wa_id(self, wa_id: str) -> ConversationMapping | None:
        self._count("by_wa_id")
        return self._inner.by_wa_id(wa_id)

    def by_conversation(self, conversation_id: str) -> ConversationMapping | None:
        self._count("by_conversation")
        return self._inner.by_conversation(conversation_id)

    def __getattr__(self, name: str) -> Any:
        self._count(name)
        return getattr(self._inner, name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """A running `wastate serve` on 127.0.0.1."""

    process: subprocess.Popen[str]
    port: int

    @property
    def base(self) -> str:
        return f"http://localhost:{self.port}"


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIG_VARS)}
    env.update(extra)
    return env


@contextlib.contextmanager
def serving(cwd: Path, env: dict[str, str], *options: str, workers: int = 1) -> Iterator[Server]:
    """Start `wastate [options] serve` on a free port, wait for /health, stop it at the end."""
    port = free_port()
    serve = ["serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    process = subprocess.Popen(
        [str(WASTATE), *options, *serve],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(process, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"wastate serve exited {process.returncode}: {process.stderr.read()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail("wastate serve did not answer /health within 60 s")
            time.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
