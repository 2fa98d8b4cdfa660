"""The store's coalesced `last_activity_at` writer: a lookup costs a dict write, not a database
write.

It lives beside the store, not among the repositories: it runs on the engine, outside any unit
of work, in its own short transactions on a background thread. Its SQL (`TOUCH_ACTIVITY`) stays
with the rest of the mapping family's in `wastate.repositories.mappings`.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from wastate.db.dialect import dialect_of
from wastate.db.errors import translate_db_error
from wastate.domain.clock import Clock
from wastate.domain.mappings import ConversationMapping
from wastate.repositories.mappings import TOUCH_ACTIVITY, touch_row

__all__ = ["ActivityWriter"]

log = logging.getLogger(__name__)


class ActivityWriter:
    """Coalesces `last_activity_at` refreshes: a lookup costs a dict write, not a database write.

    `record` keeps the newest time per user (tenant, wa_id: the key that survives a `correlate`)
    and skips mappings refreshed within the last `interval` seconds; a background thread writes
    everything pending every `interval` seconds in one batched statement (never moving a time
    backwards). `take(tenant)` hands a tenant's pending refreshes to a unit of work, which writes
    them in its own transaction before expiring idle mappings. `close()` (from `Store.close()`)
    writes what is left. Worst-case staleness of `last_activity_at` in the database: about two
    intervals (one of throttling, one of waiting for the flush); a crashed process loses at most
    the last interval's refreshes.
    """

    def __init__(self, engine: Engine, *, interval: float, clock: Clock) -> None:
        self._engine = engine
        self._interval = interval
        self._throttle = timedelta(seconds=interval)
        self._clock = clock
        self._pending: dict[tuple[str, str], datetime] = {}
        self._in_flight: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()
        # One flush at a time: a flush that finds nothing pending must not return while another
        # is still writing what it took.
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._begin = dialect_of(engine).begin

    def record(self, mapping: ConversationMapping) -> None:
        """Note that `mapping` was used now (cheap; written later in a batch)."""
        now = self._clock()
        if now - mapping.last_activity_at < self._throttle or self._closed:
            return
        key = (mapping.tenant_id, mapping.wa_id)
        with self._lock:
            self._pending[key] = now
            if self._thread is None:
                self._start()

    def pending(self) -> int:
        """How many mappings wait for their activity to be written."""
        with self._lock:
            return len(self._pending)

    def take(self, tenant_id: str) -> list[tuple[str, datetime]]:
        """Remove and return one tenant's pending refreshes as (wa_id, time) pairs.

        Refreshes a background flush is writing right now are included too (writing one twice
        is harmless): the caller never waits for that flush, which may itself be waiting for
        the caller's transaction.
        """
        with self._lock:
            mine = {key[1]: at for key, at in self._in_flight.items() if key[0] == tenant_id}
            for key in [key for key in self._pending if key[0] == tenant_id]:
                mine[key[1]] = self._pending.pop(key)
            return list(mine.items())

    def flush(self) -> int:
        """Write every pending refresh now; returns how many mappings were written."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, {}
            self._in_flight = batch
        if not batch:
            return 0
        try:
            return self._write(batch)
        finally:
            with self._lock:
                self._in_flight = {}

    def _write(self, batch: dict[tuple[str, str], datetime]) -> int:
        rows = [touch_row(tenant, wa_id, at) for (tenant, wa_id), at in batch.items()]
        try:
            with self._engine.connect() as connection:
                connection.exec_driver_sql(self._begin)
                try:
                    connection.execute(TOUCH_ACTIVITY, rows)
                except BaseException:
                    connection.exec_driver_sql("ROLLBACK")
                    raise
                connection.exec_driver_sql("COMMIT")
        except DBAPIError as exc:
            with self._lock:  # keep them for the next attempt, newest time wins
                for key, at in batch.items():
                    if self._pending.get(key, at) <= at:
                        self._pending[key] = at
            log.warning("activity flush failed; will retry: %s", translate_db_error(exc) or exc)
            return 0
        return len(rows)

    def close(self) -> None:
        """Stop the background writer and write what is pending."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        self.flush()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wastate-activity", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._wake.wait(self._interval):
            try:
                self.flush()
            except Exception:  # the writer must outlive any one failure
                log.exception("activity flush crashed")

    def __repr__(self) -> str:
        return f"ActivityWriter(interval={self._interval}, pending={self.pending()})"
