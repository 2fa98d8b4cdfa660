"""The wastate error family.

Every error wastate raises on purpose is a `WastateError`. Callers catch the family, or one member:
`InvalidInput` (also a `ValueError`) for bad arguments, `NotFound`, `Conflict` for a write that
would break a uniqueness rule, `InvalidTransition` for a lifecycle move the transition table
forbids, `ConfigurationError` for bad settings, `ServiceUnavailable` when the database cannot be
reached, `TransactionAborted` when a unit of work's transaction ended without committing.
Database errors are translated by SQLSTATE in `wastate.db.errors`, never by message text.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "Conflict",
    "InvalidInput",
    "InvalidTransition",
    "NotFound",
    "SchemaNotReady",
    "ServiceUnavailable",
    "TransactionAborted",
    "WastateError",
    "one_line",
]


class WastateError(Exception):
    """Base of every error wastate raises on purpose."""


class InvalidInput(WastateError, ValueError):
    """An argument is malformed; `field` names it. Nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NotFound(WastateError, LookupError):
    """The record asked for does not exist in this tenant."""


class Conflict(WastateError):
    """The write would break a uniqueness or once-only rule; nothing was changed."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        self.constraint = constraint
        super().__init__(message)


class InvalidTransition(WastateError):
    """A lifecycle move the transition table (or the approval guard) forbids; nothing changed."""

    def __init__(self, from_status: str, to_status: str, reason: str | None = None) -> None:
        self.from_status = from_status
        self.to_status = to_status
        detail = f": {reason}" if reason else ""
        super().__init__(f"cannot move a message from {from_status} to {to_status}{detail}")


class ConfigurationError(WastateError):
    """A setting is missing or malformed; the message names the variable."""


class ServiceUnavailable(WastateError):
    """The database could not be reached or answered with an operational error."""


class SchemaNotReady(WastateError):
    """The database has no wastate schema, or an older one: run `wastate migrate`."""


class TransactionAborted(WastateError):
    """The unit of work's transaction was rolled back before it could commit; nothing of it was
    committed. Raised by every later statement and by `commit()` (so by a clean exit of the `with`
    block) until `rollback()` acknowledges it: a unit of work never reports success for writes
    that were lost."""


def one_line(exc: BaseException, *, limit: int | None = None) -> str:
    """An exception as one readable line: the driver's own message for a database error (its
    `orig`, without the SQL and parameters SQLAlchemy appends), the first non-blank line, at most
    `limit` characters; the type's name when there is no text. For the CLI and `/health`."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]
