"""A WhatsApp Web style client's session (seed 004) and the rule that says whether it is usable.

The rule, in one place:

- the session is **valid** iff it is authenticated, not marked invalid, and was validated within
  `validation_interval_minutes` of now (`now - last_validation < interval`);
- a **QR scan is required** iff it is not authenticated or it was explicitly marked invalid. A stale
  validation only needs a re-check (`update_session_status`), never a new QR scan.

`now` always comes from an injectable clock, so tests can move time. This module is pure: the
repository in `wastate.repositories.sessions` persists `ClientSessionState`, nothing here does I/O.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wastate.domain.ids import normalize_tenant_id
from wastate.domain.storable import INT32_MAX, StorableJSONObject, StorableStr, UtcTime

__all__ = [
    "DEFAULT_SESSION_PATH",
    "DEFAULT_VALIDATION_INTERVAL_MINUTES",
    "ClientSessionState",
    "normalize_client_id",
    "qr_required",
    "requires_qr_scan",
    "session_is_valid",
]

DEFAULT_SESSION_PATH = ".wwebjs_auth"
DEFAULT_VALIDATION_INTERVAL_MINUTES = 30
MAX_SESSION_PATH = 1024


class ClientSessionState(BaseModel):
    """One client's session record: what the seed keeps under `session` and `account_info`."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    authenticated: bool = False
    session_valid: bool = False
    session_path: StorableStr = Field(default=DEFAULT_SESSION_PATH, max_length=MAX_SESSION_PATH)
    last_authenticated: UtcTime | None = None
    last_validation: UtcTime | None = None
    validation_interval_minutes: int = Field(
        default=DEFAULT_VALIDATION_INTERVAL_MINUTES, gt=0, le=INT32_MAX
    )
    invalid_reason: StorableStr | None = None
    invalidated_at: UtcTime | None = None
    account_info: StorableJSONObject | None = None
    account_updated_at: UtcTime | None = None

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        return normalize_client_id(value)

    def is_valid(self, now: datetime) -> bool:
        """True iff usable without re-authentication at `now` (see the module docstring)."""
        return session_is_valid(self, now)

    @property
    def requires_qr(self) -> bool:
        """True iff a new QR scan is needed (not authenticated, or explicitly invalid)."""
        return requires_qr_scan(self)


def session_is_valid(session: ClientSessionState | None, now: datetime) -> bool:
    """Valid iff authenticated, not marked invalid, and validated within the interval at `now`.

    No record at all is a session that never authenticated: not valid.
    """
    if session is None or not session.authenticated or not session.session_valid:
        return False
    if session.last_validation is None:
        return False
    age = now - session.last_validation
    return age < timedelta(minutes=session.validation_interval_minutes)


def qr_required(*, authenticated: bool, session_valid: bool) -> bool:
    """The QR rule on a session's two flags: needed iff not authenticated or explicitly invalid.

    The repository writes the stored `requires_qr` column from this, so the rule has one home.
    """
    return not authenticated or not session_valid


def requires_qr_scan(session: ClientSessionState | None) -> bool:
    """QR needed iff not authenticated or explicitly invalid; staleness alone never needs one.

    No record at all is a session that never authenticated: a scan is needed.
    """
    if session is None:
        return True
    return qr_required(authenticated=session.authenticated, session_valid=session.session_valid)


def normalize_client_id(value: object, *, field: str = "client_id") -> str:
    """A client id follows the tenant id rule: 1-64 of letters, digits and `._:@-`."""
    return normalize_tenant_id(value, field=field)
