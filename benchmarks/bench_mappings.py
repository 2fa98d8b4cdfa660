"""Benchmark: conversation-mapping lookups through wastate against raw baselines, in one run.

Baselines, measured in the same run:
  (a) a plain dict lookup + pydantic `model_validate_json` of a cached mapping (in-process floor)
  (b) a raw redis-py GET of a ~150-byte value
  (c) a raw prepared psycopg SELECT by (tenant_id, wa_id)
  (d) a raw prepared `INSERT … ON CONFLICT DO NOTHING RETURNING`
  (e) not a target, the floor under (d)'s target: the same work as get_or_create of a new user in
      a unit of work in raw psycopg (SELECT; BEGIN + INSERT in one pipeline; COMMIT)

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


def measure_group(
    calls: list[tuple[str, Callable[[], object]]], iterations: int, warmup: int = 200
) -> list[Stats]:
    """Time each call round-robin: all see the same machine load (it is shared and noisy)."""
    for _ in range(warmup):
        for _, call in calls:
            call()
    clock = time.perf_counter_ns
    samples: list[list[int]] = [[0] * iterations for _ in calls]
    for index in range(iterations):
        for position, (_, call) in enumerate(calls):
            started = clock()
            call()
            samples[position][index] = clock() - started
    return [Stats(name, taken) for (name, _), taken in zip(calls, samples, strict=True)]


def run_size(env: Environment, size: int, scale: float) -> tuple[list[Stats], dict[str, Any]]:
    hot_numbers = list(range(0, size, max(1, size // HOT_KEYS)))[:HOT_KEYS]
    hot = [phone(n) for n in hot_numbers]
    cold = [phone(n) for n in range(1, size, max(1, size // 5000))][:5000]
    env.freshen(hot_numbers)
    iters_fast, iters_net, iters_db = int(20000 * scale), int(5000 * scale), int(2000 * scale)
    results: list[Stats] = []
    extra: dict[str, Any] = {}
    stores: list[wastate.Store] = []

    def whole_uow(store: wastate.Store, pick: Callable[[], str]) -> Callable[[], object]:
        def call() -> object:
            with store.unit_of_work(TENANT) as uow:
                return uow.mappings.get_or_create(pick())

        return call

    # Group 1 — the near cache against (a), the in-process floor.
    l1 = wastate.connect(env.database_url, env.redis_url, near_cache_size=200_000)
    stores.append(l1)
    with l1.unit_of_work(TENANT) as uow:
        values = {wa: uow.mappings.get_or_create(wa).model_dump_json().encode() for wa in hot}
    print(f"  cached value size: {len(next(iter(values.values())))} bytes")
    l2 = wastate.connect(env.database_url, env.redis_url, near_cache=False)
    stores.append(l2)
    # Statement counting: a backend reports its statistics reliably when it exits, so the pools
    # are emptied before and after the hit loops; any statement in between is then counted.
    l1.engine.dispose()
    l2.engine.dispose()
    time.sleep(0.5)
    before = env.db_counters()
    validate = ConversationMapping.model_validate_json
    key_a, key_open, key_call = cycle(hot), cycle(hot), cycle(hot)
    open_l1 = l1.unit_of_work(TENANT)
    mappings_l1 = open_l1.mappings
    results += measure_group(
        [
            ("(a) dict + model_validate_json", lambda: validate(values[key_a()])),
            ("hot get_or_create, L1, in open uow", lambda: mappings_l1.get_or_create(key_open())),
            ("hot get_or_create, L1, uow per call", whole_uow(l1, key_call)),
        ],
        iters_fast,
    )
    open_l1.close()
    hits = 2 * (iters_fast + 200)

    # Group 2 — Redis only (L1 off) against (b), a raw redis-py GET of a ~150-byte value.
    raw_redis = redis.Redis(port=env.redis_port, socket_timeout=0.25)
    raw_keys = [f"bench:raw:{n}" for n in range(HOT_KEYS)]
    for raw_key in raw_keys:
        raw_redis.set(raw_key, b"x" * 150)
    key_b, key_open, key_call = cycle(raw_keys), cycle(hot), cycle(hot)
    open_l2 = l2.unit_of_work(TENANT)
    mappings_l2 = open_l2.mappings
    results += measure_group(
        [
            ("(b) redis-py GET 150 B", lambda: raw_redis.get(key_b())),
            (
                "hot get_or_create, Redis only, in open uow",
                lambda: mappings_l2.get_or_create(key_open()),
            ),
            ("hot get_or_create, Redis only, uow per call", whole_uow(l2, key_call)),
        ],
        iters_net,
    )
    open_l2.close()
    hits += 2 * (iters_net + 200)
    l1.engine.dispose()
    l2.engine.dispose()
    time.sleep(0.5)
    after = env.db_counters()
    extra["hits"] = hits
    extra["statements_during_hits"] = after[0] - before[0]  # autocommit: one per statement
    extra["rows_written_delta"] = after[1] - before[1]
    extra["activity_pending"] = l1.activity.pending() + l2.activity.pending()

    # Group 3 — cold lookups from PostgreSQL, cache off, against (c) a prepared SELECT.
    with psycopg.connect(env.dsn, autocommit=True) as warm:
        for wa in cold:  # every lookup below finds its page in shared buffers alike
            warm.execute(RAW_SELECT, (TENANT, wa), prepare=True).fetchone()
    off = wastate.connect(env.database_url, "none://")
    stores.append(off)
    time.sleep(0.5)
    cold_before = env.db_counters()[0]
    pg = psycopg.connect(env.dsn, autocommit=True)
    open_off = off.unit_of_work(TENANT)
    mappings_off = open_off.mappings
    key_c, key_1, key_2, key_3 = cycle(cold), cycle(cold), cycle(cold), cycle(cold)
    results += measure_group(
        [
            (
                "(c) psycopg prepared SELECT",
                lambda: pg.execute(RAW_SELECT, (TENANT, key_c()), prepare=True).fetchone(),
            ),
            ("cold by_wa_id, none://, in open uow", lambda: mappings_off.by_wa_id(key_1())),
            (
                "cold get_or_create, none://, in open uow",
                lambda: mappings_off.get_or_create(key_2()),
            ),
            ("cold get_or_create, none://, uow per call", whole_uow(off, key_3)),
        ],
        iters_db,
    )
    open_off.close()
    off.engine.dispose()
    pg.close()
    time.sleep(0.5)
    extra["statements_during_cold"] = env.db_counters()[0] - cold_before  # the counter works
    extra["cold_calls"] = 4 * (iters_db + 200)
    pg = psycopg.connect(env.dsn, autocommit=True)

    # Group 4 — new wa_ids against (d) a prepared INSERT … ON CONFLICT DO NOTHING RETURNING.
    fresh = itertools.count(50_000_000 + 10 * size)  # never inserted before: real inserts

    def unit_of_work_floor() -> object:
        """(e): three round trips, the least a read-then-insert transaction can take."""
        params = (TENANT, phone(next(fresh)))
        assert pg.execute(RAW_SELECT, params, prepare=True).fetchone() is None
        with pg.pipeline():
            pg.execute("BEGIN")
            inserted = pg.execute(RAW_INSERT, (*params, str(uuid.uuid4())), prepare=True)
        row = inserted.fetchone()
        pg.execute("COMMIT")
        return row

    batch = off.unit_of_work(TENANT)
    mappings_batch = batch.mappings
    results += measure_group(
        [
            (
                "(d) psycopg INSERT ON CONFLICT RETURNING",
                lambda: pg.execute(
                    RAW_INSERT, (TENANT, phone(next(fresh)), str(uuid.uuid4())), prepare=True
                ).fetchone(),
            ),
            ("(e) psycopg SELECT; BEGIN+INSERT; COMMIT", unit_of_work_floor),
            (
                "new get_or_create, none://, in open uow",
                lambda: mappings_batch.get_or_create(phone(next(fresh))),
            ),
            (
                "new get_or_create, none://, uow per call",
                whole_uow(off, lambda: phone(next(fresh))),
            ),
            (
                "new get_or_create, Redis+L1, uow per call",
                whole_uow(l1, lambda: phone(next(fresh))),
            ),
        ],
        iters_db,
        warmup=20,
    )
    batch.commit()
    batch.close()
    for store in stores:
        store.close()
    raw_redis.close()
    pg.close()
    order = [name for name, _, _ in TARGETS]
    results.sort(
        key=lambda s: (
            not s.name.startswith("("),
            s.name[:3] if s.name.startswith("(") else str(order.index(s.name)).zfill(2),
        )
    )
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


# Not targets: how far each new-user path is above the floor of its round trips (e).
FLOOR = "(e) psycopg SELECT; BEGIN+INSERT; COMMIT"
ABOVE_FLOOR = [
    ("new get_or_create, none://, uow per call", FLOOR),
    ("new get_or_create, Redis+L1, uow per call", FLOOR),
    (FLOOR, "(d) psycopg INSERT ON CONFLICT RETURNING"),
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
    for name, baseline in ABOVE_FLOOR:
        ratio = by_name[name].median / by_name[baseline].median
        extra_us = by_name[name].median - by_name[baseline].median
        print(f"{name:<46} {baseline[:3]:>10} {ratio:>9.2f}× {f'+{extra_us:.0f} µs':>10}")
    print(
        f"\ncache hits measured: {extra['hits']:,}; database statements during them "
        f"(pg_stat_database xact_commit): "
        f"{extra['statements_during_hits']}; rows written: {extra['rows_written_delta']}; "
        f"writes per hit: {extra['rows_written_delta'] / extra['hits']:.4f}; "
        f"activity refreshes pending: {extra['activity_pending']}"
    )
    print(
        f"(the same counter saw about {extra['statements_during_cold']:,} statements during "
        f"{extra['cold_calls']:,} cold lookups, raw baseline included)"
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
