"""The seed-004 state document ("State File Structure"): its one shape, how it is read from a
unit of work, streamed as JSON, parsed back and restored.

The document is what the seed kept in `whatsapp_state.json`: `session`, `account_info`,
`messages` (one list per lifecycle status, in the order the messages entered it), `statistics`
and `config`. `read_document` is the only place that lays it out; `StateManager.get_full_state`
materializes it and the exports stream it (`write_document`), so both say the same thing.

Times are ISO 8601, timezone-aware UTC; imported naive times (the seed wrote local
`datetime.now()`) are taken as UTC.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from wastate.domain.clock import as_utc
from wastate.domain.clock import isoformat as _iso
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
    requires_qr_scan,
)
from wastate.errors import InvalidInput

if TYPE_CHECKING:
    from wastate.uow import UnitOfWork

__all__ = [
    "PROGRESS_EVERY",
    "ParsedState",
    "Progress",
    "account_payload",
    "materialize",
    "parse_document",
    "read_document",
    "restore",
    "session_document",
    "write_document",
]

Progress = Callable[[int], None]
"""Told how many messages a long export or import has handled so far."""

PROGRESS_EVERY = 1000

_ACCOUNT_FIELDS = ("number", "name", "platform")
_STATISTIC_KEYS = (
    "total_incoming",
    "total_sent",
    "total_failed",
    "total_approved",
    "total_rejected",
    "total_pending_approval",
)


# -- the document ----------------------------------------------------------------------------


def read_document(uow: UnitOfWork, client_id: str) -> dict[str, Any]:
    """The state document of `client_id`, read from one consistent snapshot that this opens.

    Its `messages` buckets are lazy iterators of seed message dicts (streamed in batches, so
    memory stays flat): consume them before the unit of work ends.
    """
    uow.open_snapshot()
    session = uow.sessions.get(client_id) or ClientSessionState(client_id=client_id)
    statistics = uow.statistics.get(client_id).as_seed_dict()
    config = uow.config.all(client_id)
    messages = {
        status.value: (r.as_seed_dict() for r in uow.approvals.iter_bucket(client_id, status))
        for status in MessageStatus
    }
    return {
        "session": session_document(session),
        "account_info": account_document(session),
        "messages": messages,
        "statistics": statistics,
        "config": config,
    }


def materialize(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with its message buckets read into lists."""
    buckets = document["messages"]
    return {**document, "messages": {status: list(items) for status, items in buckets.items()}}


def write_document(
    out: IO[str], document: dict[str, Any], *, progress: Progress | None = None
) -> int:
    """Stream `document` to `out` as JSON, one message a line; `progress(n)` hears how many
    messages are written every `PROGRESS_EVERY`. Returns how many messages were written."""
    written = 0
    out.write("{")
    for index, (section, value) in enumerate(document.items()):
        out.write(f'{"," if index else ""}\n  "{section}": ')
        if section != "messages":
            out.write(_dumps(value))
            continue
        out.write("{")
        for number, (status, records) in enumerate(value.items()):
            out.write(f'{"," if number else ""}\n    "{status}": [')
            first = True
            for record in records:
                out.write("\n      " if first else ",\n      ")
                out.write(_dumps(record))
                first = False
                written += 1
                if progress is not None and written % PROGRESS_EVERY == 0:
                    progress(written)
            out.write("]" if first else "\n    ]")
        out.write("\n  }")
    out.write("\n}\n")
    return written


def restore(uow: UnitOfWork, parsed: ParsedState, client_id: str) -> int:
    """Make the client's state exactly `parsed` (in the unit of work's transaction). Returns the
    message count."""
    uow.sessions.replace(parsed.session)
    uow.statistics.replace(client_id, parsed.statistics)
    uow.config.replace_all(client_id, parsed.config)
    return uow.approvals.replace_all(client_id, parsed.messages)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def session_document(session: ClientSessionState) -> dict[str, Any]:
    """The seed's `session` section (plus `invalid_reason` and `invalidated_at`)."""
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


def account_document(session: ClientSessionState) -> dict[str, Any]:
    """The seed's `account_info` section: the stored info (all null when none) and its time."""
    info = session.account_info
    document: dict[str, Any] = dict.fromkeys(_ACCOUNT_FIELDS) if info is None else dict(info)
    document["last_updated"] = _iso(session.account_updated_at)
    return document


def account_payload(account_info: object) -> dict[str, Any] | None:
    """Account info as stored: a JSON object, without `last_updated` (wastate keeps that)."""
    if account_info is None:
        return None
    if not isinstance(account_info, Mapping):
        raise InvalidInput("account_info", f"must be a dict, got {type(account_info).__name__}")
    info = {k: v for k, v in account_info.items() if k != "last_updated"}
    stored: dict[str, Any] = json_value(info, field="account_info")
    return stored


# -- parsing ------------------------------------------------------------------------------


class ParsedState:
    """A state document, checked whole: what `restore` writes."""

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


_M = TypeVar("_M", bound=BaseModel)


def _model(model: type[_M], field: str, **values: Any) -> _M:
    """`model(**values)`, or `InvalidInput` naming the part of the document that is wrong."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise invalid_input_from(exc, prefix=field) from exc


def parse_document(document: Any, client_id: str, now: datetime) -> ParsedState:
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
    return ParsedState(session, statistics, config, messages)


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
        account_info = account_payload(account)
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
