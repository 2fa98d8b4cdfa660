"""Benchmark: one approval lifecycle (add + three moves) through `StateManager`, with 1k, 100k
and 1M messages held, against the same statements sent raw with psycopg; then the export of the
whole history: time and peak memory (in a child process each, so sizes cannot share memory).

    .venv/bin/python benchmarks/bench_lifecycle.py [--sizes 1000,100000,1000000] [--ops 300]

It creates its own database (`wastate_bench_lifecycle`) on 127.0.0.1, bulk-loads the held
messages with COPY (not through the API), prints the tables, and drops the database. It talks to
nothing else and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "wastate_bench_lifecycle"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
TENANT, CLIENT = "bench", "default"
BUCKETS = ["incoming", "pending_approval", "approved", "rejected", "sent", "failed"]


def admin(sql: str) -> None:
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def bulk_load(start: int, stop: int) -> None:
    """Held messages [start, stop) straight into the table with COPY, spread over the buckets."""
    now = datetime.now(UTC)
    columns = "tenant_id, client_id, message_id, status, payload, created_at, status_changed_at"
    with (
        psycopg.connect(DSN) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY approval_messages ({columns}) FROM STDIN") as copy,  # type: ignore[arg-type]
    ):
        for n in range(start, stop):
            payload = json.dumps({"id": f"held-{n}", "from": "1234567890@c.us", "body": "x" * 40})
            copy.write_row(
                (TENANT, CLIENT, f"held-{n}", BUCKETS[n % len(BUCKETS)], payload, now, now)
            )
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("ANALYZE approval_messages")


def measure(operation: Callable[[int], None], count: int, warmup: int) -> list[float]:
    for index in range(warmup):
        operation(-1 - index)
    timings = []
    for index in range(count):
        started = time.perf_counter()
        operation(index)
        timings.append(time.perf_counter() - started)
    return timings


def shifted(operation: Callable[[int], None], offset: int) -> Callable[[int], None]:
    """`operation` with its message numbers moved by `offset` (fresh ids for every part)."""
    return lambda index: operation(index + offset)


def summary(timings: list[float]) -> tuple[float, float, float]:
    ordered = sorted(timings)
    median = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return median, p99, len(ordered) / sum(ordered)


# -- the two contenders ----------------------------------------------------------------------


def wastate_lifecycle(size: int) -> Callable[[int], None]:
    from wastate.state_manager import MessageStatus as S
    from wastate.state_manager import StateManager

    manager = StateManager(URL, "none://", tenant_id=TENANT, client_id=CLIENT)

    def run(index: int) -> None:
        message_id = f"w-{size}-{index}"
        assert manager.add_message({"id": message_id, "body": "hello"}, S.INCOMING)
        assert manager.move_message(message_id, S.INCOMING, S.PENDING_APPROVAL)
        assert manager.move_message(message_id, S.PENDING_APPROVAL, S.APPROVED)
        assert manager.move_message(message_id, S.APPROVED, S.SENT)

    run.manager = manager  # type: ignore[attr-defined]
    return run


ADD = """INSERT INTO approval_messages
    (tenant_id, client_id, message_id, status, payload, created_at, status_changed_at)
    VALUES (%s, %s, %s, 'incoming', %s, now(), now())
    ON CONFLICT (tenant_id, client_id, message_id) DO NOTHING RETURNING id"""
MOVE = """UPDATE approval_messages SET status = %s, status_changed_at = now()
    WHERE tenant_id = %s AND client_id = %s AND message_id = %s AND status = %s RETURNING id"""
HISTORY = """INSERT INTO approval_transitions (tenant_id, approval_message_id, from_status,
    to_status, at) VALUES (%s, %s, %s, %s, now())"""
COUNT = """INSERT INTO approval_statistics (tenant_id, client_id, total_incoming,
    total_pending_approval, total_approved, total_rejected, total_sent, total_failed)
    VALUES (%s, %s, 0, 0, 0, 0, 0, 0) ON CONFLICT (tenant_id, client_id)
    DO UPDATE SET {column} = approval_statistics.{column} + 1"""


def raw_lifecycle(size: int) -> Callable[[int], None]:
    """The same statements, one transaction per step, prepared, with plain psycopg."""
    conn = psycopg.connect(DSN, autocommit=True, prepare_threshold=0)

    def step(sql: str, params: tuple[object, ...], source: str | None, target: str) -> None:
        with conn.transaction():
            row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
            assert row is not None
            conn.execute(HISTORY, (TENANT, row[0], source, target))  # type: ignore[arg-type]
            counter = COUNT.format(column=f"total_{target}")
            conn.execute(counter, (TENANT, CLIENT))  # type: ignore[arg-type]

    def run(index: int) -> None:
        message_id = f"r-{size}-{index}"
        payload = json.dumps({"id": message_id, "body": "hello"})
        step(ADD, (TENANT, CLIENT, message_id, payload), None, "incoming")
        for source, target in (
            ("incoming", "pending_approval"),
            ("pending_approval", "approved"),
            ("approved", "sent"),
        ):
            step(MOVE, (target, TENANT, CLIENT, message_id, source), source, target)

    run.conn = conn  # type: ignore[attr-defined]
    return run


# -- export in a child process ---------------------------------------------------------------


def export_child(mode: str, output: str) -> None:
    """Run in a fresh interpreter: one export, printing time and peak memory as JSON."""
    from wastate.state_manager import StateManager

    manager = StateManager(URL, "none://", tenant_id=TENANT, client_id=CLIENT)
    manager.get_statistics()  # connect and warm up before measuring
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if mode == "tracemalloc":
        tracemalloc.start()
    started = time.perf_counter()
    if mode == "raw":
        with psycopg.connect(DSN) as conn, conn.cursor() as cur, open(output, "wb") as out:
            query = "COPY (SELECT payload FROM approval_messages WHERE tenant_id = 'bench'"
            query += " AND client_id = 'default' ORDER BY status, status_changed_at, id) TO STDOUT"
            with cur.copy(query) as copy:  # type: ignore[arg-type]
                for block in copy:
                    out.write(block)
    else:
        manager.export_state(output)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if mode == "tracemalloc" else None
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    manager.close()
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "tracemalloc_peak_mb": None if peak is None else peak / 2**20,
                "maxrss_mb": rss_after / 1024,
                "maxrss_growth_mb": (rss_after - rss_before) / 1024,
                "bytes": os.path.getsize(output),
            }
        )
    )


def run_export(mode: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        output = str(Path(folder) / "state.json")
        result = subprocess.run(
            [sys.executable, __file__, "--export-child", mode, output],
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--export-child", nargs=2, metavar=("MODE", "OUTPUT"))
    args = parser.parse_args()
    if args.export_child:
        export_child(*args.export_child)
        return

    from wastate.migrations import migrate

    sizes = [int(size) for size in args.sizes.split(",")]
    admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{DATABASE}"')
    try:
        migrate(URL)
        rows: list[tuple[str, ...]] = []
        exports: list[tuple[str, ...]] = []
        medians: dict[int, float] = {}
        held = 0
        for size in sizes:
            started = time.perf_counter()
            bulk_load(held, size)
            held = size
            load_seconds = time.perf_counter() - started
            ours, raw = wastate_lifecycle(size), raw_lifecycle(size)
            # Interleave the two so machine noise hits both alike.
            ours_t: list[float] = []
            raw_t: list[float] = []
            for part in range(3):
                warmup = args.warmup if part == 0 else 0
                offset = part * args.ops
                ours_t += measure(shifted(ours, offset), args.ops // 3, warmup)
                raw_t += measure(shifted(raw, offset), args.ops // 3, warmup)
            ours.manager.close()  # type: ignore[attr-defined]
            raw.conn.close()  # type: ignore[attr-defined]
            o, r = summary(ours_t), summary(raw_t)
            medians[size] = o[0]
            rows.append(
                (
                    f"{size:,}",
                    "wastate",
                    f"{o[0] * 1e3:.2f}",
                    f"{o[1] * 1e3:.2f}",
                    f"{o[2]:,.0f}",
                    f"{o[0] / r[0]:.2f}x",
                )
            )
            rows.append(
                (
                    f"{size:,}",
                    "raw psycopg",
                    f"{r[0] * 1e3:.2f}",
                    f"{r[1] * 1e3:.2f}",
                    f"{r[2]:,.0f}",
                    "1.00x",
                )
            )
            print(f"held {size:,} (bulk load {load_seconds:.1f}s): done", file=sys.stderr)
            for mode in ("wastate", "tracemalloc", "raw"):
                result = run_export(mode)
                exports.append(
                    (
                        f"{size:,}",
                        {
                            "wastate": "wastate export",
                            "tracemalloc": "wastate (traced)",
                            "raw": "raw COPY payloads",
                        }[mode],
                        f"{result['seconds']:.2f}",
                        f"{size / result['seconds']:,.0f}",
                        "-"
                        if result["tracemalloc_peak_mb"] is None
                        else f"{result['tracemalloc_peak_mb']:.1f}",
                        f"{result['maxrss_mb']:.0f}",
                        f"{result['maxrss_growth_mb']:.1f}",
                        f"{result['bytes'] / 2**20:.0f}",
                    )
                )
        print(
            "\nOne lifecycle (add + 3 moves = 4 transactions, 12 statements + BEGIN/COMMIT) per op"
        )
        print(table(("held", "path", "median ms", "p99 ms", "ops/s", "vs raw"), rows))
        first, last = sizes[0], sizes[-1]
        print(
            f"\nflatness: median at {last:,} / median at {first:,} = "
            f"{medians[last] / medians[first]:.2f}x (must be <= 1.5x)"
        )
        print("\nExport of the whole history (child process per run)")
        print(
            table(
                (
                    "held",
                    "path",
                    "seconds",
                    "msgs/s",
                    "tracemalloc peak MB",
                    "max RSS MB",
                    "RSS growth MB",
                    "file MB",
                ),
                exports,
            )
        )
    finally:
        admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
