"""The cache backend interface, and `NullCache` (`none://`).

A backend stores opaque bytes under string keys with a TTL. It knows nothing of mappings, tenants
or JSON; `wastate.cache.mappings` builds on it. Backends may raise anything when their server
is down or slow: the circuit breaker (`wastate.cache.breaker`) turns that into a cache miss, so
a backend must never be called without it.

Invalidation leaves a *tombstone* (an empty value with a short TTL) instead of deleting, and read
fills only write where no value is (`only_if_absent`): a slow reader that read the database
before a change cannot put its old value back over the tombstone of that change.

Third-party backends subclass `Cache` and register under the entry point group
`wastate.cache_backends` (name = URL scheme, value = `module:Class`); the class is called as
`Class(url, settings)`, plus `monotonic=` when it sets `in_process_clock`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wastate.settings import Settings

__all__ = ["TOMBSTONE", "Cache", "NullCache", "Subscription", "announcement", "read_announcement"]

TOMBSTONE = b""
"""The value an invalidation leaves behind; readers treat it as a miss."""


def announcement(origin: str, keys: Sequence[str]) -> bytes:
    """The pub/sub message of an invalidation: the sender's origin, then the keys, one a line
    (escaped keys hold no newline)."""
    return "\n".join([origin, *keys]).encode()


def read_announcement(message: bytes) -> tuple[str, list[str]]:
    """(origin, keys) of an `announcement`."""
    origin, *keys = message.decode().split("\n")
    return origin, keys


class Subscription(ABC):
    """A running pub/sub listener; `close()` stops it."""

    @abstractmethod
    def close(self) -> None:
        """Stop listening and release the connection."""


class Cache(ABC):
    """A key/value cache backend with TTLs (bytes in, bytes out)."""

    shared: bool = False
    """True when other processes see the same entries (then near caches need pub/sub)."""

    enabled: bool = True
    """False for `NullCache`: the mapping layer then skips caching altogether."""

    in_process_clock: bool = False
    """True when the backend expires entries by this process's monotonic clock (`memory://`):
    it is then called as `Class(url, settings, monotonic=...)`, so a store given a fake clock
    (`wastate.connect(..., monotonic=...)`, for tests) times its entries by that clock too."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The value under `key`, or None."""

    @abstractmethod
    def set_many(
        self, items: Sequence[tuple[str, bytes]], ttl_seconds: float, *, only_if_absent: bool
    ) -> None:
        """Store each (key, value) for `ttl_seconds`; with `only_if_absent`, skip taken keys."""

    def fill(self, items: Sequence[tuple[str, bytes]], ttl_seconds: float) -> None:
        """Store each (key, value) where no value (not even a tombstone) is stored: a read fill.

        A backend may return before the fill is applied (Redis reads its replies later, see
        `settle`); an error may then surface on a later `fill` or `settle`. A lost fill only
        costs a database read later.
        """
        self.set_many(items, ttl_seconds, only_if_absent=True)

    def settle(self) -> None:  # noqa: B027 - optional hook
        """Return once every fill sent so far is applied (or raise what went wrong)."""

    @abstractmethod
    def ping(self) -> None:
        """Return if the backend answers; raise otherwise."""

    def invalidate(
        self,
        keys: Sequence[str],
        *,
        tombstone_seconds: float,
        announce: tuple[str, bytes] | None,
    ) -> None:
        """Replace `keys` by tombstones and publish `announce` (channel, message), if given."""
        self.set_many([(key, TOMBSTONE) for key in keys], tombstone_seconds, only_if_absent=False)
        if announce is not None:
            self.publish(*announce)

    def publish(self, channel: str, message: bytes) -> None:  # noqa: B027 - optional hook
        """Send `message` to the subscribers of `channel` (no-op for process-local caches)."""

    def subscribe(
        self,
        channel: str,
        on_message: Callable[[bytes], None],
        on_reset: Callable[[], None],
    ) -> Subscription | None:
        """Listen on `channel` in the background; None if the backend has no pub/sub.

        `on_reset` is called whenever messages may have been missed (the listener connected
        or reconnected): whoever relies on the messages must then forget what they hold.
        """
        return None

    def clear_namespace(self, pattern: str) -> int:
        """Delete every key matching the glob `pattern`; how many."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class NullCache(Cache):
    """`none://`: caches nothing. Every lookup goes to the database."""

    enabled = False

    def get(self, key: str) -> bytes | None:
        """Always a miss."""
        return None

    def set_many(
        self, items: Sequence[tuple[str, bytes]], ttl_seconds: float, *, only_if_absent: bool
    ) -> None:
        """Store nothing."""

    def ping(self) -> None:
        """Always answers."""
