"""End to end: a real `wastate serve` process answers the seed's Verification Steps 2-5 — its curl
commands, as written — on the embedded default (SQLite file + in-process cache, no configuration
at all) and on PostgreSQL + Redis.

Step 5 (`PATCH` with no tenant) is run twice: with `X-Tenant-ID` added, and exactly as written
against a server started with `WASTATE_DEFAULT_TENANT=demo-tenant-001`; without a default tenant
the unscoped PATCH is a 400 (the seed's cross-tenant update bug, closed on purpose).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import WASTATE, clean_environment, free_port, serving

from wastate.cache.base import Cache, NullCache
from wastate.cache.mappings import MappingCache
from wastate.cache.memory import MemoryCache
from wastate.cache.redis import RedisCache
from wastate.cli import worker_cache_overrides
from wastate.settings import load_settings

TENANT = "demo-tenant-001"
WA_ID = "+919876543210"


def curl(*args: str) -> tuple[int, Any]:
    """Run a seed curl line (its arguments after `curl`); the status and the JSON answer."""
    if shutil.which("curl") is None:
        return _curl_with_httpx(list(args))
    out = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body) if body else None


def _curl_with_httpx(args: list[str]) -> tuple[int, Any]:
    """The same request through httpx, for machines without curl."""
    method, url, headers, data = "GET", "", {}, None
    while args:
        flag = args.pop(0)
        if flag == "-X":
            method = args.pop(0)
        elif flag == "-H":
            name, _, value = args.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif flag == "-d":
            data = args.pop(0)
        else:
            url = flag
    answer = httpx.request(method, url, headers=headers, content=data, timeout=30)
    return answer.status_code, answer.json() if answer.content else None


def seed_steps_2_to_4(base: str) -> str:
    """Steps 2-4 as written; returns the conversation id. Asserts the seed's answers."""
    # Step 2: forward mapping.
    status, mapping = curl(
        "-X", "GET", f"{base}/state/mapping/{WA_ID}", "-H", f"X-Tenant-ID: {TENANT}"
    )
    assert status == 200
    assert mapping["waId"] == WA_ID
    assert mapping["tenantId"] == TENANT
    uuid.UUID(mapping["conversationId"])  # "generated-uuid"
    conversation_id: str = mapping["conversationId"]

    # Step 3: reverse mapping.
    status, reverse = curl(
        "-X", "GET", f"{base}/state/conversation/{conversation_id}", "-H", f"X-Tenant-ID: {TENANT}"
    )
    assert status == 200
    assert (reverse["conversationId"], reverse["waId"]) == (conversation_id, WA_ID)

    # Step 4: message tracking (tenant in the body, no header).
    body = {
        "metaMessageId": "wamid.test123",
        "conversationId": conversation_id,
        "tenantId": TENANT,
        "direction": "inbound",
        "status": "sent",
        "messageType": "text",
    }
    status, tracked = curl(
        "-X", "POST", f"{base}/state/message",
        "-H", "Content-Type: application/json",
        "-d", json.dumps(body),
    )  # fmt: skip
    assert status == 201
    assert tracked["message"] == "Message tracked successfully"
    return conversation_id


def step_5(base: str, *headers: str) -> tuple[int, Any]:
    """Step 5 as written, plus any extra -H arguments."""
    return curl(
        "-X", "PATCH", f"{base}/state/message/wamid.test123",
        "-H", "Content-Type: application/json", *headers,
        "-d", '{"status": "delivered"}',
    )  # fmt: skip


def assert_delivered(answer: tuple[int, Any], conversation_id: str) -> None:
    status, body = answer
    assert status == 200
    assert body["message"] == "Status updated successfully"
    assert body["trackedMessage"]["status"] == "delivered"
    assert body["trackedMessage"]["conversationId"] == conversation_id
    assert body["trackedMessage"]["deliveredAt"] is not None


Backend = Callable[[Path], tuple[dict[str, str], tuple[str, ...]]]


@pytest.fixture(params=["embedded", "postgresql+redis"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """How to configure a fresh server: environment and global CLI options, per backend."""
    if request.param == "embedded":
        # No configuration at all: ./wastate.db in the working directory, memory cache.
        return lambda _cwd: (clean_environment(), ())

    make_database: Callable[[], str] = request.getfixturevalue("make_postgres_database")
    redis_url: str = request.getfixturevalue("redis_url")

    def postgres(cwd: Path) -> tuple[dict[str, str], tuple[str, ...]]:
        url = make_database()
        env = clean_environment(
            WASTATE_DATABASE_URL=url,
            WASTATE_CACHE_URL=redis_url,
            # A fresh database per server: keep its cache entries apart from the others'.
            WASTATE_CACHE_PREFIX=f"e2e{uuid.uuid4().hex[:8]}",
        )
        migrated = subprocess.run(
            [str(WASTATE), "migrate"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
        assert migrated.returncode == 0, migrated.stderr
        return env, ()

    return postgres


@pytest.mark.slow
def test_the_seed_verification_steps_with_a_tenant_header(backend: Backend, tmp_path: Path) -> None:
    """Steps 2-5 answer as the seed says; step 5 with X-Tenant-ID; unscoped step 5 is a 400."""
    env, options = backend(tmp_path)
    with serving(tmp_path, env, *options) as server:
        conversation_id = seed_steps_2_to_4(server.base)
        unscoped = step_5(server.base)
        assert unscoped[0] == 400
        assert unscoped[1]["error"] == "X-Tenant-ID header required"
        assert_delivered(step_5(server.base, "-H", f"X-Tenant-ID: {TENANT}"), conversation_id)
        status, health = curl(f"{server.base}/health")
        assert (status, health["status"], health["service"]) == (200, "healthy", "state-manager")
    if not options and "WASTATE_DATABASE_URL" not in env:
        assert (tmp_path / "wastate.db").is_file()  # the embedded default, created and migrated


@pytest.mark.slow
def test_the_seed_verification_steps_as_written_with_a_default_tenant(
    backend: Backend, tmp_path: Path
) -> None:
    """With WASTATE_DEFAULT_TENANT=demo-tenant-001, step 5 works exactly as the seed wrote it."""
    env, options = backend(tmp_path)
    env["WASTATE_DEFAULT_TENANT"] = TENANT
    with serving(tmp_path, env, *options) as server:
        conversation_id = seed_steps_2_to_4(server.base)
        assert_delivered(step_5(server.base), conversation_id)


@pytest.mark.slow
def test_two_workers_serve_the_seed_steps(
    make_postgres_database: Callable[[], str], redis_url: str, tmp_path: Path
) -> None:
    """`serve --workers 2` (uvicorn factory mode, a store per worker) answers steps 2-5."""
    url = make_postgres_database()
    env = clean_environment(
        WASTATE_CACHE_URL=redis_url,
        WASTATE_CACHE_PREFIX=f"e2e{uuid.uuid4().hex[:8]}",
        WASTATE_DEFAULT_TENANT=TENANT,
    )
    migrated = subprocess.run(
        [str(WASTATE), "--database-url", url, "migrate"], env=env, capture_output=True, timeout=120
    )
    assert migrated.returncode == 0
    # The URL goes in as a global option: serve hands it down to the worker processes.
    with serving(tmp_path, env, "--database-url", url, workers=2) as server:
        conversation_id = seed_steps_2_to_4(server.base)
        assert_delivered(step_5(server.base), conversation_id)
        # Many lookups over fresh connections land on both workers; all agree.
        seen = {
            httpx.get(f"{server.base}/state/mapping/{WA_ID}", timeout=10).json()["conversationId"]
            for _ in range(20)
        }
        assert seen == {conversation_id}


def test_serve_refuses_an_unmigrated_postgresql_database_in_one_line(
    make_postgres_database: Callable[[], str], tmp_path: Path
) -> None:
    """The real process exits 1 with one line telling the operator to run `wastate migrate`."""
    url = make_postgres_database()
    done = subprocess.run(
        [str(WASTATE), "--database-url", url, "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "wastate migrate" in done.stderr


@pytest.mark.slow
def test_several_workers_on_the_embedded_default_never_serve_a_closed_conversation(
    tmp_path: Path,
) -> None:
    """`serve --workers 2` with no configuration (as docs/http.md shows it): the process-local
    `memory://` cache cannot reach the other worker, so `serve` turns caching off and says so in
    one line; after a close handled by one worker, no lookup on any worker answers with the
    closed conversation."""
    with serving(tmp_path, clean_environment(), workers=2) as server:
        headers = {"X-Tenant-ID": TENANT}

        def lookup(path: str) -> dict[str, Any]:
            # A new connection per request: the kernel hands each to either worker.
            answer = httpx.get(f"{server.base}{path}", headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

        first = lookup(f"/state/mapping/{WA_ID}")["conversationId"]
        # Warm every worker's cache with the active mapping (40 connections reach both).
        assert {lookup(f"/state/mapping/{WA_ID}")["conversationId"] for _ in range(40)} == {first}

        closed = httpx.post(
            f"{server.base}/state/mapping/{WA_ID}/close", headers=headers, timeout=10
        )
        assert closed.status_code == 200, closed.text
        assert closed.json()["status"] == "closed"

        # The next message starts a new conversation, whichever worker answers; the closed one
        # reads as closed everywhere.
        after = [lookup(f"/state/mapping/{WA_ID}") for _ in range(60)]
        assert all(m["conversationId"] != first and m["status"] == "active" for m in after), after
        assert len({m["conversationId"] for m in after}) == 1
        reverse = [lookup(f"/state/conversation/{first}")["status"] for _ in range(30)]
        assert set(reverse) == {"closed"}
    stderr = server.process.stderr.read() if server.process.stderr else ""
    notes = [line for line in stderr.splitlines() if "memory://" in line]
    assert len(notes) == 1, stderr  # the one line saying why, and how to share a cache
    assert "none://" in notes[0]
    assert "redis://" in notes[0]
    assert "cache none://" in stderr  # and the serving line tells the cache actually used


@pytest.mark.slow
@pytest.mark.parametrize(("signame", "status"), [("SIGTERM", -signal.SIGTERM), ("SIGINT", 0)])
def test_a_stopped_server_is_no_error(tmp_path: Path, signame: str, status: int) -> None:
    """SIGTERM ends `serve` as it always did (uvicorn shuts down, then dies of the signal) and
    ^C ends it with status 0: stopping a server is not reported as an error."""
    with serving(tmp_path, clean_environment()) as server:
        server.process.send_signal(getattr(signal, signame))
        assert server.process.wait(timeout=30) == status
    stderr = server.process.stderr.read() if server.process.stderr else ""
    assert "Error" not in stderr, stderr
    assert "Traceback" not in stderr, stderr


class _NoActivity:
    def record(self, mapping: Any) -> None:
        """Nothing to record in these tests."""

    def take(self, tenant_id: str) -> list[Any]:
        return []


class _SharedWithoutPubSub(MemoryCache):
    """A plug-in backend other processes share, but with no pub/sub (`subscribe` → None)."""

    shared = True


def _overrides(backend: Cache, url: str) -> tuple[dict[str, str], str | None]:
    cache = MappingCache(backend, activity=_NoActivity())
    try:
        return worker_cache_overrides(cache.reach(), url)
    finally:
        cache.close()


def test_serve_adapts_the_cache_by_what_the_backend_reaches(redis_url: str) -> None:
    """The decision reads the backend's properties, not its URL: a process-local backend becomes
    none://, a shared one without pub/sub loses the near cache, Redis stays as configured."""
    local, why = _overrides(MemoryCache("memory://"), "memory://")
    assert local == {"WASTATE_CACHE_URL": "none://"}
    assert why is not None
    assert "\n" not in why
    no_pubsub, why = _overrides(_SharedWithoutPubSub("plugin://"), "plugin://")
    assert no_pubsub == {"WASTATE_NEAR_CACHE": "false"}
    assert why is not None
    assert "\n" not in why
    assert _overrides(RedisCache(redis_url, load_settings()), redis_url) == ({}, None)
    assert _overrides(NullCache("none://", load_settings()), "none://") == ({}, None)
