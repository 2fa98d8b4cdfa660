"""`memory://`: an in-process, thread-safe TTL LRU cache (the embedded default).

It lives inside one `Store`: other stores and other processes do not see it, so use it where one
store is the only writer of its database (the embedded SQLite default), and Redis otherwise.
`memory://?size=N` bounds the entries (default 100 000); the least recently used go first.

Entries are timed by `monotonic` (`time.monotonic` unless a store or a test injects a fake one):
an entry stored at `t` for `ttl` seconds is live while the clock reads less than `t + ttl`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from wastate.cache.base import Cache
from wastate.domain.clock import Monotonic
from wastate.errors import ConfigurationError

if TYPE_CHECKING:
    from wastate.settings import Settings

__all__ = ["MemoryCache"]

DEFAULT_SIZE = 100_000


class MemoryCache(Cache):
    """A TTL LRU dict behind a lock."""

    in_process_clock = True

    def __init__(
        self,
        url: str = "memory://",
        settings: Settings | None = None,
        *,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self.url = url
        self._monotonic = monotonic
        query = parse_qs(urlsplit(url).query)
        try:
            self.size = int(query.get("size", [DEFAULT_SIZE])[0])
        except ValueError as exc:
            raise ConfigurationError(f"WASTATE_CACHE_URL: bad size in {url!r}") from exc
        if self.size < 1:
            raise ConfigurationError(f"WASTATE_CACHE_URL: size must be at least 1 in {url!r}")
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        """The live value under `key`, or None."""
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            if entry[1] <= self._monotonic():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return entry[0]

    def set_many(
        self, items: Sequence[tuple[str, bytes]], ttl_seconds: float, *, only_if_absent: bool
    ) -> None:
        """Store each item; with `only_if_absent`, keep live entries as they are."""
        now = self._monotonic()
        expires = now + ttl_seconds
        with self._lock:
            for key, value in items:
                if only_if_absent:
                    entry = self._data.get(key)
                    if entry is not None and entry[1] > now:
                        continue
                self._data[key] = (value, expires)
                self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def ping(self) -> None:
        """Always answers."""

    def clear_namespace(self, pattern: str) -> int:
        """Delete the keys matching the glob `pattern`."""
        with self._lock:
            doomed = [key for key in self._data if fnmatchcase(key, pattern)]
            for key in doomed:
                del self._data[key]
        return len(doomed)

    def __len__(self) -> int:
        return len(self._data)
