"""The circuit breaker: a cache that is down or slow never fails a call, nor slows every call.

`GuardedCache` wraps a backend. Closed (normal): calls go to the backend; the first failure
(error or timeout) logs one warning and *opens* the breaker. Open: reads are misses and fills are
skipped at no cost, so callers use the database without paying a timeout per call; a background
thread probes the backend (PING) every `retry_seconds`. Half-open: when a probe answers, the
thread first replays the invalidations that failed meanwhile, then closes the breaker.

Why replay: a close/correlate/expire committed while Redis was unreachable could not tombstone its
keys, and Redis may come back still holding the old entries (a network partition, a paused
server). Each process remembers the keys whose invalidation failed (up to `max_pending`; beyond
that it remembers to delete every mapping key of its prefix instead) and no read goes to the
backend again before they are invalidated. The remaining gap is a process that dies while it
holds pending invalidations: those entries live until their TTL. A Redis restarted empty has
nothing stale.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from wastate.cache.base import Cache, announcement

__all__ = ["GuardedCache"]

log = logging.getLogger(__name__)

_REPLAY_CHUNK = 500


class GuardedCache:
    """A backend behind a circuit breaker, with failed invalidations remembered and replayed."""

    def __init__(
        self,
        backend: Cache,
        *,
        channel: str | None,
        origin: str,
        namespace_pattern: str,
        tombstone_seconds: float,
        retry_seconds: float = 1.0,
        max_pending: int = 100_000,
    ) -> None:
        self.backend = backend
        self._channel = channel
        self._origin = origin
        self._namespace_pattern = namespace_pattern
        self._tombstone_seconds = tombstone_seconds
        self.retry_seconds = retry_seconds
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._lost = False  # more failed invalidations than we keep: wipe the namespace
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None
        self.is_open = False
        """True while the backend is skipped (it failed and has not answered a probe since)."""
        self.failures = 0
        """How many backend calls failed since the store started (for monitoring and tests)."""

    def get(self, key: str) -> bytes | None:
        """The backend's value, or None when it has none or cannot be reached."""
        if self.is_open:
            return None
        try:
            return self.backend.get(key)
        except Exception as exc:  # noqa: BLE001 - any backend failure is a miss
            self._trip(exc)
            return None

    def fill(self, items: Sequence[tuple[str, bytes]], ttl_seconds: float) -> None:
        """Store read results where nothing (not even a tombstone) is stored; best effort."""
        if self.is_open:
            return
        try:
            self.backend.fill(items, ttl_seconds)
        except Exception as exc:  # noqa: BLE001 - a lost fill costs one database read later
            self._trip(exc)

    def settle(self) -> None:
        """Wait until the fills sent so far are applied; a failure trips the breaker."""
        if self.is_open:
            return
        try:
            self.backend.settle()
        except Exception as exc:  # noqa: BLE001 - as for a fill: lost, read again later
            self._trip(exc)

    def invalidate(self, keys: Sequence[str]) -> None:
        """Tombstone `keys` and announce them; if that fails, remember them for the replay."""
        with self._lock:
            if self.is_open:
                self._remember(keys)
                return
        try:
            self.backend.invalidate(
                keys, tombstone_seconds=self._tombstone_seconds, announce=self._announce(keys)
            )
        except Exception as exc:  # noqa: BLE001 - remember it before the backend is read again
            with self._lock:
                self._remember(keys)
            self._trip(exc)

    def _announce(self, keys: Sequence[str]) -> tuple[str, bytes] | None:
        if self._channel is None:
            return None
        return self._channel, announcement(self._origin, keys)

    @property
    def pending(self) -> int:
        """How many invalidations wait for the backend to come back."""
        with self._lock:
            return len(self._pending)

    def _remember(self, keys: Sequence[str]) -> None:
        if self._lost:
            return
        self._pending.update(keys)
        if len(self._pending) > self._max_pending:
            self._pending.clear()
            self._lost = True

    def _trip(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            if self.is_open:
                return
            self.is_open = True
            if self._prober is None:  # one prober at a time; it clears this when it is done
                self._prober = threading.Thread(
                    target=self._probe, name="wastate-cache-probe", daemon=True
                )
                self._prober.start()
        log.warning(
            "cache %s unavailable (%s: %s); using the database until it answers again",
            self.backend.url,
            type(exc).__name__,
            exc,
        )

    def _probe(self) -> None:
        while not self._stop.wait(self.retry_seconds):
            try:
                self.backend.ping()
                self._replay()
            except Exception as exc:  # noqa: BLE001 - still down: try again later
                log.debug("cache probe failed: %s", exc)
                continue
            with self._lock:
                if self.is_open:  # it failed again between the replay and now: keep probing
                    continue
                self._prober = None
            log.warning("cache %s answers again; using it", self.backend.url)
            return
        with self._lock:
            self._prober = None

    def _replay(self) -> None:
        """Invalidate everything remembered, then close the breaker (under the lock, so no
        invalidation slips in between)."""
        while True:
            with self._lock:
                if self._lost:
                    lost, self._lost = True, False
                    keys: list[str] = []
                    self._pending.clear()
                else:
                    lost = False
                    keys = list(self._pending)[:_REPLAY_CHUNK]
                    if not keys:
                        self.is_open = False
                        return
            try:
                if lost:
                    self.backend.clear_namespace(self._namespace_pattern)
                else:
                    self.backend.invalidate(
                        keys,
                        tombstone_seconds=self._tombstone_seconds,
                        announce=self._announce(keys),
                    )
            except BaseException:
                with self._lock:
                    if lost:
                        self._lost = True
                    else:
                        self._remember(keys)
                raise
            if not lost:
                with self._lock:
                    self._pending.difference_update(keys)

    def close(self) -> None:
        """Stop the probe thread and close the backend."""
        self._stop.set()
        with self._lock:
            prober = self._prober
        if prober is not None:
            prober.join(timeout=5)
        self.backend.close()
