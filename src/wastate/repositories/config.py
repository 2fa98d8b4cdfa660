"""Key/value config entries (seed 004), per (tenant, client); values are any JSON.

Client ids, keys and values are validated (values by `wastate.domain.storable.json_value`) before
they reach the database, so what `get` hands back equals what was set, on PostgreSQL (JSONB) and
SQLite alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Insert, Table, bindparam, delete, select

from wastate.db.dialect import Dialect, per_dialect
from wastate.db.tables import ConfigEntry
from wastate.domain.lifecycle import normalize_config_key
from wastate.domain.sessions import normalize_client_id
from wastate.domain.storable import json_value
from wastate.errors import InvalidInput
from wastate.repositories.base import Database, atomic
from wastate.repositories.upserts import precompiled_per_dialect

__all__ = ["ConfigRepository"]

_t = cast(Table, ConfigEntry.__table__)
_c = _t.c
_CLIENT = (_c.tenant_id == bindparam("tenant_id"), _c.client_id == bindparam("client_id"))

_SELECT_ONE = select(_c.value).where(*_CLIENT, _c.key == bindparam("key"))
# In a writing transaction: where rows can be locked (PostgreSQL) a share lock on the entry makes
# a concurrent `set` of it wait for this transaction to end; elsewhere (SQLite) writers are
# serialized by the write lock `Dialect.begin` takes.
_SELECT_ONE_FOR_WRITE = per_dialect(
    lambda dialect: _SELECT_ONE.with_for_update(read=True) if dialect.row_locks else _SELECT_ONE
)
_SELECT_ALL = select(_c.key, _c.value).where(*_CLIENT).order_by(_c.key)
_DELETE_ALL = delete(_t).where(*_CLIENT)
_DELETE_ONE = delete(_t).where(*_CLIENT, _c.key == bindparam("key"))


def _upsert(dialect: Dialect) -> Insert:
    statement = dialect.insert(_t).values(
        tenant_id=bindparam("tenant_id"),
        client_id=bindparam("client_id"),
        key=bindparam("key"),
        value=bindparam("value", type_=_c.value.type),
        updated_at=bindparam("updated_at", type_=_c.updated_at.type),
    )
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[_c.tenant_id, _c.client_id, _c.key],
        set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
    )
    return upsert


_UPSERT = precompiled_per_dialect(_upsert)


class ConfigRepository:
    """Config entries of one tenant's clients."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._upsert = _UPSERT[db.dialect]
        self._select_for_write = _SELECT_ONE_FOR_WRITE[db.dialect]

    def _key(self, client_id: str) -> dict[str, Any]:
        return {"tenant_id": self._db.tenant_id, "client_id": normalize_client_id(client_id)}

    def get(self, client_id: str, key: str, default: Any = None) -> Any:
        """The value of `key`, or `default` when it was never set."""
        params = {**self._key(client_id), "key": normalize_config_key(key)}
        row = self._db.read(_SELECT_ONE, params).first()
        return default if row is None else row[0]

    @atomic
    def get_for_write(self, client_id: str, key: str, default: Any = None) -> Any:
        """Like `get`, inside the unit of work's transaction (opening it), with the entry held
        until it ends: a write that depends on the value cannot race a change of it."""
        params = {**self._key(client_id), "key": normalize_config_key(key)}
        row = self._db.write(self._select_for_write, params).first()
        return default if row is None else row[0]

    def all(self, client_id: str) -> dict[str, Any]:
        """Every entry of `client_id`, by key."""
        return {str(key): value for key, value in self._db.read(_SELECT_ALL, self._key(client_id))}

    @atomic
    def set(self, client_id: str, key: str, value: Any) -> None:
        """Set `key` to `value` (any JSON value)."""
        # Checked first: a key that is no str may not even be hashable.
        self.update(client_id, {normalize_config_key(key): value})

    @atomic
    def update(self, client_id: str, updates: Mapping[str, Any]) -> None:
        """Set several keys in one statement; every key and value is checked first."""
        if not isinstance(updates, Mapping):
            raise _not_a_mapping(updates)
        client = self._key(client_id)
        now = self._db.now()
        rows = [
            {
                **client,
                "key": (checked := normalize_config_key(key)),
                "value": json_value(value, field=f"config[{checked!r}]"),
                "updated_at": now,
            }
            for key, value in updates.items()
        ]
        if rows:
            self._db.write(self._upsert, rows)

    @atomic
    def delete(self, client_id: str, key: str) -> bool:
        """Remove `key`; True if it existed."""
        params = {**self._key(client_id), "key": normalize_config_key(key)}
        result = self._db.write(_DELETE_ONE, params)
        return result.rowcount > 0

    @atomic
    def replace_all(self, client_id: str, entries: Mapping[str, Any]) -> None:
        """Make the entries of `client_id` exactly `entries` (import)."""
        if not isinstance(entries, Mapping):
            raise _not_a_mapping(entries)
        # Every entry is checked before the delete: a bad one must leave the old entries.
        checked = {
            normalize_config_key(key): json_value(value, field=f"config[{key!r}]")
            for key, value in entries.items()
        }
        self._db.write(_DELETE_ALL, self._key(client_id))
        self.update(client_id, checked)


def _not_a_mapping(value: object) -> InvalidInput:
    return InvalidInput("updates", f"must be a dict of key to value, got {type(value).__name__}")
