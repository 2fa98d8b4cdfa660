"""Races: threads and processes (each with its own StateManager) on one client at once.

Two racing approvers can never both win, and no increment is ever lost: the compare-and-set move
and the in-database counter upsert make it so, whatever the number of processes.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from wastate.state_manager import MessageStatus, StateManager

S = MessageStatus
ROUNDS = 3
THREADS = 8
PROCESSES = 4
ADDS_PER_PROCESS = 1000
SHARED_IDS = 50


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        barrier.wait(timeout=30)
        return work(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_racing_threads_approve_a_message_once(database_url: str, tenant: str) -> None:
    """8 threads move one message pending_approval → approved at once: exactly one True."""
    with StateManager(database_url, "none://", tenant_id=tenant) as manager:
        for round_ in range(ROUNDS):
            message_id = f"race-{round_}"
            manager.add_message({"id": message_id}, S.PENDING_APPROVAL)
            results = _in_threads(
                THREADS,
                lambda _i, m=message_id: manager.move_message(  # type: ignore[misc]
                    m, S.PENDING_APPROVAL, S.APPROVED
                ),
            )
            assert sorted(results) == [False] * (THREADS - 1) + [True]
        assert manager.get_statistics()["total_approved"] == ROUNDS
        assert len(manager.get_messages(S.APPROVED)) == ROUNDS
        assert manager.get_messages(S.PENDING_APPROVAL) == []


@pytest.mark.slow
def test_threads_adding_lose_nothing(database_url: str, tenant: str) -> None:
    """4 threads add 250 messages each, and all race on 50 shared ids: every message once,
    every add counted once."""
    with StateManager(database_url, "none://", tenant_id=tenant) as manager:

        def work(index: int) -> int:
            added = 0
            for n in range(250):
                manager.add_message({"id": f"t{index}-{n}"}, S.INCOMING)
                if n < SHARED_IDS:
                    added += manager.add_message({"id": f"shared-{n}"}, S.INCOMING)
            return added

        assert sum(_in_threads(4, work)) == SHARED_IDS
        assert len(manager.get_messages(S.INCOMING)) == 4 * 250 + SHARED_IDS
        assert manager.get_statistics()["total_incoming"] == 4 * 250 + SHARED_IDS


# -- processes (spawned: nothing shared but the database) ------------------------------------


def _approve_in_process(url: str, tenant: str, barrier: Any, results: Any) -> None:
    with StateManager(url, "none://", tenant_id=tenant) as manager:
        for round_ in range(ROUNDS):
            barrier.wait(timeout=60)
            moved = manager.move_message(f"race-{round_}", S.PENDING_APPROVAL, S.APPROVED)
            results.put((round_, moved))


def _add_in_process(url: str, tenant: str, index: int, barrier: Any, results: Any) -> None:
    with StateManager(url, "none://", tenant_id=tenant) as manager:
        barrier.wait(timeout=60)
        shared_added = 0
        for n in range(ADDS_PER_PROCESS):
            manager.add_message({"id": f"p{index}-{n}", "n": n}, S.INCOMING)
            if n < SHARED_IDS:
                shared_added += manager.add_message({"id": f"shared-{n}"}, S.INCOMING)
        results.put(shared_added)


def _run_processes(
    target: Callable[..., None], args: list[tuple[Any, ...]], expected: int
) -> list[Any]:
    """Start one spawned process per `args`, collect `expected` results, check clean exits."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(args))
    results = context.Queue()
    processes = [context.Process(target=target, args=(*a, barrier, results)) for a in args]
    for process in processes:
        process.start()
    try:
        # Read before joining: a worker exits only once its queued results are taken.
        collected = [results.get(timeout=300) for _ in range(expected)]
        for process in processes:
            process.join(timeout=60)
            assert process.exitcode == 0, f"worker failed with exit code {process.exitcode}"
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    return collected


@pytest.mark.slow
def test_racing_processes_approve_a_message_once(postgres_url: str, tenant: str) -> None:
    """4 processes, each with its own StateManager, move one message at once: one True."""
    with StateManager(postgres_url, "none://", tenant_id=tenant) as manager:
        for round_ in range(ROUNDS):
            manager.add_message({"id": f"race-{round_}"}, S.PENDING_APPROVAL)
        results = _run_processes(
            _approve_in_process,
            [(postgres_url, tenant) for _ in range(PROCESSES)],
            expected=ROUNDS * PROCESSES,
        )
        assert len(results) == ROUNDS * PROCESSES
        for round_ in range(ROUNDS):
            wins = [moved for r, moved in results if r == round_]
            assert sorted(wins) == [False] * (PROCESSES - 1) + [True]
        assert manager.get_statistics()["total_approved"] == ROUNDS


@pytest.mark.slow
def test_processes_adding_lose_nothing(postgres_url: str, tenant: str) -> None:
    """4 processes add 1000 messages each (and race on 50 shared ids): all 4000 (+50) present,
    total_incoming counts each exactly once."""
    results = _run_processes(
        _add_in_process,
        [(postgres_url, tenant, index) for index in range(PROCESSES)],
        expected=PROCESSES,
    )
    assert sum(results) == SHARED_IDS
    expected = PROCESSES * ADDS_PER_PROCESS + SHARED_IDS
    with StateManager(postgres_url, "none://", tenant_id=tenant) as manager:
        ids = [m["id"] for m in manager.get_messages(S.INCOMING)]
        assert len(ids) == len(set(ids)) == expected
        assert manager.get_statistics()["total_incoming"] == expected
