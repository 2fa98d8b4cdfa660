"""HTTP service throughput and latency: `GET /state/mapping/{waId}` on a hot mapping and
`PATCH /state/message/{id}`, against a raw FastAPI/uvicorn baseline measured in the same run.

    .venv/bin/python benchmarks/bench_http.py [--seconds 5] [--connections 1,8]

What runs: a real `wastate serve` (PostgreSQL + Redis, near cache on: the production setup) and a
baseline uvicorn app whose sync route returns a constant JSON body (the floor: HTTP parsing,
routing, the thread-pool hop, JSON rendering). Each for 1 and 2 worker processes. The load
client is a second process on loopback: one thread multiplexing N keep-alive HTTP/1.1
connections over raw sockets (selectors), so the client costs little next to the server. Each
case runs a fixed time after a warm-up; latency is request-sent → full-response-read.

It creates its own database (`wastate_bench_http`) and drops it at the end, uses its own cache key
prefix (deleted at the end), talks only to 127.0.0.1 and stops by itself. Not run in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

HOST = "127.0.0.1"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "wastate_bench_http"
DATABASE_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
REDIS_URL = "redis://127.0.0.1:6379/0"
TENANT = "bench-tenant"
WA_ID = "+919876543210"
MESSAGES = 1000
WASTATE = Path(sys.executable).with_name("wastate")


# --- the baseline app (served by uvicorn in factory mode from this file) ------------------------


def baseline_app() -> FastAPI:
    """A FastAPI app with one sync route shaped like the mapping lookup, returning a constant."""
    app = FastAPI()
    body = {
        "conversationId": str(uuid.uuid4()),
        "waId": WA_ID,
        "tenantId": TENANT,
        "contactName": None,
        "status": "active",
        "communicationId": None,
        "createdAt": "2026-11-22T00:00:00Z",
        "lastActivityAt": "2026-11-22T00:00:00Z",
        "closedAt": None,
    }

    @app.get("/state/mapping/{waId}")
    def constant(request: Request, waId: str) -> JSONResponse:
        request.headers.get("X-Tenant-ID")
        return JSONResponse(body)

    return app


def serve_baseline(port: int, workers: int) -> None:
    """Entry point of the baseline server process."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from wastate.http.serving import NoDelayConfig

    # The same uvicorn set-up as `wastate serve`, TCP_NODELAY workaround included, so the
    # comparison is the application's cost alone.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    config = NoDelayConfig(
        "bench_http:baseline_app", factory=True, host=HOST, port=port, workers=workers,
        log_level="warning",
    )  # fmt: skip
    if workers == 1:
        uvicorn.Server(config).run()
    else:
        Multiprocess(config, sockets=[config.bind_socket()]).run()


# --- the load client (runs in its own process) ---------------------------------------------------


def _request(method: str, path: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nX-Tenant-ID: {TENANT}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def load(
    port: int, requests: list[bytes], connections: int, warmup: float, seconds: float
) -> tuple[list[float], int]:
    """Drive `connections` keep-alive connections round-robin over `requests`; latencies (s) of
    the measured window and the number of non-2xx answers."""
    selector = selectors.DefaultSelector()
    state: dict[socket.socket, dict[str, Any]] = {}
    next_request = 0

    def send(sock: socket.socket) -> None:
        nonlocal next_request
        payload = requests[next_request % len(requests)]
        next_request += 1
        entry = state[sock]
        entry["buffer"] = bytearray()
        entry["started"] = time.perf_counter()
        sock.sendall(payload)

    for _ in range(connections):
        sock = socket.create_connection((HOST, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state[sock] = {}
        selector.register(sock, selectors.EVENT_READ)
        send(sock)

    latencies: list[float] = []
    errors = 0
    begin = time.perf_counter()
    measure_from, stop_at = begin + warmup, begin + warmup + seconds
    while True:
        now = time.perf_counter()
        if now >= stop_at:
            break
        for key, _ in selector.select(timeout=1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            entry = state[sock]
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed a keep-alive connection")
            buffer: bytearray = entry["buffer"]
            buffer += chunk
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                continue
            head = bytes(buffer[:end]).lower()
            start = head.find(b"content-length:")
            length = int(head[start + 15 : head.find(b"\r\n", start)]) if start >= 0 else 0
            if len(buffer) < end + 4 + length:
                continue
            done = time.perf_counter()
            if done >= measure_from:
                latencies.append(done - entry["started"])
                if not buffer.startswith(b"HTTP/1.1 2"):
                    errors += 1
            send(sock)
    for sock in state:
        sock.close()
    return latencies, errors


# --- orchestration -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running(command: list[str], port: int, env: dict[str, str]) -> Iterator[None]:
    """Start a server process, wait until it answers, stop it (SIGINT) at the end."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read().decode()}")  # type: ignore[union-attr]
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(
                    f"http://{HOST}:{port}/state/mapping/{WA_ID}",
                    headers={"X-Tenant-ID": TENANT},
                    timeout=2,
                )
                if answer.status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 60 s")
            time.sleep(0.2)
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Row:
    case: str
    workers: int
    connections: int
    median_ms: float
    p99_ms: float
    rps: float
    errors: int


def measure(
    pool: Any, case: str, workers: int, port: int, requests: list[bytes], connections: int,
    warmup: float, seconds: float,
) -> Row:  # fmt: skip
    latencies, errors = pool.apply(load, (port, requests, connections, warmup, seconds))
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return Row(
        case,
        workers,
        connections,
        statistics.median(ordered) * 1000,
        p99 * 1000,
        len(ordered) / seconds,
        errors,
    )


def setup_database() -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')  # type: ignore[arg-type]
        admin.execute(f'CREATE DATABASE "{DATABASE}"')  # type: ignore[arg-type]


def drop_database() -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')  # type: ignore[arg-type]


def seed_rows(prefix: str) -> list[str]:
    """The hot mapping and MESSAGES tracked messages; their ids."""
    import wastate

    with wastate.connect(DATABASE_URL, REDIS_URL, cache_prefix=prefix) as store:
        store.migrate()
        with store.unit_of_work(TENANT) as uow:
            conversation = uow.mappings.get_or_create(WA_ID).conversation_id
            ids = [f"wamid.bench{n:06d}" for n in range(MESSAGES)]
            uow.messages.track_many(
                [
                    wastate.NewMessage(
                        conversation_id=conversation,
                        meta_message_id=message_id,
                        direction="outbound",
                        status="sent",
                    )
                    for message_id in ids
                ]
            )
    return ids


def raw_update_transaction(message_ids: list[str], seconds: float) -> tuple[float, float]:
    """Median and p99 (ms) of BEGIN + one prepared UPDATE by (tenant, wamid) + COMMIT in raw
    psycopg: the database floor under a PATCH."""
    dsn = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
    statement = (
        "UPDATE message_tracking SET updated_at = now() "
        "WHERE tenant_id = %s AND meta_message_id = %s"
    )
    latencies: list[float] = []
    with psycopg.connect(dsn) as connection:
        stop, n = time.perf_counter() + seconds, 0
        while time.perf_counter() < stop:
            started = time.perf_counter()
            connection.execute(statement, (TENANT, message_ids[n % len(message_ids)]), prepare=True)
            connection.commit()
            latencies.append(time.perf_counter() - started)
            n += 1
    ordered = sorted(latencies)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per case")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", default="1,8", help="comma-separated concurrency levels")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--serve-baseline", nargs=2, type=int, metavar=("PORT", "WORKERS"))
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(*args.serve_baseline)
        return

    prefix = f"benchhttp{uuid.uuid4().hex[:8]}"
    setup_database()
    rows: list[Row] = []
    raw_tx = (0.0, 0.0)
    try:
        message_ids = seed_rows(prefix)
        get_hot = [_request("GET", f"/state/mapping/{WA_ID}")]
        patches = [
            _request("PATCH", f"/state/message/{message_id}", b'{"status":"delivered"}')
            for message_id in message_ids
        ]
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("WASTATE_", "DB_", "REDIS_"))
        }
        env |= {"WASTATE_CACHE_PREFIX": prefix}
        levels = [int(c) for c in args.connections.split(",")]
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            for workers in [int(w) for w in args.workers.split(",")]:
                port = free_port()
                baseline = [sys.executable, __file__, "--serve-baseline", str(port), str(workers)]
                with running(baseline, port, env):
                    for connections in levels:
                        rows.append(
                            measure(
                                pool,
                                "baseline: constant JSON",
                                workers,
                                port,
                                get_hot,
                                connections,
                                args.warmup,
                                args.seconds,
                            )
                        )
                port = free_port()
                serve = [
                    str(WASTATE), "--database-url", DATABASE_URL, "--cache-url", REDIS_URL,
                    "serve", "--port", str(port), "--workers", str(workers),
                    "--log-level", "warning",
                ]  # fmt: skip
                with running(serve, port, env):
                    for connections in levels:
                        rows.append(
                            measure(
                                pool,
                                "GET /state/mapping (hot)",
                                workers,
                                port,
                                get_hot,
                                connections,
                                args.warmup,
                                args.seconds,
                            )
                        )
                        rows.append(
                            measure(
                                pool,
                                "PATCH /state/message",
                                workers,
                                port,
                                patches,
                                connections,
                                args.warmup,
                                args.seconds,
                            )
                        )
        raw_tx = raw_update_transaction(message_ids, args.seconds)
    finally:
        drop_database()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.unlink(key)
        client.close()
    report(rows, raw_tx)


def report(rows: list[Row], raw_tx: tuple[float, float]) -> None:
    base = {(row.workers, row.connections): row for row in rows if row.case.startswith("baseline")}
    print(f"\nHTTP benchmark, {os.cpu_count()} CPUs (client and servers share them)\n")
    header = (
        f"{'case':<26} {'workers':>7} {'conns':>5} {'median ms':>10} {'p99 ms':>9} "
        f"{'req/s':>9} {'req/s vs base':>13} {'median vs base':>14} {'non-2xx':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        floor = base[(row.workers, row.connections)]
        print(
            f"{row.case:<26} {row.workers:>7} {row.connections:>5} {row.median_ms:>10.3f} "
            f"{row.p99_ms:>9.3f} {row.rps:>9.0f} {row.rps / floor.rps:>12.2f}x "
            f"{row.median_ms / floor.median_ms:>13.2f}x {row.errors:>7}"
        )

    print(
        f"\nraw psycopg BEGIN + UPDATE + COMMIT (no HTTP): median {raw_tx[0]:.3f} ms, "
        f"p99 {raw_tx[1]:.3f} ms"
    )
    for row in rows:
        if row.case.startswith("PATCH") and row.connections == 1:
            floor = base[(row.workers, 1)].median_ms + raw_tx[0]
            print(
                f"PATCH, {row.workers} worker(s), 1 conn: median {row.median_ms:.3f} ms = "
                f"{row.median_ms / floor:.2f}x (HTTP floor + raw transaction = {floor:.3f} ms)"
            )


if __name__ == "__main__":
    main()
