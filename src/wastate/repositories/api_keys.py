"""Per-tenant HTTP API keys: issue, list, revoke, and verify a presented token.

A token reads `wsk_<tenant>_<key id>_<secret>`. It names its own tenant and key id, so checking it
is one indexed lookup by (tenant_id, key_id) — the unique key, tenant first — and a key can only
ever open the tenant it was issued for. Only a hash of the secret is stored (SHA-256 over tenant,
key id and secret: the secret carries 192 random bits, so a slow password hash would buy nothing),
and the comparison runs in constant time. The plaintext token exists once, in the answer to
`create`.

What does not live here: deciding whether keys are required (the HTTP layer's setting) and caching
verified keys (the HTTP layer keeps a short-lived in-process memo).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import Table, bindparam, insert, select, update

from wastate.db.tables import ApiKey
from wastate.domain.ids import normalize_tenant_id
from wastate.domain.storable import require_text
from wastate.errors import InvalidInput
from wastate.repositories.base import Database, atomic

__all__ = [
    "TOKEN_PREFIX",
    "ApiKeyRecord",
    "ApiKeyRepository",
    "IssuedApiKey",
    "ParsedToken",
    "hash_secret",
    "parse_token",
]

TOKEN_PREFIX = "wsk_"  # noqa: S105 (a public marker, not a secret)
_KEY_ID_BYTES = 8  # 16 hex characters: unique per tenant, not secret
_SECRET_BYTES = 24  # 48 hex characters, 192 bits
_MAX_LABEL = 256
_MAX_TOKEN = 256
_HEX = frozenset("0123456789abcdef")

_t: Table = ApiKey.__table__  # type: ignore[assignment]
_COLUMNS = (_t.c.tenant_id, _t.c.key_id, _t.c.label, _t.c.created_at, _t.c.revoked_at)
_THIS_KEY = (_t.c.tenant_id == bindparam("tenant_id"), _t.c.key_id == bindparam("key_id"))

_INSERT = insert(_t)
_SELECT_HASH = select(_t.c.secret_hash, _t.c.revoked_at).where(*_THIS_KEY)
_SELECT_RECORD = select(*_COLUMNS).where(*_THIS_KEY)
_LIST = select(*_COLUMNS).where(_t.c.tenant_id == bindparam("tenant_id")).order_by(_t.c.id)
# UPDATE reserves bind names equal to column names, hence the `b_` prefix.
_REVOKE = (
    update(_t)
    .where(
        _t.c.tenant_id == bindparam("b_tenant_id"),
        _t.c.key_id == bindparam("b_key_id"),
        _t.c.revoked_at.is_(None),
    )
    .values(revoked_at=bindparam("b_now"))
)


class ApiKeyRecord(BaseModel):
    """An API key as stored (never with its secret)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str
    key_id: str
    label: str | None
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None

    @property
    def active(self) -> bool:
        """True until the key is revoked."""
        return self.revoked_at is None


class IssuedApiKey(BaseModel):
    """A newly created key and its plaintext token: shown once, never stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record: ApiKeyRecord
    token: str


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """The three parts of a presented token (not yet verified)."""

    tenant_id: str
    key_id: str
    secret: str


def hash_secret(tenant_id: str, key_id: str, secret: str) -> str:
    """The stored form of a secret, bound to its tenant and key id."""
    digest = hashlib.sha256(f"{tenant_id}\x00{key_id}\x00{secret}".encode()).hexdigest()
    return f"sha256:{digest}"


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and _HEX.issuperset(text)


def parse_token(token: str) -> ParsedToken | None:
    """The parts of `token`, or None when it is not shaped like a wastate API key."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_TOKEN:
        return None
    # The tenant may hold underscores; the key id and secret are hex, so split from the right.
    parts = token[len(TOKEN_PREFIX) :].rsplit("_", 2)
    if len(parts) != 3:
        return None
    tenant_id, key_id, secret = parts
    if not _is_hex(key_id, _KEY_ID_BYTES * 2) or not _is_hex(secret, _SECRET_BYTES * 2):
        return None
    try:
        normalize_tenant_id(tenant_id)
    except InvalidInput:
        return None
    return ParsedToken(tenant_id, key_id, secret)


def _key_id(value: object) -> str:
    """A key id as looked up: text by the text rule (an id no key has simply finds nothing)."""
    return require_text(value, field="key_id", max_length=_MAX_TOKEN) or ""


def _record(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        tenant_id=row.tenant_id,
        key_id=row.key_id,
        label=row.label,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class ApiKeyRepository:
    """The API keys of one tenant (the unit of work's)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @atomic
    def create(self, *, label: str | None = None) -> IssuedApiKey:
        """Issue a new key for this tenant; the answer holds the only copy of its token."""
        label = require_text(label, field="label", max_length=_MAX_LABEL, optional=True)
        tenant_id = self._db.tenant_id
        key_id = secrets.token_hex(_KEY_ID_BYTES)
        secret = secrets.token_hex(_SECRET_BYTES)
        now = self._db.now()
        self._db.write(
            _INSERT,
            {
                "tenant_id": tenant_id,
                "key_id": key_id,
                "secret_hash": hash_secret(tenant_id, key_id, secret),
                "label": label,
                "created_at": now,
                "revoked_at": None,
            },
        )
        record = ApiKeyRecord(
            tenant_id=tenant_id, key_id=key_id, label=label, created_at=now, revoked_at=None
        )
        return IssuedApiKey(record=record, token=f"{TOKEN_PREFIX}{tenant_id}_{key_id}_{secret}")

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """The key `key_id` of this tenant, revoked or not; None if there is none."""
        params = {"tenant_id": self._db.tenant_id, "key_id": _key_id(key_id)}
        row = self._db.read(_SELECT_RECORD, params).first()
        return None if row is None else _record(row)

    def all(self) -> list[ApiKeyRecord]:
        """Every key of this tenant, oldest first, revoked ones included."""
        rows = self._db.read(_LIST, {"tenant_id": self._db.tenant_id})
        return [_record(row) for row in rows]

    @atomic
    def revoke(self, key_id: str) -> ApiKeyRecord | None:
        """Revoke `key_id` (idempotent: revoking twice keeps the first time); None if unknown."""
        key_id = _key_id(key_id)
        params = {"b_tenant_id": self._db.tenant_id, "b_key_id": key_id, "b_now": self._db.now()}
        self._db.write(_REVOKE, params)
        return self.get(key_id)

    def verify(self, key_id: str, secret: str) -> bool:
        """True iff `key_id` is an active key of this tenant and `secret` is its secret."""
        key_id = _key_id(key_id)
        secret = require_text(secret, field="secret", max_length=_MAX_TOKEN) or ""
        tenant_id = self._db.tenant_id
        row = self._db.read(_SELECT_HASH, {"tenant_id": tenant_id, "key_id": key_id}).first()
        if row is None or row.revoked_at is not None:
            return False
        # Constant time: how much of a guessed secret matches must not show in the timing.
        return hmac.compare_digest(row.secret_hash, hash_secret(tenant_id, key_id, secret))
