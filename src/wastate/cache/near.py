"""The near cache (L1): frozen mapping objects in a dict, in front of the shared cache.

A hit is a dict lookup and a clock check: no JSON, no lock, no I/O. Entries live
`near_cache_ttl_seconds`; that TTL is the staleness bound when an invalidation message is lost
(it normally arrives over pub/sub within milliseconds, and the listener clears the whole L1 on
every reconnect). When full, the oldest-filled entries go first (reads do not reorder, to keep
hits lock-free).

`generation` guards against a slow fill: a filler notes the generation before it reads Redis or
the database, and its result is dropped if any invalidation arrived in between.

Why hand-written, not `cachetools.TTLCache`: a hit here costs 0.14 µs, against 1.6 µs for a
`TTLCache` behind the lock it needs to be thread-safe (its reads reorder and expire entries, so
they must be locked too). The near cache exists to make hits cheap; that difference is its point.

Time is `monotonic` (`time.monotonic` unless a test injects a fake): an entry put at `t` is live
while the clock reads less than `t + ttl` and gone from `t + ttl` on. Read into a local and
called, the injected clock costs what `time.monotonic()` looked up as a module global does, so
the seam is free on the hit path (measured: 116 ns against 117 ns per hit).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from wastate.domain.clock import Monotonic
from wastate.domain.mappings import ConversationMapping

__all__ = ["NearCache"]


class NearCache:
    """A bounded, TTL'd dict of mapping objects. Reads are lock-free; writes take a lock."""

    __slots__ = ("_data", "_lock", "_monotonic", "generation", "size", "ttl")

    def __init__(
        self, *, ttl_seconds: float, size: int, monotonic: Monotonic = time.monotonic
    ) -> None:
        self.ttl = ttl_seconds
        self.size = size
        self._monotonic = monotonic
        self._data: dict[str, tuple[ConversationMapping, float]] = {}
        self._lock = threading.Lock()
        self.generation = 0
        """Bumped by every invalidation; fills started under an older generation are dropped."""

    def get(self, key: str) -> ConversationMapping | None:
        """The live entry under `key`, or None."""
        entry = self._data.get(key)
        if entry is None:
            return None
        now = self._monotonic  # called from a local: `self._monotonic()` costs ~7 ns more (3.11)
        if entry[1] <= now():
            return None
        return entry[0]

    def put(self, items: Iterable[tuple[str, ConversationMapping]], generation: int) -> None:
        """Store `items` unless an invalidation happened since `generation` was read."""
        expires = self._monotonic() + self.ttl
        data = self._data
        with self._lock:
            if generation != self.generation:
                return
            for key, value in items:
                data.pop(key, None)  # re-insert at the end: eviction order is fill order
                data[key] = (value, expires)
            while len(data) > self.size:
                del data[next(iter(data))]

    def discard(self, keys: Iterable[str]) -> None:
        """Forget `keys` (an invalidation)."""
        with self._lock:
            self.generation += 1
            for key in keys:
                self._data.pop(key, None)

    def clear(self) -> None:
        """Forget everything (messages may have been missed)."""
        with self._lock:
            self.generation += 1
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
