"""Cross-process storm: 16 processes (spawned, each with its own store on PostgreSQL and Redis)
ask for the same 50 new wa_ids at the same moment. The database's partial unique index makes
exactly one conversation per user, and every process is told that one."""

from __future__ import annotations

import multiprocessing
import queue
import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import wastate

pytestmark = pytest.mark.slow

PROCESSES = 16
USERS = [f"+1555{number:07d}" for number in range(50)]


def storm_worker(
    database_url: str,
    cache_url: str,
    tenant: str,
    barrier: Any,
    results: Any,
) -> None:
    """One process: connect, wait for the others, then get_or_create every user."""
    store = wastate.connect(database_url, cache_url, pool_size=2)
    try:
        with store.unit_of_work(tenant) as uow:
            uow.mappings.by_wa_id(USERS[0])  # warm the connection before the race
        barrier.wait(timeout=120)
        seen = {}
        for wa_id in USERS:
            with store.unit_of_work(tenant) as uow:
                seen[wa_id] = uow.mappings.get_or_create(wa_id).conversation_id
        results.put(("ok", seen))
    except BaseException as exc:
        results.put(("error", repr(exc)))
    finally:
        store.close()


def test_sixteen_processes_racing_on_fifty_new_users_make_fifty_conversations(
    postgres_url: str, redis_url: str
) -> None:
    """Exactly 50 active mappings, and all 16 processes saw the same conversation per user."""
    tenant = f"storm-{uuid.uuid4().hex[:10]}"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(
            target=storm_worker, args=(postgres_url, redis_url, tenant, barrier, results)
        )
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = []
    try:
        for _ in range(PROCESSES):
            outcomes.append(results.get(timeout=240))
    except queue.Empty:
        pytest.fail(f"only {len(outcomes)} of {PROCESSES} processes reported")
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    errors = [detail for status, detail in outcomes if status != "ok"]
    assert errors == []
    views = [detail for _, detail in outcomes]
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT wa_id, conversation_id FROM conversation_mappings"
                    " WHERE tenant_id = :tenant AND status = 'active'"
                ),
                {"tenant": tenant},
            ).all()
    finally:
        engine.dispose()
    truth = dict(rows)
    assert len(rows) == len(USERS) == len(truth)
    assert all(view == truth for view in views)
