"""Benchmark: conversation-mapping lookups through wastate against raw baselines, in one run.

Baselines, measured in the same run:
  (a) a plain dict lookup + pydantic `model_validate_json` of a cached mapping (in-process floor)
  (b) a raw redis-py GET of a ~150-byte value
  (c) a raw prepared psycopg SELECT by (tenant_id, wa_id)
  (d) a raw prepared `INSERT … ON CONFLICT DO NOTHING RETURNING`

Targets: hot get_or_create with the near cache ≤ 3× (a); with Redis only ≤ 1.3× (b); a cold
lookup from PostgreSQL (`none://`) ≤ 2× (c); get_or_create of a new wa_id ≤ 2× (d); database
writes per cache hit: 0. Each at 10k and 1M mappings (bulk-loaded with COPY).

It creates its own database (`wastate_bench_mappings`) and its own redis-server on a spare
loopback port, and removes both at the end. Not run in CI.

    .venv/bin/python benchmarks/bench_mappings.py --sizes 10000,1000000
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import socket
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis
from sqlalchemy import event

import wastate
from wastate.domain.mappings import ConversationMapping
from wastate.migrations import migrate

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "wastate_bench_mappings"
TENANT = "bench-tenant"
HOT_KEYS = 1000

COLUMNS = (
    "tenant_id, wa_id, conversation_id, status, contact_name, communication_id, "
    "last_message_id, correlated_at, created_at, last_activity_at, closed_at"
)
RAW_SELECT = (
    f"SELECT {COLUMNS} FROM conversation_mappings "
    "WHERE tenant_id = %s AND wa_id = %s AND status = 'active'"
)
RAW_INSERT = (
    "INSERT INTO conversation_mappings (tenant_id, wa_id, conversation_id, status, "
    "created_at, last_activity_at) VALUES (%s, %s, %s, 'active', now(), now()) "
    "ON CONFLICT (tenant_id, wa_id) WHERE status = 'active' DO NOTHING "
    f"RETURNING {COLUMNS}"
)


class Stats:
    """Per-call latencies of one measured operation."""

    def __init__(self, name: str, samples: list[int]) -> None:
        self.name = name
        ordered = sorted(samples)
        self.median = statistics.median(ordered) / 1000  # µs
        self.p99 = ordered[int(len(ordered) * 0.99) - 1] / 1000
        self.ops = 1e9 / (sum(ordered) / len(ordered))


def measure(name: str, call: Callable[[], object], iterations: int, warmup: int = 200) -> Stats:
    for _ in range(warmup):
        call()
    clock = time.perf_counter_ns
    samples = [0] * iterations
    for index in range(iterations):
        started = clock()
        call()
        samples[index] = clock() - started
    return Stats(name, samples)


def phone(number: int) -> str:
    return f"+1{2000000000 + number}"


# -- environment -------------------------------------------------------------------------------


class Environment:
    """The benchmark's own PostgreSQL database and redis-server."""

    def __init__(self) -> None:
        self.database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
        self.dsn = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.redis_port = probe.getsockname()[1]
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis_process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Environment:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {DATABASE}")
        migrate(self.database_url)
        binary = shutil.which("redis-server") or "redis-server"
        self.redis_process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.redis_port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.redis_process is not None:
            self.redis_process.kill()
            self.redis_process.wait()
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")

    def load(self, start: int, stop: int) -> None:
        """COPY mappings number start..stop-1 into the bench tenant, then ANALYZE."""
        now = datetime.now(UTC)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            with conn.cursor().copy(
                "COPY conversation_mappings (tenant_id, wa_id, conversation_id, status, "
                "created_at, last_activity_at) FROM STDIN"
            ) as copy:
                for number in range(start, stop):
                    copy.write_row((TENANT, phone(number), str(uuid.uuid4()), "active", now, now))
            conn.execute("ANALYZE conversation_mappings")

    def freshen(self, numbers: list[int]) -> None:
        """Mark the hot mappings used now (as live traffic would have)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE conversation_mappings SET last_activity_at = now() "
                "WHERE tenant_id = %s AND wa_id = ANY(%s)",
                (TENANT, [phone(n) for n in numbers]),
            )

    def db_counters(self) -> tuple[int, int, int]:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, tup_returned "
                "FROM pg_stat_database WHERE datname = %s",
                (DATABASE,),
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


# -- the run -----------------------------------------------------------------------------------


def cycle(values: list[str]) -> Callable[[], str]:
    iterator: Iterator[str] = itertools.cycle(values)
    return iterator.__next__


def run_size(env: Environment, size: int, scale: float) -> tuple[list[Stats], dict[str, Any]]:
    hot_numbers = list(range(0, size, max(1, size // HOT_KEYS)))[:HOT_KEYS]
    hot = [phone(n) for n in hot_numbers]
    cold = [phone(n) for n in range(1, size, max(1, size // 5000))][:5000]
    env.freshen(hot_numbers)
    iters_fast, iters_net, iters_db = int(20000 * scale), int(5000 * scale), int(3000 * scale)
    results: list[Stats] = []
    extra: dict[str, Any] = {}

    # (a) the in-process floor: dict lookup + model_validate_json of the cached value.
    stores = []
    l1 = wastate.connect(env.database_url, env.redis_url, near_cache_size=200_000)
    stores.append(l1)
    with l1.unit_of_work(TENANT) as uow:
        values = {wa: uow.mappings.get_or_create(wa).model_dump_json().encode() for wa in hot}
    print(f"  cached value size: {len(next(iter(values.values())))} bytes")
    key = cycle(hot)
    validate = ConversationMapping.model_validate_json
    results.append(
        measure("(a) dict + model_validate_json", lambda: validate(values[key()]), iters_fast)
    )

    # (b) raw redis-py GET of a ~150-byte value.
    raw_redis = redis.Redis(port=env.redis_port, socket_timeout=0.25)
    raw_keys = [f"bench:raw:{n}" for n in range(HOT_KEYS)]
    for k in raw_keys:
        raw_redis.set(k, b"x" * 150)
    rkey = cycle(raw_keys)
    results.append(measure("(b) redis-py GET 150 B", lambda: raw_redis.get(rkey()), iters_net))

    # (c) raw prepared psycopg SELECT by (tenant_id, wa_id).
    pg = psycopg.connect(env.dsn, autocommit=True)
    ckey = cycle(cold)
    results.append(
        measure(
            "(c) psycopg prepared SELECT",
            lambda: pg.execute(RAW_SELECT, (TENANT, ckey()), prepare=True).fetchone(),
            iters_db,
        )
    )

    # (d) raw prepared INSERT … ON CONFLICT DO NOTHING RETURNING of new wa_ids.
    fresh = itertools.count(50_000_000)
    results.append(
        measure(
            "(d) psycopg INSERT ON CONFLICT RETURNING",
            lambda: pg.execute(
                RAW_INSERT, (TENANT, phone(next(fresh)), str(uuid.uuid4())), prepare=True
            ).fetchone(),
            iters_db,
        )
    )

    # Hot get_or_create with the near cache (L1) on.
    statements: list[str] = []
    event.listen(l1.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    before = env.db_counters()
    hits = 0
    with l1.unit_of_work(TENANT) as uow:
        mappings = uow.mappings
        key = cycle(hot)
        results.append(
            measure(
                "hot get_or_create, L1, in open uow",
                lambda: mappings.get_or_create(key()),
                iters_fast,
            )
        )
        hits += iters_fast + 200

    def whole_uow(store: wastate.Store, pick: Callable[[], str]) -> Callable[[], object]:
        def call() -> object:
            with store.unit_of_work(TENANT) as uow:
                return uow.mappings.get_or_create(pick())

        return call

    results.append(
        measure("hot get_or_create, L1, uow per call", whole_uow(l1, cycle(hot)), iters_fast)
    )
    hits += iters_fast + 200

    # Redis only (L1 off).
    l2 = wastate.connect(env.database_url, env.redis_url, near_cache=False)
    stores.append(l2)
    event.listen(l2.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with l2.unit_of_work(TENANT) as uow:
        for wa in hot:
            uow.mappings.get_or_create(wa)  # warm (already in Redis from the L1 store)
    statements.clear()
    with l2.unit_of_work(TENANT) as uow:
        mappings2 = uow.mappings
        key = cycle(hot)
        results.append(
            measure(
                "hot get_or_create, Redis only, in open uow",
                lambda: mappings2.get_or_create(key()),
                iters_net,
            )
        )
        hits += iters_net + 200
    results.append(
        measure("hot get_or_create, Redis only, uow per call", whole_uow(l2, cycle(hot)), iters_net)
    )
    hits += iters_net + 200
    time.sleep(1.2)  # pg_stat_database is flushed about once a second
    after = env.db_counters()
    extra["hits"] = hits
    extra["sql_statements_during_hits"] = len(statements)
    extra["xact_commit_delta"] = after[0] - before[0]
    extra["rows_written_delta"] = after[1] - before[1]
    extra["activity_pending"] = l1.activity.pending() + l2.activity.pending()

    # Cold lookups from PostgreSQL, cache off.
    off = wastate.connect(env.database_url, "none://")
    stores.append(off)
    with off.unit_of_work(TENANT) as uow:
        mappings3 = uow.mappings
        key = cycle(cold)
        results.append(
            measure(
                "cold by_wa_id, none://, in open uow", lambda: mappings3.by_wa_id(key()), iters_db
            )
        )
        key = cycle(cold)
        results.append(
            measure(
                "cold get_or_create, none://, in open uow",
                lambda: mappings3.get_or_create(key()),
                iters_db,
            )
        )
    results.append(
        measure("cold get_or_create, none://, uow per call", whole_uow(off, cycle(cold)), iters_db)
    )

    # get_or_create of new wa_ids.
    new = itertools.count(60_000_000 + size)
    uow = off.unit_of_work(TENANT)
    mappings4 = uow.mappings
    results.append(
        measure(
            "new get_or_create, none://, in open uow",
            lambda: mappings4.get_or_create(phone(next(new))),
            iters_db,
        )
    )
    uow.commit()
    uow.close()
    results.append(
        measure(
            "new get_or_create, none://, uow per call",
            whole_uow(off, lambda: phone(next(new))),
            iters_db,
        )
    )
    results.append(
        measure(
            "new get_or_create, Redis+L1, uow per call",
            whole_uow(l1, lambda: phone(next(new))),
            iters_db,
        )
    )
    for store in stores:
        store.close()
    raw_redis.close()
    pg.close()
    return results, extra


TARGETS = [
    ("hot get_or_create, L1, in open uow", "(a) dict + model_validate_json", 3.0),
    ("hot get_or_create, L1, uow per call", "(a) dict + model_validate_json", 3.0),
    ("hot get_or_create, Redis only, in open uow", "(b) redis-py GET 150 B", 1.3),
    ("hot get_or_create, Redis only, uow per call", "(b) redis-py GET 150 B", 1.3),
    ("cold by_wa_id, none://, in open uow", "(c) psycopg prepared SELECT", 2.0),
    ("cold get_or_create, none://, in open uow", "(c) psycopg prepared SELECT", 2.0),
    ("cold get_or_create, none://, uow per call", "(c) psycopg prepared SELECT", 2.0),
    ("new get_or_create, none://, in open uow", "(d) psycopg INSERT ON CONFLICT RETURNING", 2.0),
    ("new get_or_create, none://, uow per call", "(d) psycopg INSERT ON CONFLICT RETURNING", 2.0),
    ("new get_or_create, Redis+L1, uow per call", "(d) psycopg INSERT ON CONFLICT RETURNING", 2.0),
]


def report(size: int, results: list[Stats], extra: dict[str, Any]) -> None:
    print(f"\n## {size:,} mappings in the table\n")
    print(f"{'operation':<46} {'median µs':>10} {'p99 µs':>10} {'ops/s':>10}")
    for stats in results:
        print(f"{stats.name:<46} {stats.median:>10.1f} {stats.p99:>10.1f} {stats.ops:>10,.0f}")
    by_name = {stats.name: stats for stats in results}
    print(f"\n{'ratio (median)':<46} {'vs':>10} {'ratio':>10} {'target':>10}")
    for name, baseline, target in TARGETS:
        ratio = by_name[name].median / by_name[baseline].median
        verdict = "ok" if ratio <= target else "MISSED"
        print(
            f"{name:<46} {baseline[:3]:>10} {ratio:>9.2f}× {'≤ ' + str(target) + '×':>8} {verdict}"
        )
    print(
        f"\ncache hits measured: {extra['hits']:,}; SQL statements during them: "
        f"{extra['sql_statements_during_hits']}; writes per hit: "
        f"{extra['sql_statements_during_hits'] / extra['hits']:.4f}"
    )
    print(
        f"pg_stat_database over the hit loops: xact_commit +{extra['xact_commit_delta']}, "
        f"rows written +{extra['rows_written_delta']}; activity refreshes pending: "
        f"{extra['activity_pending']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,1000000", help="table sizes, comma-separated")
    parser.add_argument("--scale", type=float, default=1.0, help="iteration count multiplier")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    everything = {}
    with Environment() as env:
        loaded = 0
        for size in sizes:
            started = time.perf_counter()
            env.load(loaded, size)
            print(
                f"loaded {size - loaded:,} mappings with COPY in "
                f"{time.perf_counter() - started:.1f}s"
            )
            loaded = size
            results, extra = run_size(env, size, args.scale)
            report(size, results, extra)
            everything[size] = {
                "results": {s.name: [s.median, s.p99, s.ops] for s in results},
                **extra,
            }
    if args.json:
        with open(args.json, "w") as out:
            json.dump(everything, out, indent=2)


if __name__ == "__main__":
    main()
