"""`StateManager`: the seed-004 API (sessions, approval lifecycle, statistics, config, backup),
drop-in, on a real database.

One `StateManager` is one (tenant, client_id): what the seed kept in one JSON state file. Every
call is its own short unit of work, so the object holds nothing another thread or process could
contradict — the database is the truth, and any number of managers in any number of processes
may work on the same client at once. `export_state()`/`backup_state()` still write the seed's
state-file document (atomically, streaming the messages), and `import_state()` loads one, which
is how a user of the seed's JSON-file manager moves to wastate.

Times in the documents are ISO 8601, timezone-aware UTC (`2026-11-22T03:30:00.123456+00:00`);
imported naive times (the seed wrote local `datetime.now()`) are taken as UTC.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

from wastate.domain.clock import Clock, as_utc, utcnow
from wastate.domain.clock import isoformat as _iso
from wastate.domain.ids import normalize_tenant_id
from wastate.domain.lifecycle import (
    RESERVED_MESSAGE_KEYS,
    ApprovalRecord,
    LifecycleStatistics,
    MessageStatus,
    json_value,
    normalize_config_key,
    normalize_message_id,
    parse_message_status,
)
from wastate.domain.messages import invalid_input_from
from wastate.domain.sessions import (
    DEFAULT_SESSION_PATH,
    DEFAULT_VALIDATION_INTERVAL_MINUTES,
    ClientSessionState,
    normalize_client_id,
    requires_qr_scan,
    session_is_valid,
)
from wastate.errors import ConfigurationError, InvalidInput, SchemaNotReady
from wastate.store import Store, connect

if sys.platform != "win32":
    import fcntl
from wastate.uow import UnitOfWork

__all__ = ["DEFAULT_STATE_FILE", "MessageStatus", "Progress", "StateManager"]

Progress = Callable[[int], None]
"""Told how many messages a long export or import has handled so far."""

PROGRESS_EVERY = 1000

DEFAULT_STATE_FILE = "whatsapp_state.json"
_ACCOUNT_FIELDS = ("number", "name", "platform")
_STATISTIC_KEYS = (
    "total_incoming",
    "total_sent",
    "total_failed",
    "total_approved",
    "total_rejected",
    "total_pending_approval",
)


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
        self.state_file = _path(
            state_file if state_file is not None else DEFAULT_STATE_FILE, "state_file"
        )
        self.backup_dir = (
            _path(backup_dir, "backup_dir") if backup_dir is not None else self.state_file.parent
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
            _ensure_schema(store)
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
        info = _account_payload(account_info)
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
        return _session_document(self._session() or ClientSessionState(client_id=self.client_id))

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
            uow.approvals.open_snapshot()
            head = _read_head(uow, self.client_id)
            messages = {
                status.value: [
                    r.as_seed_dict() for r in uow.approvals.iter_bucket(self.client_id, status)
                ]
                for status in MessageStatus
            }
        return {
            "session": head["session"],
            "account_info": head["account_info"],
            "messages": messages,
            "statistics": head["statistics"],
            "config": head["config"],
        }

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
        path = _path(output_file, "output_file") if output_file is not None else self.state_file
        _check_progress(progress)
        try:
            _atomic_write(path, functools.partial(self._write_document, progress=progress))
        except OSError as exc:  # the path given cannot be written: a folder, read-only, …
            raise _unwritable("output_file", path, exc) from exc
        return str(path)

    def backup_state(self, *, progress: Progress | None = None) -> str:
        """Export to `backup_dir/<state file stem>_backup_YYYYMMDD_HHMMSS.json` (UTC time of the
        store's clock; `_2`, `_3`, … when that name is taken). Returns the path written."""
        _check_progress(progress)
        try:
            return self._backup(progress)
        except OSError as exc:  # the folder cannot be written: a file, read-only, …
            raise _unwritable("backup_dir", self.backup_dir, exc) from exc

    def _backup(self, progress: Progress | None) -> str:
        stamp = self._now().astimezone(UTC).strftime("%Y%m%d_%H%M%S")
        base = f"{self.state_file.stem}_backup_{stamp}"
        # The temp files a killed backup left carry that backup's name, not this one's.
        every_backup = rf"{re.escape(self.state_file.stem)}_backup_\d{{8}}_\d{{6}}(_\d+)?\.json"
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        path, attempt = self.backup_dir / f"{base}.json", 1
        while True:
            try:
                # Claim the name so two backups in one second never overwrite each other.
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                break
            except FileExistsError:
                attempt += 1
                path = self.backup_dir / f"{base}_{attempt}.json"
        try:
            _atomic_write(
                path,
                functools.partial(self._write_document, progress=progress),
                stale=every_backup,
            )
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return str(path)

    def import_state(
        self, path: str | os.PathLike[str], *, progress: Progress | None = None
    ) -> int:
        """Make this client's state exactly the seed-format document in `path` (session,
        account_info, messages, statistics, config), in one transaction. Idempotent; a corrupt
        or foreign file raises `InvalidInput` and writes nothing. `progress(n)` hears the
        message count once it is committed. Returns the message count."""
        _check_progress(progress)
        document = _load_document(_path(path, "path"))
        parsed = _parse_document(document, self.client_id, self._now())
        with self._uow() as uow:
            uow.sessions.replace(parsed.session)
            uow.statistics.replace(self.client_id, parsed.statistics)
            uow.config.replace_all(self.client_id, parsed.config)
            count = uow.approvals.replace_all(self.client_id, parsed.messages)
        if progress is not None:
            progress(count)
        return count

    def _write_document(self, out: IO[str], *, progress: Progress | None = None) -> None:
        written = 0
        with self._uow() as uow:
            uow.approvals.open_snapshot()
            head = _read_head(uow, self.client_id)
            out.write('{\n  "session": ')
            out.write(_dumps(head["session"]))
            out.write(',\n  "account_info": ')
            out.write(_dumps(head["account_info"]))
            out.write(',\n  "messages": {')
            for index, status in enumerate(MessageStatus):
                out.write(f'{"," if index else ""}\n    "{status.value}": [')
                first = True
                for record in uow.approvals.iter_bucket(self.client_id, status):
                    out.write("\n      " if first else ",\n      ")
                    out.write(_dumps(record.as_seed_dict()))
                    first = False
                    written += 1
                    if progress is not None and written % PROGRESS_EVERY == 0:
                        progress(written)
                out.write("]" if first else "\n    ]")
            out.write('\n  },\n  "statistics": ')
            out.write(_dumps(head["statistics"]))
            out.write(',\n  "config": ')
            out.write(_dumps(head["config"]))
            out.write("\n}\n")
        if progress is not None:
            progress(written)


# -- helpers ---------------------------------------------------------------------------------


def _ensure_schema(store: Store) -> None:
    """SQLite (the embedded default) is migrated on first use; a server database must be
    migrated by its operator, so an unmigrated one is refused."""
    if store.engine.dialect.name != "sqlite":
        store.require_current_schema()
        return
    try:
        store.require_current_schema()
    except SchemaNotReady:
        try:
            store.migrate()
        except Exception:  # noqa: BLE001 - re-checked just below
            # Concurrent first uses are safe (`migrate` serializes them on the file's write
            # lock); this answers e.g. a file at a revision newer than this wastate knows.
            store.require_current_schema()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _read_head(uow: UnitOfWork, client_id: str) -> dict[str, Any]:
    session = uow.sessions.get(client_id) or ClientSessionState(client_id=client_id)
    return {
        "session": _session_document(session),
        "account_info": _account_document(session),
        "statistics": uow.statistics.get(client_id).as_seed_dict(),
        "config": uow.config.all(client_id),
    }


def _session_document(session: ClientSessionState) -> dict[str, Any]:
    return {
        "authenticated": session.authenticated,
        "last_authenticated": _iso(session.last_authenticated),
        "session_valid": session.session_valid,
        "session_path": session.session_path,
        "requires_qr": requires_qr_scan(session),
        "last_validation": _iso(session.last_validation),
        "validation_interval_minutes": session.validation_interval_minutes,
        "invalid_reason": session.invalid_reason,
        "invalidated_at": _iso(session.invalidated_at),
    }


def _account_document(session: ClientSessionState) -> dict[str, Any]:
    info = session.account_info
    document: dict[str, Any] = dict.fromkeys(_ACCOUNT_FIELDS) if info is None else dict(info)
    document["last_updated"] = _iso(session.account_updated_at)
    return document


def _account_payload(account_info: object) -> dict[str, Any] | None:
    """Account info as stored: a JSON object, without `last_updated` (wastate keeps that)."""
    if account_info is None:
        return None
    if not isinstance(account_info, Mapping):
        raise InvalidInput("account_info", f"must be a dict, got {type(account_info).__name__}")
    info = {k: v for k, v in account_info.items() if k != "last_updated"}
    stored: dict[str, Any] = json_value(info, field="account_info")
    return stored


def _path(value: object, field: str) -> Path:
    """A file or folder argument as a `Path`; one no file system call could take is refused."""
    if not isinstance(value, str | os.PathLike):
        raise InvalidInput(field, f"must be a path, got {type(value).__name__}")
    try:
        encoded = os.fsencode(value)
    except (TypeError, UnicodeEncodeError) as exc:
        raise InvalidInput(field, "is not a path the file system can encode") from exc
    if b"\x00" in encoded:
        raise InvalidInput(field, "must not contain NUL characters")
    return Path(os.fsdecode(encoded))


# OSErrors that say the path given is wrong (a folder, missing, read-only, too long…), as opposed
# to the machine failing (a full disk, an I/O error), which stays an OSError.
_PATH_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EBUSY,
        errno.EEXIST,
        errno.EINVAL,
        errno.EISDIR,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EPERM,
        errno.EROFS,
        errno.EXDEV,
    }
)


def _unwritable(field: str, path: Path, exc: OSError) -> OSError | InvalidInput:
    if exc.errno not in _PATH_ERRNOS:
        return exc
    return InvalidInput(field, f"cannot write {str(path)!r}: {exc.strerror or exc}")


def _check_progress(progress: object) -> None:
    if progress is not None and not callable(progress):
        raise InvalidInput("progress", f"must be callable, got {type(progress).__name__}")


_M = TypeVar("_M", bound=BaseModel)


def _model(model: type[_M], field: str, **values: Any) -> _M:
    """`model(**values)`, or `InvalidInput` naming the part of the document that is wrong."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise invalid_input_from(exc, prefix=field) from exc


def _atomic_write(
    path: Path, write: Callable[[IO[str]], None], *, stale: str | None = None
) -> None:
    """Write `path` so that it is either the old file or the complete new one, never half.

    The temp file (`.<name>.XXXXXXXX.tmp`, same folder) is removed on any exception, ^C and the
    signals the CLI turns into one. A process killed outright leaves it behind: the next write
    next to it removes the temp files of `stale` (a file name pattern, default: this target's)
    that no live writer holds locked.
    """
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(folder, stale if stale is not None else re.escape(path.name))
    fd, temp_name = _locked_temp_file(folder, path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
            # Renamed while still locked: a cleaner never takes a finished temp file.
            os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_folder(folder)


_TEMP_TAIL = r"\.[a-z0-9_]{8}\.tmp"  # what tempfile.mkstemp(prefix=".<name>.", suffix=".tmp") adds


def _locked_temp_file(folder: Path, name: str) -> tuple[int, str]:
    """A new temp file for `name` in `folder`, open and exclusively locked (POSIX `flock`): the
    lock, released by the kernel whatever way the process ends, is how a cleaner tells a live
    temp file from one left by a killed writer."""
    while True:
        fd, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        if sys.platform == "win32":  # pragma: no cover - no flock; stale files stay
            return fd, temp_name
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A cleaner may have taken the file between its creation and our lock.
            if os.path.samestat(os.fstat(fd), os.stat(temp_name)):
                return fd, temp_name
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
        os.close(fd)


def _remove_stale_temp_files(folder: Path, name_pattern: str) -> None:
    """Remove `.<name>.XXXXXXXX.tmp` files (`name` matching `name_pattern`) that no writer holds
    locked: what an export killed outright (SIGKILL, power loss) left behind."""
    if sys.platform == "win32":  # pragma: no cover - no flock: a live file cannot be told apart
        return
    pattern = re.compile(rf"\.(?:{name_pattern}){_TEMP_TAIL}")
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not pattern.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: a live writer
                    if os.path.samestat(os.fstat(fd), os.stat(entry.path, follow_symlinks=False)):
                        os.unlink(entry.path)
                finally:
                    os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); platforms without folder fds skip it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- import ----------------------------------------------------------------------------------


class _ParsedState:
    __slots__ = ("config", "messages", "session", "statistics")

    def __init__(
        self,
        session: ClientSessionState,
        statistics: LifecycleStatistics,
        config: dict[str, Any],
        messages: list[ApprovalRecord],
    ) -> None:
        self.session = session
        self.statistics = statistics
        self.config = config
        self.messages = messages


MAX_DOCUMENT_DEPTH = 100
"""How deeply a state file may nest arrays and objects (a seed document needs about ten)."""


def _load_document(path: Path) -> Any:
    try:
        with path.open("r", encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise InvalidInput("path", f"cannot read {str(path)!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput("path", f"{str(path)!r} is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            "path", f"{str(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from exc
    except RecursionError as exc:
        raise InvalidInput(
            "path", f"{str(path)!r} nests deeper than {MAX_DOCUMENT_DEPTH} levels"
        ) from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        reason = str(exc).partition(":")[0]
        raise InvalidInput("path", f"{str(path)!r} is not valid JSON ({reason})") from exc
    # What json.load just managed may still be too deep for the recursive checks and encoders
    # after it (and for PostgreSQL's JSONB): one limit, checked without recursion.
    if _depth(document) > MAX_DOCUMENT_DEPTH:
        raise InvalidInput("path", f"{str(path)!r} nests deeper than {MAX_DOCUMENT_DEPTH} levels")
    return document


def _depth(value: Any) -> int:
    """How deeply `value` nests lists and dicts (a scalar: 0)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _parse_document(document: Any, client_id: str, now: datetime) -> _ParsedState:
    """Check a whole state document before anything is written; `InvalidInput` names the part
    that is wrong."""
    if not isinstance(document, dict) or not {"session", "messages"} <= document.keys():
        raise InvalidInput(
            "path",
            "not a state file: expected a JSON object with 'session' and 'messages'"
            " (the seed's whatsapp_state.json format)",
        )
    session = _parse_session(
        _object(document["session"], "session"),
        _object(document.get("account_info"), "account_info", optional=True),
        client_id,
    )
    statistics = _parse_statistics(_object(document.get("statistics"), "statistics", optional=True))
    config_document = _object(document.get("config"), "config", optional=True) or {}
    config = {
        (name := normalize_config_key(key, field="config")): json_value(
            value, field=f"config.{name}"
        )
        for key, value in config_document.items()
    }
    messages = list(_parse_messages(_object(document["messages"], "messages"), now))
    return _ParsedState(session, statistics, config, messages)


def _object(value: Any, field: str, *, optional: bool = False) -> dict[str, Any] | None:
    if value is None and optional:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(field, f"must be a JSON object, got {type(value).__name__}")
    return value


def _parse_time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be an ISO 8601 time or null, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(field, f"{value!r} is not an ISO 8601 time") from exc
    return as_utc(parsed, field=field)


def _flag(document: Mapping[str, Any], key: str, default: bool) -> bool:
    value = document.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"session.{key}", f"must be true or false, got {value!r}")
    return value


def _parse_session(
    session: dict[str, Any] | None, account: dict[str, Any] | None, client_id: str
) -> ClientSessionState:
    assert session is not None
    interval = session.get("validation_interval_minutes", DEFAULT_VALIDATION_INTERVAL_MINUTES)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        raise InvalidInput(
            "session.validation_interval_minutes", f"must be a positive integer, got {interval!r}"
        )
    path = session.get("session_path", DEFAULT_SESSION_PATH)
    if not isinstance(path, str):
        raise InvalidInput("session.session_path", f"must be a string, got {path!r}")
    reason = session.get("invalid_reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("session.invalid_reason", f"must be a string or null, got {reason!r}")
    account_info: dict[str, Any] | None = None
    account_updated_at = None
    # The all-null document is what "no account info yet" exports as: import it as that.
    if account is not None and any(value is not None for value in account.values()):
        account_updated_at = _parse_time(account.get("last_updated"), "account_info.last_updated")
        account_info = _account_payload(account)
    return _model(
        ClientSessionState,
        "session",
        client_id=client_id,
        authenticated=_flag(session, "authenticated", False),
        session_valid=_flag(session, "session_valid", False),
        session_path=path,
        last_authenticated=_parse_time(
            session.get("last_authenticated"), "session.last_authenticated"
        ),
        last_validation=_parse_time(session.get("last_validation"), "session.last_validation"),
        validation_interval_minutes=interval,
        invalid_reason=reason,
        invalidated_at=_parse_time(session.get("invalidated_at"), "session.invalidated_at"),
        account_info=account_info,
        account_updated_at=account_updated_at,
    )


def _parse_statistics(document: dict[str, Any] | None) -> LifecycleStatistics:
    if document is None:
        return LifecycleStatistics()
    values: dict[str, Any] = {}
    for key in _STATISTIC_KEYS:
        value = document.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(
                f"statistics.{key}", f"must be a non-negative integer, got {value!r}"
            )
        values[key] = value
    for key in ("last_message_received", "last_message_sent"):
        values[key] = _parse_time(document.get(key), f"statistics.{key}")
    return _model(LifecycleStatistics, "statistics", **values)


def _parse_messages(buckets: dict[str, Any] | None, now: datetime) -> Iterator[ApprovalRecord]:
    assert buckets is not None
    seen: set[str] = set()
    for name, items in buckets.items():
        status = parse_message_status(name, field=f"messages.{name}")
        if not isinstance(items, list):
            raise InvalidInput(f"messages.{name}", "must be a list of messages")
        for index, item in enumerate(items):
            field = f"messages.{name}[{index}]"
            if not isinstance(item, dict):
                raise InvalidInput(field, f"must be a message object, got {type(item).__name__}")
            if "id" not in item:
                raise InvalidInput(f"{field}.id", "a message needs an 'id'")
            message_id = normalize_message_id(item["id"], field=f"{field}.id")
            if message_id in seen:
                raise InvalidInput(f"{field}.id", f"message id {message_id!r} appears twice")
            seen.add(message_id)
            payload = {k: v for k, v in item.items() if k not in RESERVED_MESSAGE_KEYS}
            added_at = _parse_time(item.get("added_at"), f"{field}.added_at") or now
            changed_at = _parse_time(item.get("status_changed_at"), f"{field}.status_changed_at")
            yield _model(
                ApprovalRecord,
                field,
                message_id=message_id,
                status=status,
                payload=json_value(payload, field=field),
                added_at=added_at,
                status_changed_at=changed_at or now,
            )
