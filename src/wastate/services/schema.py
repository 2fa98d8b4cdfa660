"""Schema bootstrap: the one policy every entry point (`StateManager()`, each `wastate serve`
worker, `wastate.http.app_factory`, the CLI's lifecycle commands) follows.

SQLite — the embedded default, one file owned by the application — is created or migrated on
first use. A server database (PostgreSQL) is never altered by a service: an unmigrated one
raises `SchemaNotReady`, telling its operator to run `wastate migrate` (or review `wastate migrate
--sql`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wastate.errors import SchemaNotReady

if TYPE_CHECKING:
    from wastate.store import Store

__all__ = ["ensure_schema"]


def ensure_schema(store: Store) -> None:
    """Make sure `store`'s database is at this wastate's schema revision (see the module)."""
    if not store.dialect.migrates_on_first_use:
        store.require_current_schema()
        return
    try:
        store.require_current_schema()  # the common case: one read, no write lock
    except SchemaNotReady:
        try:
            store.migrate()
        except Exception:  # noqa: BLE001 - re-checked just below
            # Concurrent first uses are safe (`migrate` serializes them on the file's write
            # lock); this answers e.g. a file at a revision newer than this wastate knows.
            store.require_current_schema()
