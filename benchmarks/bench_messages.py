"""Message tracking throughput and latency against raw psycopg baselines measured in the same run.

    .venv/bin/python benchmarks/bench_messages.py [--rounds 15] [--singles 400] [--sqlite]

Baselines (PostgreSQL, psycopg 3 straight on the same table, each batch or statement in its own
committed transaction, as a unit of work commits):
  (e) COPY of 1000 message rows
  (f) executemany of 1000 INSERTs
  (g) one `UPDATE … FROM unnest(...)` of 1000 status changes (a blind overwrite: no rank rule,
      no history)
  raw single INSERT / single UPDATE (the seed's statements), each + COMMIT
against wastate in a unit of work each:
  track_many(1000)               target ≥ 50% of (e)'s rows/s
  track_batch(1000)              the same writes without building the 1000 returned records
  apply_status_events(1000)      target ≥ 80% of (g)'s rows/s
  track (one message)            target ≤ 2× the raw single INSERT's median latency
  update_status (one event)      target ≤ 2× the raw single UPDATE's median latency
  ingest of a 100-status webhook body: events/s (reported, no target)

Every batch writes fresh rows (new ids, or messages still at `sent`), so no case is a no-op.
It creates its own database (`wastate_bench_messages`) and drops it at the end, talks only to
127.0.0.1, and stops by itself. Not run in CI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

import wastate
from wastate.domain.messages import StatusEvent
from wastate.webhooks import ingest

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "wastate_bench_messages"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
BATCH = 1000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
COLUMNS = (
    "tenant_id, meta_message_id, conversation_id, direction, status, message_type, "
    "sent_at, created_at, updated_at"
)


@dataclass
class Result:
    name: str
    seconds: list[float]
    items: int  # rows or events per run

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p99(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]

    @property
    def per_second(self) -> float:
        return self.items / self.median


@dataclass
class Case:
    name: str
    items: int  # rows or events per run
    setup: Callable[[int], Any]  # untimed: builds the run's input from the round number
    run: Callable[[Any], None]  # timed


def interleaved(cases: list[Case], runs: int) -> list[Result]:
    """Median/p99 of each case over `runs` rounds after 3 untimed warm-up rounds. Every round
    runs every case once, in rotating order, so drifting machine load hits baseline and wastate
    alike."""
    seconds: dict[str, list[float]] = {case.name: [] for case in cases}
    for index in range(runs + 3):
        shift = index % len(cases)
        for case in cases[shift:] + cases[:shift]:
            argument = case.setup(index)
            started = time.perf_counter()
            case.run(argument)
            elapsed = time.perf_counter() - started
            if index >= 3:
                seconds[case.name].append(elapsed)
    return [Result(case.name, seconds[case.name], case.items) for case in cases]


def timed(
    name: str, runs: int, items: int, setup: Callable[[int], Any], run: Callable[[Any], None]
) -> Result:
    """Median/p99 of `run(setup(i))` over `runs` runs (after 3 untimed warm-up runs)."""
    seconds = []
    for index in range(runs + 3):
        argument = setup(index)
        started = time.perf_counter()
        run(argument)
        elapsed = time.perf_counter() - started
        if index >= 3:
            seconds.append(elapsed)
    return Result(name, seconds, items)


def fresh_ids(prefix: str, count: int) -> list[str]:
    tag = uuid.uuid4().hex[:10]
    return [f"wamid.{prefix}{tag}.{i}" for i in range(count)]


def new_messages(ids: list[str]) -> list[wastate.NewMessage]:
    return [
        wastate.NewMessage(
            meta_message_id=i,
            conversation_id="conv-bench",
            direction="outbound",
            status="sent",
            occurred_at=T0,
        )
        for i in ids
    ]


# --- raw psycopg baselines -----------------------------------------------------------------------


def raw_copy(conn: psycopg.Connection[Any], tenant: str) -> Callable[[list[str]], None]:
    def run(ids: list[str]) -> None:
        now = datetime.now(UTC)
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY message_tracking ({COLUMNS}) FROM STDIN") as copy,
        ):
            for external in ids:
                copy.write_row(
                    (tenant, external, "conv-bench", "outbound", "sent", "text", T0, now, now)
                )
        conn.commit()

    return run


def raw_executemany(conn: psycopg.Connection[Any], tenant: str) -> Callable[[list[str]], None]:
    sql = f"INSERT INTO message_tracking ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"

    def run(ids: list[str]) -> None:
        now = datetime.now(UTC)
        with conn.cursor() as cur:
            cur.executemany(
                sql,
                [(tenant, i, "conv-bench", "outbound", "sent", "text", T0, now, now) for i in ids],
            )
        conn.commit()

    return run


UNNEST_UPDATE = """
    UPDATE message_tracking t SET status = u.status, delivered_at = u.at, updated_at = now()
    FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS u(id, status, at)
    WHERE t.tenant_id = %s AND t.meta_message_id = u.id
"""
NOTES: list[str] = []  # printed under the targets


def raw_unnest_update(conn: psycopg.Connection[Any], tenant: str) -> Callable[[list[str]], None]:
    def run(ids: list[str]) -> None:
        at = T0 + timedelta(minutes=1)
        conn.execute(UNNEST_UPDATE, (ids, ["delivered"] * len(ids), [at] * len(ids), tenant))
        conn.commit()

    return run


def unnest_update_join(conn: psycopg.Connection[Any], tenant: str, ids: list[str]) -> str:
    """The join PostgreSQL picks for (g): it flips with the table's size (the rounds run), and
    the baseline's time with it, so the report says which one was measured."""
    at = T0 + timedelta(minutes=1)
    rows = conn.execute(
        "EXPLAIN " + UNNEST_UPDATE, (ids, ["delivered"] * len(ids), [at] * len(ids), tenant)
    ).fetchall()
    conn.rollback()
    plan = " ".join(str(row[0]) for row in rows)
    return next(
        (join for join in ("Hash Join", "Nested Loop", "Merge Join") if join in plan), "unknown"
    )


def raw_single_insert(conn: psycopg.Connection[Any], tenant: str) -> Callable[[str], None]:
    sql = f"INSERT INTO message_tracking ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"

    def run(external: str) -> None:
        now = datetime.now(UTC)
        conn.execute(
            sql, (tenant, external, "conv-bench", "outbound", "sent", "text", T0, now, now)
        )
        conn.commit()

    return run


def raw_single_update(conn: psycopg.Connection[Any], tenant: str) -> Callable[[str], None]:
    sql = """UPDATE message_tracking SET status = %s, delivered_at = %s, updated_at = now()
             WHERE tenant_id = %s AND meta_message_id = %s"""

    def run(external: str) -> None:
        conn.execute(sql, ("delivered", T0 + timedelta(minutes=1), tenant, external))
        conn.commit()

    return run


# --- wastate -------------------------------------------------------------------------------------


def status_body(ids: list[str]) -> dict[str, Any]:
    statuses = [
        {
            "id": external,
            "status": "delivered",
            "timestamp": "1767225660",
            "recipient_id": "14155550100",
            "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"},
        }
        for external in ids
    ]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {"statuses": statuses}}]}],
    }


def seed(store: wastate.Store, tenant: str, ids: list[str]) -> None:
    """Track `ids` (untimed), then ANALYZE, as autovacuum would in a live database: baselines
    and wastate alike then get the plans of a table with statistics."""
    for start in range(0, len(ids), BATCH):
        with store.unit_of_work(tenant) as uow:
            uow.messages.track_many(new_messages(ids[start : start + BATCH]))
    if store.engine.dialect.name == "postgresql":
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute("ANALYZE message_tracking, message_status_events, pending_status_events")


def table_size(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM message_tracking").fetchone()
    conn.rollback()
    return int(row[0]) if row else 0


def postgres_suite(rounds: int, singles: int) -> list[Result]:
    raw = psycopg.connect(DSN)
    store = wastate.connect(URL, "none://")
    tenant = "bench"
    at = T0 + timedelta(minutes=1)

    def fresh(prefix: str) -> Callable[[int], list[str]]:
        return lambda _i: fresh_ids(prefix, BATCH)

    def seeded_blocks(prefix: str, count: int, size: int) -> list[list[str]]:
        """Messages still at `sent`, one block per run (tracked before the clock starts)."""
        blocks = [fresh_ids(prefix, size) for _ in range(count)]
        seed(store, tenant, [i for block in blocks for i in block])
        return blocks

    def track_many(messages: list[wastate.NewMessage]) -> None:
        with store.unit_of_work(tenant) as uow:
            uow.messages.track_many(messages)

    def track_batch(messages: list[wastate.NewMessage]) -> None:
        with store.unit_of_work(tenant) as uow:
            uow.messages.track_batch(messages)

    def apply(events: list[StatusEvent]) -> None:
        with store.unit_of_work(tenant) as uow:
            uow.messages.apply_status_events(events)

    def track(message: wastate.NewMessage) -> None:
        with store.unit_of_work(tenant) as uow:
            uow.messages.track(message)

    def update(external: str) -> None:
        with store.unit_of_work(tenant) as uow:
            uow.messages.update_status(external, "delivered", at=at)

    def webhook(body: dict[str, Any]) -> None:
        with store.unit_of_work(tenant) as uow:
            ingest(uow, body)

    results = interleaved(
        [
            Case("(e) raw COPY 1000 rows", BATCH, fresh("e"), raw_copy(raw, tenant)),
            Case(
                "(f) raw executemany 1000 INSERTs", BATCH, fresh("f"), raw_executemany(raw, tenant)
            ),
            Case(
                "wastate track_many(1000)",
                BATCH,
                lambda _i: new_messages(fresh_ids("tm", BATCH)),
                track_many,
            ),
            Case(
                "wastate track_batch(1000)",
                BATCH,
                lambda _i: new_messages(fresh_ids("tb", BATCH)),
                track_batch,
            ),
        ],
        rounds,
    )
    raw_blocks = seeded_blocks("g", rounds + 3, BATCH)
    our_blocks = seeded_blocks("a", rounds + 3, BATCH)
    before, size = unnest_update_join(raw, tenant, raw_blocks[-1]), table_size(raw)
    results += interleaved(
        [
            Case(
                "(g) raw UPDATE FROM unnest 1000",
                BATCH,
                lambda i: raw_blocks[i],
                raw_unnest_update(raw, tenant),
            ),
            Case(
                "wastate apply_status_events(1000)",
                BATCH,
                lambda i: [
                    StatusEvent(message_id=x, status="delivered", at=at) for x in our_blocks[i]
                ],
                apply,
            ),
        ],
        rounds,
    )
    after = unnest_update_join(raw, tenant, raw_blocks[0])
    NOTES.append(
        f"(g) was planned as a {before} over {size} tracked rows before its rounds,"
        f" a {after} after them"
    )
    raw_ids, our_ids = fresh_ids("rs", singles + 3), fresh_ids("ws", singles + 3)
    results += interleaved(
        [
            Case(
                "raw single INSERT + COMMIT",
                1,
                lambda i: raw_ids[i],
                raw_single_insert(raw, tenant),
            ),
            Case("wastate track", 1, lambda i: new_messages([our_ids[i]])[0], track),
        ],
        singles,
    )
    (raw_targets,) = seeded_blocks("ru", 1, singles + 3)
    (our_targets,) = seeded_blocks("wu", 1, singles + 3)
    results += interleaved(
        [
            Case(
                "raw single UPDATE + COMMIT",
                1,
                lambda i: raw_targets[i],
                raw_single_update(raw, tenant),
            ),
            Case("wastate update_status", 1, lambda i: our_targets[i], update),
        ],
        singles,
    )
    bodies = [status_body(block) for block in seeded_blocks("w", rounds + 3, 100)]
    results += interleaved(
        [Case("wastate ingest(100 statuses)", 100, lambda i: bodies[i], webhook)], rounds
    )
    store.close()
    raw.close()
    return results


def sqlite_suite(rounds: int, singles: int) -> list[Result]:
    with tempfile.TemporaryDirectory() as folder:
        store = wastate.connect(f"sqlite:///{Path(folder) / 'bench.db'}", "none://")
        store.migrate()
        tenant = "bench"
        results = []

        def track_many(ids: list[str]) -> None:
            with store.unit_of_work(tenant) as uow:
                uow.messages.track_many(new_messages(ids))

        results.append(
            timed(
                "sqlite track_many(1000)",
                rounds,
                BATCH,
                lambda _i: fresh_ids("s", BATCH),
                track_many,
            )
        )
        blocks = [fresh_ids("sa", BATCH) for _ in range(rounds + 3)]
        seed(store, tenant, [i for block in blocks for i in block])
        at = T0 + timedelta(minutes=1)

        def apply(ids: list[str]) -> None:
            with store.unit_of_work(tenant) as uow:
                uow.messages.apply_status_events(
                    [StatusEvent(message_id=i, status="delivered", at=at) for i in ids]
                )

        results.append(
            timed("sqlite apply_status_events(1000)", rounds, BATCH, lambda i: blocks[i], apply)
        )
        ids = fresh_ids("st", singles + 3)

        def track(external: str) -> None:
            with store.unit_of_work(tenant) as uow:
                uow.messages.track(new_messages([external])[0])

        results.append(timed("sqlite track", singles, 1, lambda i: ids[i], track))

        def update(external: str) -> None:
            with store.unit_of_work(tenant) as uow:
                uow.messages.update_status(external, "delivered", at=at)

        results.append(timed("sqlite update_status", singles, 1, lambda i: ids[i], update))
        store.close()
        return results


def report(results: list[Result]) -> None:
    print(f"{'case':<38} {'median':>10} {'p99':>10} {'items/s':>12}")
    for r in results:
        print(f"{r.name:<38} {r.median * 1e3:>8.3f}ms {r.p99 * 1e3:>8.3f}ms {r.per_second:>12,.0f}")


def verdicts(results: list[Result]) -> None:
    by = {r.name: r for r in results}

    def line(what: str, ratio: float, target: str, met: bool) -> None:
        print(f"  {what:<58} {ratio:6.2f}  target {target:<7} {'MET' if met else 'NOT MET'}")

    print("\nTargets")
    ratio = by["wastate track_many(1000)"].per_second / by["(e) raw COPY 1000 rows"].per_second
    line("track_many rows/s ÷ (e) COPY rows/s", ratio, "≥ 0.50", ratio >= 0.5)
    ratio = by["wastate track_batch(1000)"].per_second / by["(e) raw COPY 1000 rows"].per_second
    line("track_batch rows/s ÷ (e) COPY rows/s (no records built)", ratio, "≥ 0.50", ratio >= 0.5)
    ratio = (
        by["wastate track_many(1000)"].per_second
        / by["(f) raw executemany 1000 INSERTs"].per_second
    )
    print(f"  {'track_many rows/s ÷ (f) executemany rows/s':<58} {ratio:6.2f}  (for reference)")
    ratio = (
        by["wastate apply_status_events(1000)"].per_second
        / by["(g) raw UPDATE FROM unnest 1000"].per_second
    )
    line(
        "apply_status_events rows/s ÷ (g) UPDATE FROM unnest rows/s", ratio, "≥ 0.80", ratio >= 0.8
    )
    ratio = by["wastate track"].median / by["raw single INSERT + COMMIT"].median
    line("track latency ÷ raw single INSERT latency", ratio, "≤ 2.00", ratio <= 2)
    ratio = by["wastate update_status"].median / by["raw single UPDATE + COMMIT"].median
    line("update_status latency ÷ raw single UPDATE latency", ratio, "≤ 2.00", ratio <= 2)
    events = by["wastate ingest(100 statuses)"].per_second
    print(f"  webhook ingest of a 100-status body: {events:,.0f} events/s")
    for note in NOTES:
        print(f"  note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed runs of each batch case")
    parser.add_argument("--singles", type=int, default=400, help="timed runs of each single case")
    parser.add_argument("--sqlite", action="store_true", help="also time the SQLite paths")
    args = parser.parse_args()

    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    try:
        wastate.connect(URL, "none://").migrate()
        python = sys.version.split()[0]
        print(
            f"PostgreSQL, {BATCH}-row batches x {args.rounds}, singles x {args.singles}, {python}\n"
        )
        results = postgres_suite(args.rounds, args.singles)
        report(results)
        verdicts(results)
        if args.sqlite:
            print("\nSQLite (file, WAL; no targets)\n")
            report(sqlite_suite(args.rounds, args.singles))
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


if __name__ == "__main__":
    main()
