"""Single flight: concurrent misses on one key in one process do the work once.

The first caller (the leader) runs the load; callers arriving while it runs wait for its result
instead of running their own. Used only for reads outside a transaction, where every caller would
see the same committed rows anyway. If the leader fails, or its result is not shareable (its
load wrote in its own transaction), each waiter runs the load itself (it may succeed, and an
error then belongs to its own call).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("done", "failed", "result")

    def __init__(self) -> None:
        # A lock held by the leader until the result is in: waiting is acquire + release.
        # (Cheaper to make than an Event, and every miss makes one.)
        self.done = threading.Lock()
        self.done.acquire()
        self.result: T | None = None
        self.failed = False


class SingleFlight(Generic[T]):
    """Deduplicates concurrent calls per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[T]] = {}

    def do(self, key: str, load: Callable[[], T]) -> T:
        """`load()`, run once for all callers asking for `key` at the same time."""
        return self.do_shared(key, load)[0]

    def do_shared(
        self, key: str, load: Callable[[], T], shareable: Callable[[], bool] | None = None
    ) -> tuple[T, bool]:
        """Like `do`, and whether the result was another caller's.

        The leader asks `shareable()` after its load; if it says no (the load wrote something
        only the leader's transaction can see), the waiters run their own `load` instead.
        """
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            with call.done:
                pass
            if call.failed:
                return load(), False
            return call.result, True  # type: ignore[return-value]
        try:
            call.result = load()
            if shareable is not None and not shareable():
                call.failed = True
            return call.result, False
        except BaseException:
            call.failed = True
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.release()
