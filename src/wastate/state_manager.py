"""`StateManager`: the seed-004 API (sessions, approval lifecycle, statistics, config, backup),
drop-in, on a real database.

One `StateManager` is one (tenant, client_id): what the seed kept in one JSON state file. Every
call is its own short unit of work, so the object holds nothing another thread or process could
contradict — the database is the truth, and any number of managers in any number of processes
may work on the same client at once. `export_state()`/`backup_state()` still write the seed's
state-file document (atomically, streaming the messages), and `import_state()` loads one, which
is how a user of the seed's JSON-file manager moves to wastate. The document itself, its files and
the schema policy are use-cases in `wastate.services` (`state_document`, `state_file`, `schema`).

Times in the documents are ISO 8601, timezone-aware UTC (`2026-11-22T03:30:00.123456+00:00`);
imported naive times (the seed wrote local `datetime.now()`) are taken as UTC.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import IO, Any

from wastate.domain.clock import Clock, utcnow
from wastate.domain.ids import normalize_tenant_id
from wastate.domain.lifecycle import MessageStatus
from wastate.domain.sessions import (
    ClientSessionState,
    normalize_client_id,
    requires_qr_scan,
    session_is_valid,
)
from wastate.errors import ConfigurationError
from wastate.services import state_document, state_file
from wastate.services.schema import ensure_schema
from wastate.services.state_document import PROGRESS_EVERY, Progress
from wastate.services.state_file import (
    MAX_DOCUMENT_DEPTH,
    check_progress,
    path_argument,
)
from wastate.store import Store, connect
from wastate.uow import UnitOfWork

__all__ = [
    "DEFAULT_STATE_FILE",
    "MAX_DOCUMENT_DEPTH",
    "PROGRESS_EVERY",
    "MessageStatus",
    "Progress",
    "StateManager",
]

DEFAULT_STATE_FILE = "whatsapp_state.json"


class StateManager:
    """The seed's `StateManager` API for one (tenant, client_id), backed by a wastate store.

    `database_url`/`cache_url` default to the `WASTATE_*` settings, else the embedded default
    (SQLite `./wastate.db`, migrated automatically). A PostgreSQL database must be migrated first
    (`wastate migrate`), else `SchemaNotReady`. `state_file` is the seed-format file
    `export_state()` writes by default and backups are named after; `backup_dir` (default: the
    state file's folder) is where `backup_state()` puts them. `clock` (aware UTC) is for tests.

    `store=` shares one `Store` (one pool, one cache, one activity writer) among many managers —
    a service with 50 clients opens one, not 50. The manager then uses the store's settings and
    clock, so `database_url`, `cache_url` and `clock` may not be given too, and `close()` leaves
    the shared store open (its owner closes it).
    """

    def __init__(
        self,
        database_url: str | None = None,
        cache_url: str | None = None,
        *,
        tenant_id: str = "default",
        client_id: str = "default",
        state_file: str | os.PathLike[str] | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
        clock: Clock = utcnow,
        store: Store | None = None,
    ) -> None:
        self.tenant_id = normalize_tenant_id(tenant_id)
        self.client_id = normalize_client_id(client_id)
        self.state_file = path_argument(
            state_file if state_file is not None else DEFAULT_STATE_FILE, "state_file"
        )
        self.backup_dir = (
            path_argument(backup_dir, "backup_dir")
            if backup_dir is not None
            else self.state_file.parent
        )
        self._owns_store = store is None
        if store is None:
            store = connect(database_url, cache_url, clock=clock)
        elif not isinstance(store, Store):
            raise ConfigurationError(f"store: must be a wastate Store, got {type(store).__name__}")
        elif database_url is not None or cache_url is not None or clock is not utcnow:
            raise ConfigurationError(
                "store: a shared store brings its own database, cache and clock; "
                "do not also pass database_url, cache_url or clock"
            )
        try:
            ensure_schema(store)
        except BaseException:
            if self._owns_store:
                store.close()
            raise
        self._store = store

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The store this manager works on (shared engine and cache)."""
        return self._store

    def _uow(self) -> UnitOfWork:
        return self._store.unit_of_work(self.tenant_id)

    def _now(self) -> datetime:
        return self._store.clock()

    def close(self) -> None:
        """Close the store (connection pool, cache clients) unless it was shared (`store=`).
        Idempotent."""
        if self._owns_store:
            self._store.close()

    def __enter__(self) -> StateManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- session -------------------------------------------------------------------------------

    def _session(self) -> ClientSessionState | None:
        with self._uow() as uow:
            return uow.sessions.get(self.client_id)

    def is_session_valid(self) -> bool:
        """True iff authenticated, not marked invalid, and validated within the interval."""
        return session_is_valid(self._session(), self._now())

    def update_session_status(
        self, authenticated: bool, account_info: Mapping[str, Any] | None = None
    ) -> None:
        """Record an (un)successful authentication check: validation time is now, and
        `account_info` (number, name, platform, …), when given, replaces the stored one."""
        info = state_document.account_payload(account_info)
        with self._uow() as uow:
            uow.sessions.record_authentication(
                self.client_id, authenticated=authenticated, account_info=info
            )

    def mark_session_invalid(self, reason: str | None = None) -> None:
        """Invalidate the session: a QR scan is required until the next authentication."""
        with self._uow() as uow:
            uow.sessions.mark_invalid(self.client_id, reason)

    def requires_qr_scan(self) -> bool:
        """True iff not authenticated or explicitly invalid (a stale validation needs a re-check
        with `update_session_status`, not a QR scan)."""
        return requires_qr_scan(self._session())

    def get_session_info(self) -> dict[str, Any]:
        """The seed's `session` document (plus `invalid_reason` and `invalidated_at`)."""
        session = self._session() or ClientSessionState(client_id=self.client_id)
        return state_document.session_document(session)

    def set_validation_interval(self, minutes: int) -> None:
        """How long a validation stays fresh (the seed's `validation_interval_minutes`)."""
        with self._uow() as uow:
            uow.sessions.set_validation_interval(self.client_id, minutes)

    # -- messages ------------------------------------------------------------------------------

    def add_message(
        self, message_data: Mapping[str, Any], status: MessageStatus | str = MessageStatus.INCOMING
    ) -> bool:
        """Add a message dict (it needs an `id`) in `status`. True if added; False, changing
        nothing, if this client already has a message with that id (adding is idempotent)."""
        with self._uow() as uow:
            return uow.approvals.add(self.client_id, message_data, status)

    def get_messages(
        self, status: MessageStatus | str, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The messages in `status`, in the order they entered it; `limit` keeps the newest."""
        with self._uow() as uow:
            records = uow.approvals.in_status(self.client_id, status, limit)
        return [record.as_seed_dict() for record in records]

    def get_message(self, message_id: str) -> dict[str, Any] | None:
        """One message (with its status and times), or None."""
        with self._uow() as uow:
            record = uow.approvals.get(self.client_id, message_id)
        return None if record is None else record.as_seed_dict()

    def get_message_history(self, message_id: str) -> list[dict[str, Any]]:
        """Every move of a message, oldest first: `{"from", "to", "at", "reason"}` (`from` None
        for the add; messages loaded by `import_state` start their history there)."""
        with self._uow() as uow:
            moves = uow.approvals.history(self.client_id, message_id)
        return [
            {
                "from": None if a is None else a.value,
                "to": b.value,
                "at": at.isoformat(),
                "reason": why,
            }
            for a, b, at, why in moves
        ]

    def move_message(
        self,
        message_id: str,
        from_status: MessageStatus | str,
        to_status: MessageStatus | str,
        *,
        reason: str | None = None,
    ) -> bool:
        """Move a message if it is in `from_status` now (compare-and-set): True if moved, False
        if it is not there (so of two racing approvers exactly one wins). A move the lifecycle
        forbids — or that skips approval while `human_in_the_loop` is on — raises
        `InvalidTransition` and changes nothing. `reason` is kept in the message's history."""
        with self._uow() as uow:
            return uow.approvals.move(
                self.client_id, message_id, from_status, to_status, reason=reason
            )

    def clear_messages(self, status: MessageStatus | str | None = None) -> int:
        """Delete the messages in `status` (all when None); statistics are kept. Returns how
        many were deleted."""
        with self._uow() as uow:
            return uow.approvals.clear(self.client_id, status)

    # -- statistics ----------------------------------------------------------------------------

    def get_statistics(self) -> dict[str, Any]:
        """Entries into each status since the last reset, and the last receive/send times."""
        with self._uow() as uow:
            return uow.statistics.get(self.client_id).as_seed_dict()

    def reset_statistics(self) -> None:
        """Set every counter to zero (messages stay where they are)."""
        with self._uow() as uow:
            uow.statistics.reset(self.client_id)

    # -- config --------------------------------------------------------------------------------

    def get_config(self, key: str, default: Any = None) -> Any:
        """The value of config `key`, or `default` when unset."""
        with self._uow() as uow:
            return uow.config.get(self.client_id, key, default)

    def set_config(self, key: str, value: Any) -> None:
        """Set config `key` to a JSON value."""
        with self._uow() as uow:
            uow.config.set(self.client_id, key, value)

    def update_config(self, updates: Mapping[str, Any]) -> None:
        """Set several config keys at once (all or nothing)."""
        with self._uow() as uow:
            uow.config.update(self.client_id, updates)

    # -- whole state ---------------------------------------------------------------------------

    def get_full_state(self) -> dict[str, Any]:
        """The seed's state-file document: session, account_info, messages (six buckets),
        statistics and config, read as one consistent snapshot."""
        with self._uow() as uow:
            return state_document.materialize(state_document.read_document(uow, self.client_id))

    def export_state(
        self,
        output_file: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> str:
        """Write the state document to `output_file` (default: `state_file`) atomically (temp
        file in the same folder, fsync, rename) from one consistent snapshot, streaming the
        messages in batches so memory stays flat. `progress(n)` hears how many messages are
        written so far, every `PROGRESS_EVERY` and at the end. Returns the path written."""
        path = (
            path_argument(output_file, "output_file")
            if output_file is not None
            else self.state_file
        )
        check_progress(progress)
        state_file.export(path, functools.partial(self._write_document, progress=progress))
        return str(path)

    def backup_state(self, *, progress: Progress | None = None) -> str:
        """Export to `backup_dir/<state file stem>_backup_YYYYMMDD_HHMMSS.json` (UTC time of the
        store's clock; `_2`, `_3`, … when that name is taken). Returns the path written."""
        check_progress(progress)
        write = functools.partial(self._write_document, progress=progress)
        return state_file.backup(self.backup_dir, self.state_file.stem, self._now(), write)

    def import_state(
        self, path: str | os.PathLike[str], *, progress: Progress | None = None
    ) -> int:
        """Make this client's state exactly the seed-format document in `path` (session,
        account_info, messages, statistics, config), in one transaction. Idempotent; a corrupt
        or foreign file raises `InvalidInput` and writes nothing. `progress(n)` hears the
        message count once it is committed. Returns the message count."""
        check_progress(progress)
        document = state_file.load_document(path_argument(path, "path"))
        parsed = state_document.parse_document(document, self.client_id, self._now())
        with self._uow() as uow:
            count = state_document.restore(uow, parsed, self.client_id)
        if progress is not None:
            progress(count)
        return count

    def _write_document(self, out: IO[str], *, progress: Progress | None = None) -> None:
        with self._uow() as uow:
            document = state_document.read_document(uow, self.client_id)
            written = state_document.write_document(out, document, progress=progress)
        if progress is not None:
            progress(written)
