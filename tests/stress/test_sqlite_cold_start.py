"""Cold start of the embedded default: N processes open their first connections to one SQLite
file at the same moment, round after round, and every one of them succeeds.

Three kinds of file, a fresh one per round:
- brand new (no file): the processes bootstrap the schema at once, as `StateManager()` and the
  workers of `wastate serve --workers N` (`prepare_schema`) do on first use;
- migrated and idle, still in rollback-journal mode (as `alembic upgrade head` or an older
  wastate leave it): the first connections switch it to WAL at once;
- migrated and idle, already in WAL mode.

The processes are spawned once and reused (each round builds new stores, hence new connections
and a new SQLite pager per process): that keeps the test cheap on a small machine while every
round is a real cold start of that file. Nothing here measures time.

Two processes must meet within microseconds to hit the journal-mode race, so the idle-file rounds
catch it only in some runs; the one-process tests at the end provoke it every time.
"""

from __future__ import annotations

import multiprocessing
import queue
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

import wastate
from wastate.db.engine import SQLITE_BUSY_TIMEOUT_MS, switch_to_wal
from wastate.http.app import prepare_schema
from wastate.migrations import migrate
from wastate.state_manager import MessageStatus, StateManager

PROCESSES = 6
TENANT = "cold-start"


def _unit_of_work(store: wastate.Store, index: int) -> None:
    """The first unit of work of a process: a get_or_create and a track."""
    with store.unit_of_work(TENANT) as uow:
        uow.mappings.get_or_create(f"+9198000{index:05d}")
        uow.messages.track({"meta_message_id": f"wamid.cold-{index}", "direction": "inbound"})


def _cold_start(url: str, index: int, mixed: bool, bootstrap: bool, barrier: Any) -> None:
    """One process's first use of `url`, started by `barrier` together with the others: the
    library (`wastate.connect`, then `prepare_schema` as each `serve` worker runs it when
    `bootstrap`, then a unit of work), or, for odd `index` when `mixed`, a `StateManager`."""
    if mixed and index % 2 == 1:
        barrier.wait(timeout=60)
        with StateManager(url, "none://", tenant_id=TENANT) as manager:
            assert manager.add_message({"id": f"cold-{index}"}, MessageStatus.INCOMING)
        return
    # The store is built first (it connects lazily), so the first connections of all the
    # processes are opened as close together as the barrier allows.
    store = wastate.connect(url, "none://")
    try:
        barrier.wait(timeout=60)
        if bootstrap:
            prepare_schema(store)
        _unit_of_work(store, index)
    finally:
        store.close()


def _worker(index: int, jobs: Any, results: Any, barrier: Any) -> None:
    """Run cold starts until told to stop; report each outcome (None, or the error's first line)."""
    while (job := jobs.get()) is not None:
        url, mixed, bootstrap = job
        try:
            _cold_start(url, index, mixed, bootstrap, barrier)
            results.put(None)
        except Exception as exc:  # reported to the test, which fails on it
            results.put(f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}")


class Pool:
    """PROCESSES spawned workers, reused by every round (spawning is the expensive part)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        # Kept on self: a barrier garbage-collected before the children unpickle it is gone.
        self.barrier = context.Barrier(PROCESSES)
        self.results = context.Queue()
        self.jobs = [context.Queue() for _ in range(PROCESSES)]
        self.processes = [
            context.Process(target=_worker, args=(i, self.jobs[i], self.results, self.barrier))
            for i in range(PROCESSES)
        ]
        for process in self.processes:
            process.start()

    def round(self, path: Path, *, mixed: bool, bootstrap: bool = False) -> list[str]:
        """All the workers cold-start on `path` at once: the errors they met (none, we hope)."""
        for jobs in self.jobs:
            jobs.put((f"sqlite:///{path}", mixed, bootstrap))
        outcomes = [self._next() for _ in range(PROCESSES)]
        return sorted(outcome for outcome in outcomes if outcome is not None)

    def _next(self) -> str | None:
        while True:
            try:
                outcome: str | None = self.results.get(timeout=1)
                return outcome
            except queue.Empty:
                assert all(p.is_alive() for p in self.processes), "a worker died"

    def stop(self) -> None:
        for jobs in self.jobs:
            jobs.put(None)
        for process in self.processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
        assert [p.exitcode for p in self.processes] == [0] * PROCESSES


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    workers = Pool()
    try:
        yield workers
    finally:
        workers.stop()


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Migrated files with no connection open, one per journal mode, copied for each round."""
    folder = tmp_path_factory.mktemp("templates")
    files = {}
    for mode in ("delete", "wal"):
        path = files[mode] = folder / f"{mode}.db"
        migrate(f"sqlite:///{path}")
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            assert connection.execute(f"PRAGMA journal_mode={mode}").fetchone()[0] == mode
        finally:
            connection.close()
        assert not Path(f"{path}-wal").exists()  # the file alone is the whole database
    return files


def _count(path: Path, table: str) -> int:
    connection = sqlite3.connect(path)
    try:
        count: int = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return count
    finally:
        connection.close()


def _journal_mode(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header
        mode: str = connection.execute("PRAGMA journal_mode").fetchone()[0]
        return mode
    finally:
        connection.close()


def _rounds(pool: Pool, rounds: int, prepare: Any, *, mixed: bool, bootstrap: bool) -> None:
    """`rounds` cold starts, each on a file from `prepare(round)`; fail listing every error."""
    failures: list[str] = []
    failed_rounds = 0
    for round_ in range(rounds):
        path = prepare(round_)
        errors = pool.round(path, mixed=mixed, bootstrap=bootstrap)
        failures += [f"round {round_}: {error}" for error in errors]
        failed_rounds += bool(errors)
        if errors:
            continue
        # Every process's writes are there, and the file is in WAL mode from now on.
        library = (PROCESSES + 1) // 2 if mixed else PROCESSES
        assert _count(path, "message_tracking") == library
        assert _count(path, "approval_messages") == PROCESSES - library
        assert _journal_mode(path) == "wal"
    assert failures == [], f"{failed_rounds} of {rounds} rounds failed:\n" + "\n".join(failures)


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_first_connections_to_an_idle_file_all_succeed(
    pool: Pool, templates: dict[str, Path], tmp_path: Path, journal_mode: str
) -> None:
    """6 processes × 20 rounds open their first connections to an idle migrated file at once
    and run a unit of work: none is refused. A rollback-journal file (`alembic upgrade head`
    makes one) is switched to WAL by whichever first connection wins; the others wait for it.
    """

    def prepare(round_: int) -> Path:
        path = tmp_path / f"{round_}.db"
        shutil.copyfile(templates[journal_mode], path)
        return path

    _rounds(pool, 20, prepare, mixed=False, bootstrap=False)


def test_processes_bootstrapping_a_new_file_all_succeed(pool: Pool, tmp_path: Path) -> None:
    """6 processes × 10 rounds start on a file that does not exist yet — half as `serve`
    workers (`prepare_schema`, then a unit of work), half as `StateManager()` — and each
    migrates it on first use: all succeed, and the schema is created once."""
    _rounds(pool, 10, lambda round_: tmp_path / f"{round_}.db", mixed=True, bootstrap=True)


def test_state_managers_on_an_idle_rollback_journal_file_all_succeed(
    pool: Pool, templates: dict[str, Path], tmp_path: Path
) -> None:
    """6 processes × 10 rounds, half `StateManager()` and half library, on an idle migrated
    file still in rollback-journal mode: all succeed."""

    def prepare(round_: int) -> Path:
        path = tmp_path / f"{round_}.db"
        shutil.copyfile(templates["delete"], path)
        return path

    _rounds(pool, 10, prepare, mixed=True, bootstrap=False)


# -- the mechanism, in one process -----------------------------------------------------------


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """A connection holding `path`'s write lock (RESERVED, in rollback-journal mode)."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_switching_to_wal_is_refused_at_once_so_it_is_retried(
    templates: dict[str, Path], tmp_path: Path
) -> None:
    """While another connection holds the write lock of a rollback-journal file, SQLite refuses
    `PRAGMA journal_mode=WAL` at once, busy timeout or not (a lock upgrade it will not wait
    for); `switch_to_wal` retries until the lock is free. Clock and sleep are injected."""
    path = tmp_path / "locked.db"
    shutil.copyfile(templates["delete"], path)
    holder = _hold_write_lock(path)
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            connection.execute("PRAGMA journal_mode=WAL")  # what the engine used to run alone

        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            if len(sleeps) == 3:
                holder.execute("COMMIT")

        switch_to_wal(connection, clock=lambda: 0.0, sleep=sleep)
        assert len(sleeps) == 3
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()
        holder.close()


def test_switching_to_wal_gives_up_after_the_busy_timeout(
    templates: dict[str, Path], tmp_path: Path
) -> None:
    """A write lock held for longer than the busy timeout: SQLITE_BUSY, as for any statement."""
    path = tmp_path / "stuck.db"
    shutil.copyfile(templates["delete"], path)
    holder = _hold_write_lock(path)
    connection = sqlite3.connect(path, isolation_level=None)
    now = [0.0]
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            switch_to_wal(
                connection,
                clock=lambda: now[0],
                sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
            )
        assert now[0] >= SQLITE_BUSY_TIMEOUT_MS / 1000
    finally:
        connection.close()
        holder.close()


def test_a_first_unit_of_work_waits_for_a_writer_instead_of_failing(
    templates: dict[str, Path], tmp_path: Path
) -> None:
    """The first connection of a store to a rollback-journal file whose write lock another
    process holds: it waits, then runs its unit of work (it used to fail with `database is
    locked` at once). The lock is let go a moment after the connection attempt starts."""
    path = tmp_path / "busy.db"
    shutil.copyfile(templates["delete"], path)
    holder = _hold_write_lock(path)
    store = wastate.connect(f"sqlite:///{path}", "none://")
    attempted = threading.Event()
    event.listen(store.engine, "do_connect", lambda *_args: attempted.set())

    def release() -> None:
        attempted.wait(timeout=60)
        time.sleep(0.2)  # not a measurement: only lets the attempt meet the held lock
        holder.execute("COMMIT")

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        _unit_of_work(store, 0)
    finally:
        releaser.join()
        store.close()
        holder.close()
    assert _count(path, "message_tracking") == 1
    assert _journal_mode(path) == "wal"
