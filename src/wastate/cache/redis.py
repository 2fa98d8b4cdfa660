"""`redis://`, `rediss://`, `unix://`: the shared cache on Redis (redis-py).

Timeouts are short (`settings.cache_timeout_seconds` for connecting and for every reply) and
redis-py's own retries are off: a Redis that is down or slow costs one short timeout, after which
the circuit breaker skips Redis altogether until it answers again. Invalidations are pipelined
(tombstones and the pub/sub message in one round trip).

Read fills (`SET … NX PX`) do not wait for their replies. A fill's result is never used, and on a
busy machine waiting for Redis to wake up and answer cost more than anything else a new user's
`get_or_create` does in Python (about 120 µs of a 60 µs pipeline). So fills go out on one
dedicated connection and their replies are read just before the next fill is sent (by then they
have arrived), or by `settle()`. The commands reach Redis at once, in order: a fill sent before an
invalidation's tombstone is applied before it or refused by it (NX), exactly as when waiting. An
error reply or a broken connection surfaces at the next fill or `settle()` and trips the breaker
there; the fills lost with it cost a database read each, later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import redis
from redis.backoff import NoBackoff
from redis.connection import ConnectionInterface
from redis.retry import Retry

from wastate.cache.base import TOMBSTONE, Cache, Subscription
from wastate.errors import ConfigurationError

if TYPE_CHECKING:
    from wastate.settings import Settings

__all__ = ["RedisCache"]

log = logging.getLogger(__name__)

_MAX_RECONNECT_DELAY = 2.0


class RedisCache(Cache):
    """A Redis (or Redis-compatible) server as the shared cache."""

    shared = True

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self._timeout = settings.cache_timeout_seconds
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),
                client_name="wastate",
            )
        except ValueError as exc:
            raise ConfigurationError(f"WASTATE_CACHE_URL: {exc}") from exc
        self._get = self._client.get  # the hot path: skip one attribute lookup per call
        # Fills: one connection of their own, and how many of its replies are still unread.
        self._fill_lock = threading.Lock()
        self._fill_connection: ConnectionInterface | None = None
        self._unread = 0

    def get(self, key: str) -> bytes | None:
        """The value under `key`, or None."""
        return cast("bytes | None", self._get(key))  # decode_responses is off: bytes

    def set_many(
        self, items: Sequence[tuple[str, bytes]], ttl_seconds: float, *, only_if_absent: bool
    ) -> None:
        """Store each item in one round trip (`SET … PX … [NX]`)."""
        milliseconds = max(1, int(ttl_seconds * 1000))
        pipe = self._client.pipeline(transaction=False)
        for key, value in items:
            pipe.set(key, value, px=milliseconds, nx=only_if_absent)
        pipe.execute()

    def fill(self, items: Sequence[tuple[str, bytes]], ttl_seconds: float) -> None:
        """Send `SET … PX … NX` for each item without waiting for the replies (see the module
        docstring); raises what the previous fills' replies or this send ran into."""
        ttl = str(max(1, int(ttl_seconds * 1000))).encode()
        packed = b"".join(_set_nx(key.encode(), value, ttl) for key, value in items)
        # Fills share one connection: a caller waits for another's send at most one timeout,
        # then drops its fill (the one holding the lock reports what is slow), so a stalled
        # Redis costs each caller one timeout, as with a connection each, not one per waiter.
        if not self._fill_lock.acquire(timeout=self._timeout):
            return
        try:
            self._send_fill(packed, len(items))
        finally:
            self._fill_lock.release()

    def _send_fill(self, packed: bytes, count: int) -> None:
        """Send on the fill connection (the caller holds the lock), replacing a dead one."""
        connection = self._fill_connection
        if connection is not None:
            try:
                self._read_fill_replies(connection)
                if connection.can_read(0):  # nothing is due: the server closed it
                    raise redis.ConnectionError("unexpected data on the fill connection")
            except redis.ConnectionError:
                # Closed while idle (e.g. Redis restarted since the last fill): this fill
                # goes out on a new connection; only its own failure trips the breaker.
                self._drop_fill_connection()
                connection = None
            except BaseException:
                self._drop_fill_connection()
                raise
        if connection is None:
            # Built from the pool's settings but not counted in it: replacing it after a
            # restart must not use up a `max_connections` limit.
            pool = self._client.connection_pool
            connection = pool.connection_class(**pool.connection_kwargs)
            self._fill_connection = connection
        try:
            connection.send_packed_command([packed], check_health=False)
        except BaseException:
            self._drop_fill_connection()
            raise
        self._unread += count

    def settle(self) -> None:
        """Wait for the replies of every fill sent so far; raise the first error among them."""
        with self._fill_lock:
            connection = self._fill_connection
            if connection is None or not self._unread:
                return
            try:
                self._read_fill_replies(connection)
            except BaseException:
                self._drop_fill_connection()
                raise

    def _read_fill_replies(self, connection: ConnectionInterface) -> None:
        while self._unread:
            connection.read_response()  # an error reply is raised (ResponseError)
            self._unread -= 1

    def _drop_fill_connection(self) -> None:
        connection, self._fill_connection = self._fill_connection, None
        self._unread = 0
        if connection is not None:
            connection.disconnect()  # type: ignore[no-untyped-call]

    def invalidate(
        self,
        keys: Sequence[str],
        *,
        tombstone_seconds: float,
        announce: tuple[str, bytes] | None,
    ) -> None:
        """Tombstones for `keys` and the pub/sub message, in one round trip."""
        milliseconds = max(1, int(tombstone_seconds * 1000))
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, TOMBSTONE, px=milliseconds)
        if announce is not None:
            pipe.publish(*announce)
        pipe.execute()

    def publish(self, channel: str, message: bytes) -> None:
        """PUBLISH `message` on `channel`."""
        self._client.publish(channel, message)

    def ping(self) -> None:
        """PING, or raise."""
        self._client.ping()

    def clear_namespace(self, pattern: str) -> int:
        """SCAN for `pattern` and UNLINK what matches, in batches."""
        done = 0
        batch: list[Any] = []
        for key in self._client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                done += int(self._client.unlink(*batch))
                batch.clear()
        if batch:
            done += int(self._client.unlink(*batch))
        return done

    def subscribe(
        self,
        channel: str,
        on_message: Callable[[bytes], None],
        on_reset: Callable[[], None],
    ) -> Subscription:
        """Listen on `channel` in a daemon thread that reconnects by itself."""
        return _Listener(self.url, channel, on_message, on_reset, self._timeout)

    def close(self) -> None:
        """Apply the fills still in flight (best effort), close the connections."""
        try:
            self.settle()
        except Exception:  # closing: a lost fill is only a later miss
            log.debug("fills lost at close", exc_info=True)
        with self._fill_lock:
            self._drop_fill_connection()
        self._client.close()


def _set_nx(key: bytes, value: bytes, ttl_milliseconds: bytes) -> bytes:
    """`SET key value PX ttl NX` in RESP (redis-py's general packer costs 6 µs per command)."""
    return b"*6\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nPX\r\n$%d\r\n%b\r\n$2\r\nNX\r\n" % (
        len(key),
        key,
        len(value),
        value,
        len(ttl_milliseconds),
        ttl_milliseconds,
    )


class _Listener(Subscription):
    """The pub/sub thread. Any connection trouble: reset (the caller clears its near cache),
    wait a little, reconnect, subscribe again, reset again (messages sent meanwhile are lost)."""

    def __init__(
        self,
        url: str,
        channel: str,
        on_message: Callable[[bytes], None],
        on_reset: Callable[[], None],
        timeout: float,
    ) -> None:
        # A listener waits for messages, so its reads may block longer than a command's; the
        # health check PINGs an idle connection so a silently dead one is noticed.
        self._read_timeout = max(1.0, timeout * 4)
        self._client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=self._read_timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=1,
            client_name="wastate-listener",
        )
        self._channel = channel
        self._on_message = on_message
        self._on_reset = on_reset
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wastate-cache-pubsub", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                confirmation = pubsub.get_message(timeout=self._read_timeout)
                if confirmation is None or confirmation.get("type") != "subscribe":
                    raise redis.ConnectionError("no subscription confirmation")
                # Subscribed: from now on no message is missed; what we hold may be stale.
                self._on_reset()
                self.connected.set()
                delay = 0.05
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.2)  # also how soon close() is seen
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
            except Exception as exc:  # noqa: BLE001 - any failure: forget, back off, reconnect
                if self.connected.is_set():
                    log.warning("cache invalidation listener lost its connection: %s", exc)
                self.connected.clear()
                self._on_reset()
                self._stop.wait(delay)
                delay = min(delay * 2, _MAX_RECONNECT_DELAY)
            finally:
                try:
                    pubsub.close()
                except Exception:  # closing a broken connection may fail; it is gone anyway
                    log.debug("pubsub close failed", exc_info=True)

    def close(self) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._client.close()
