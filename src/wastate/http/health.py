"""`/health`: is the database answering, is the cache answering, and how fast.

The database is essential (down → 503 `unhealthy`); the cache is not — wastate falls back to the
database when Redis is down — so a cache outage is a 200 `degraded`.
"""

from __future__ import annotations

import time
from typing import Any

from wastate.errors import one_line
from wastate.store import Store

__all__ = ["HealthChecker"]


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


class HealthChecker:
    """Probes one store's database and cache."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def report(self) -> tuple[int, dict[str, Any]]:
        """The HTTP status and the body of `/health`."""
        from wastate import __version__

        database = self._database()
        cache = self._cache()
        if database["status"] != "up":
            status, code = "unhealthy", 503
        elif cache["status"] != "up":
            status, code = "degraded", 200
        else:
            status, code = "healthy", 200
        body = {
            "status": status,
            "service": "state-manager",
            "version": __version__,
            "checks": {"database": database, "cache": cache},
        }
        return code, body

    def close(self) -> None:
        """Nothing of its own to release (the probes use the store's connections)."""

    def _database(self) -> dict[str, Any]:
        backend = self._store.dialect.name
        started = time.perf_counter()
        try:
            self._store.ping_database()
        except Exception as exc:  # noqa: BLE001 - any failure is "down", reported in the body
            return _down(started, backend, exc)
        return _up(started, backend)

    def _cache(self) -> dict[str, Any]:
        backend_name = self._store.settings.cache_url.partition("://")[0]
        started = time.perf_counter()
        try:
            self._store.ping_cache()  # Redis's real state, not the breaker's memory of it
        except Exception as exc:  # noqa: BLE001 - any failure is "down", reported in the body
            return _down(started, backend_name, exc)
        return _up(started, backend_name)


def _up(started: float, backend: str) -> dict[str, Any]:
    return {"status": "up", "latencyMs": _elapsed_ms(started), "backend": backend}


def _down(started: float, backend: str, exc: BaseException) -> dict[str, Any]:
    return {
        "status": "down",
        "latencyMs": _elapsed_ms(started),
        "backend": backend,
        "error": one_line(exc, limit=300),
    }
