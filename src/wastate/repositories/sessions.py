"""Client session records (seed 004): one row per (tenant, client_id).

Every change is one upsert that sets only the columns the operation owns, so two processes
updating one session at once never lose each other's fields (no read-modify-write). `requires_qr`
is stored for readers of the table but always written from the rule in `wastate.domain.sessions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Insert, Table, bindparam, case, delete, func, null, select

from wastate.db.dialect import Dialect
from wastate.db.tables import ClientSession
from wastate.domain.sessions import (
    DEFAULT_SESSION_PATH,
    DEFAULT_VALIDATION_INTERVAL_MINUTES,
    ClientSessionState,
    normalize_client_id,
    qr_required,
    requires_qr_scan,
)
from wastate.domain.storable import INT32_MAX, json_value, require_int, require_text
from wastate.errors import InvalidInput
from wastate.repositories.base import Database, atomic
from wastate.repositories.upserts import precompiled_per_dialect

__all__ = ["SessionRepository"]

_t = cast(Table, ClientSession.__table__)
_c = _t.c
_CLIENT = (_c.tenant_id == bindparam("tenant_id"), _c.client_id == bindparam("client_id"))

_FIELDS = (
    "authenticated",
    "session_valid",
    "session_path",
    "last_authenticated",
    "last_validation",
    "validation_interval_minutes",
    "invalid_reason",
    "invalidated_at",
    "account_info",
    "account_updated_at",
)

_SELECT = select(_c.client_id, *(_c[name] for name in _FIELDS)).where(*_CLIENT)
_DELETE = delete(_t).where(*_CLIENT)


def _params(names: tuple[str, ...]) -> dict[str, Any]:
    return {name: bindparam(name, type_=_c[name].type) for name in names}


def _insert(dialect: Dialect, **overrides: Any) -> Any:
    """An insert of a whole default row, with `overrides` bound; the caller adds ON CONFLICT."""
    values: dict[str, Any] = {
        "tenant_id": bindparam("tenant_id"),
        "client_id": bindparam("client_id"),
        "authenticated": False,
        "session_valid": False,
        "requires_qr": requires_qr_scan(None),  # the default row never authenticated
        "session_path": DEFAULT_SESSION_PATH,
        "validation_interval_minutes": DEFAULT_VALIDATION_INTERVAL_MINUTES,
        "created_at": bindparam("now", type_=_c.created_at.type),
        "updated_at": bindparam("now", type_=_c.updated_at.type),
    }
    values.update(overrides)
    return dialect.insert(_t).values(**values)


def _authenticate(dialect: Dialect) -> Insert:
    """update_session_status: set the flags and validation time; keep the last authentication
    time and account info unless new ones are given."""
    names = (
        "authenticated",
        "session_valid",
        "requires_qr",
        "last_authenticated",
        "last_validation",
        "account_info",
        "account_updated_at",
    )
    statement = _insert(dialect, **_params(names))
    ex = statement.excluded
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[_c.tenant_id, _c.client_id],
        set_={
            "authenticated": ex.authenticated,
            "session_valid": ex.session_valid,
            "requires_qr": ex.requires_qr,
            "last_validation": ex.last_validation,
            "last_authenticated": func.coalesce(ex.last_authenticated, _c.last_authenticated),
            "account_info": case(
                (ex.account_updated_at.is_(None), _c.account_info), else_=ex.account_info
            ),
            "account_updated_at": func.coalesce(ex.account_updated_at, _c.account_updated_at),
            "invalid_reason": null(),
            "invalidated_at": null(),
            "updated_at": ex.updated_at,
        },
    )
    return upsert


def _invalidate(dialect: Dialect) -> Insert:
    names = ("invalid_reason", "invalidated_at")
    statement = _insert(dialect, **_params(names))
    ex = statement.excluded
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[_c.tenant_id, _c.client_id],
        set_={
            "session_valid": False,
            # session_valid is now False, which decides the rule whatever `authenticated` holds
            "requires_qr": qr_required(authenticated=True, session_valid=False),
            "invalid_reason": ex.invalid_reason,
            "invalidated_at": ex.invalidated_at,
            "updated_at": ex.updated_at,
        },
    )
    return upsert


def _set_interval(dialect: Dialect) -> Insert:
    statement = _insert(dialect, **_params(("validation_interval_minutes",)))
    ex = statement.excluded
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[_c.tenant_id, _c.client_id],
        set_={
            "validation_interval_minutes": ex.validation_interval_minutes,
            "updated_at": ex.updated_at,
        },
    )
    return upsert


def _replace(dialect: Dialect) -> Insert:
    statement = _insert(dialect, **_params((*_FIELDS, "requires_qr")))
    ex = statement.excluded
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[_c.tenant_id, _c.client_id],
        set_={name: ex[name] for name in (*_FIELDS, "requires_qr", "updated_at")},
    )
    return upsert


_STATEMENTS = {
    name: precompiled_per_dialect(build)
    for name, build in (
        ("authenticate", _authenticate),
        ("invalidate", _invalidate),
        ("interval", _set_interval),
        ("replace", _replace),
    )
}


class SessionRepository:
    """Session records of one tenant's clients."""

    def __init__(self, db: Database) -> None:
        self._db = db
        dialect = db.dialect
        self._authenticate = _STATEMENTS["authenticate"][dialect]
        self._invalidate = _STATEMENTS["invalidate"][dialect]
        self._interval = _STATEMENTS["interval"][dialect]
        self._replace = _STATEMENTS["replace"][dialect]

    def _key(self, client_id: str) -> dict[str, Any]:
        return {"tenant_id": self._db.tenant_id, "client_id": normalize_client_id(client_id)}

    def get(self, client_id: str) -> ClientSessionState | None:
        """The stored session of `client_id`, or None when there is no record."""
        row = self._db.read(_SELECT, self._key(client_id)).mappings().first()
        return None if row is None else ClientSessionState.model_validate(dict(row))

    def get_or_default(self, client_id: str) -> ClientSessionState:
        """The session of `client_id`, or the never-authenticated default (not stored)."""
        found = self.get(client_id)  # validates client_id first
        return found or ClientSessionState(client_id=normalize_client_id(client_id))

    @atomic
    def record_authentication(
        self,
        client_id: str,
        *,
        authenticated: bool,
        account_info: Mapping[str, Any] | None = None,
    ) -> None:
        """The client (re)authenticated — or reports it is not: validation time is now; when
        `authenticated`, so is the authentication time; `account_info`, when given, replaces the
        stored one. Clears any invalidation."""
        if not isinstance(authenticated, bool):
            raise InvalidInput("authenticated", "must be True or False")
        if account_info is not None:
            if not isinstance(account_info, Mapping):
                raise InvalidInput(
                    "account_info", f"must be a dict, got {type(account_info).__name__}"
                )
            account_info = json_value(dict(account_info), field="account_info")
        key = self._key(client_id)
        now = self._db.now()
        self._db.write(
            self._authenticate,
            {
                **key,
                "now": now,
                "authenticated": authenticated,
                "session_valid": authenticated,
                "requires_qr": qr_required(
                    authenticated=authenticated, session_valid=authenticated
                ),
                "last_authenticated": now if authenticated else None,
                "last_validation": now,
                "account_info": account_info,
                "account_updated_at": None if account_info is None else now,
            },
        )

    @atomic
    def mark_invalid(self, client_id: str, reason: str | None) -> None:
        """Invalidate the session (a QR scan is needed again), keeping why and when."""
        reason = require_text(reason, field="reason", optional=True)
        key = self._key(client_id)
        now = self._db.now()
        self._db.write(
            self._invalidate,
            {**key, "now": now, "invalid_reason": reason, "invalidated_at": now},
        )

    @atomic
    def set_validation_interval(self, client_id: str, minutes: int) -> None:
        """Change how long a validation stays fresh."""
        minutes = require_int(
            minutes, field="validation_interval_minutes", minimum=1, maximum=INT32_MAX
        )
        key = self._key(client_id)
        self._db.write(
            self._interval, {**key, "now": self._db.now(), "validation_interval_minutes": minutes}
        )

    @atomic
    def replace(self, state: ClientSessionState) -> None:
        """Store `state` as the whole session record of its client (import)."""
        if not isinstance(state, ClientSessionState):
            raise InvalidInput("state", f"must be ClientSessionState, got {type(state).__name__}")
        values = state.model_dump(include=set(_FIELDS))
        self._db.write(
            self._replace,
            {
                **self._key(state.client_id),
                **values,
                "requires_qr": requires_qr_scan(state),
                "now": self._db.now(),
            },
        )

    @atomic
    def delete(self, client_id: str) -> None:
        """Forget the session of `client_id`."""
        self._db.write(_DELETE, self._key(client_id))
