"""Running the service under uvicorn: one process over a given store, or N worker processes that
each build their own store (`app_factory`).

Multi-worker mode works around uvicorn's lost `TCP_NODELAY` (Kludex/uvicorn#3149, open): the
supervisor binds the listening socket with `proto` 0, accepted sockets inherit it, and asyncio
only enables `TCP_NODELAY` for `proto == IPPROTO_TCP` — so every keep-alive answer sent in two
segments waited ~40 ms for the client's delayed ACK. The socket is re-wrapped with `IPPROTO_TCP`
before the workers inherit it (same file descriptor, same address).
"""

from __future__ import annotations

import contextlib
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from wastate.http.app import create_app
from wastate.store import Store

__all__ = ["NoDelayConfig", "run_server"]


class NoDelayConfig(uvicorn.Config):
    """A uvicorn config whose bound TCP socket says it is TCP (see the module docstring)."""

    def bind_socket(self) -> socket.socket:
        """The listening socket, re-wrapped with `IPPROTO_TCP`."""
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto != socket.IPPROTO_TCP:
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
            sock.set_inheritable(True)
        return sock


def run_server(
    *, host: str, port: int, workers: int, log_level: str, store: Store | None = None
) -> None:
    """Serve until interrupted: over `store` in this process (workers == 1), else in `workers`
    processes that each open a store from the environment (`wastate.http:app_factory`)."""
    if workers == 1:
        if store is None:
            raise ValueError("one worker serves a store given by the caller")
        uvicorn.run(create_app(store), host=host, port=port, log_level=log_level)
        return
    config = NoDelayConfig(
        "wastate.http:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[config.bind_socket()]).run()
