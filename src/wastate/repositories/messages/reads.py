"""The reads of the message-tracking family, alike on both databases: a record by either id, a
conversation's page, a message's history, an id's parked events, and the lookups the writers
share (rows by external ids, rows by primary keys)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, String, and_, bindparam, or_, select, union_all
from sqlalchemy.sql.elements import BindParameter

from wastate.db.base import UTCDateTime
from wastate.domain.ids import require_external_id
from wastate.domain.mappings import validate_conversation_id
from wastate.domain.messages import StatusEvent, TrackedMessage
from wastate.errors import InvalidInput
from wastate.repositories.base import Database
from wastate.repositories.messages.rows import (
    HISTORY,
    PARKED,
    TRACKED,
    status_entry,
    to_record,
)
from wastate.repositories.messages.rule import rank

_T, _H, _P = TRACKED, HISTORY, PARKED
_MAX_PAGE = 1000

TENANT = bindparam("tenant", type_=String())
IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_one_id = bindparam("message_id", type_=String())

ROWS_BY_IDS = select(_T).where(
    _T.c.tenant_id == TENANT,
    or_(_T.c.meta_message_id.in_(IDS), _T.c.genesys_message_id.in_(IDS)),
)
ROWS_BY_PKS = select(_T).where(_T.c.tenant_id == TENANT, _T.c.id.in_(IDS))


def _resolve_one() -> Any:
    """The row a message id names: its WhatsApp id first, else its contact-center id (two
    probes, each an equality on a whole unique key)."""
    by_meta = select(_T.c.id).where(_T.c.tenant_id == TENANT, _T.c.meta_message_id == _one_id)
    by_genesys = select(_T.c.id).where(_T.c.tenant_id == TENANT, _T.c.genesys_message_id == _one_id)
    return union_all(by_meta, by_genesys).limit(1).scalar_subquery()


GET = select(_T).where(_T.c.tenant_id == TENANT, _T.c.id == _resolve_one())

HISTORY_OF = (
    select(_H, _T.c.meta_message_id, _T.c.genesys_message_id)
    .join(_T, _T.c.id == _H.c.message_id)
    .where(_H.c.tenant_id == TENANT, _H.c.message_id == _resolve_one())
    .order_by(_H.c.occurred_at, rank(_H.c.status))
)

PENDING = (
    select(_P)
    .where(_P.c.tenant_id == TENANT, _P.c.external_id == _one_id)
    .order_by(_P.c.occurred_at, rank(_P.c.status))
)

_cursor_created = bindparam("cursor_created", type_=UTCDateTime())
_cursor_pk = bindparam("cursor_pk", type_=BigInteger())
PAGE = (
    select(_T)
    .where(_T.c.tenant_id == TENANT, _T.c.conversation_id == bindparam("conversation_id"))
    .order_by(_T.c.created_at.desc(), _T.c.id.desc())
    .limit(bindparam("limit"))
)
PAGE_BEFORE = PAGE.where(
    or_(
        _T.c.created_at < _cursor_created,
        and_(_T.c.created_at == _cursor_created, _T.c.id < _cursor_pk),
    )
)
CURSOR = select(_T.c.created_at, _T.c.id).where(_T.c.tenant_id == TENANT, _T.c.id == _resolve_one())


class MessageReader:
    """Reads of one tenant's tracked messages, by WhatsApp id (`wamid…`) or contact-center id."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, message_id: str) -> TrackedMessage | None:
        """The record with this WhatsApp id (first) or contact-center id, or None."""
        external = require_external_id(message_id, field="message_id")
        row = self._db.read(GET, {"tenant": self._db.tenant_id, "message_id": external}).first()
        return None if row is None else to_record(row)

    def for_conversation(
        self, conversation_id: str, *, limit: int = 50, before: str | None = None
    ) -> list[TrackedMessage]:
        """A conversation's messages, newest first, `limit` at most (keyset pagination).

        Pass the last message id of a page as `before` for the next page; an unknown `before`
        raises `InvalidInput`.
        """
        conversation_id = validate_conversation_id(conversation_id)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= _MAX_PAGE:
            raise InvalidInput("limit", f"must be an integer from 1 to {_MAX_PAGE}")
        params: dict[str, Any] = {
            "tenant": self._db.tenant_id,
            "conversation_id": conversation_id,
            "limit": limit,
        }
        statement = PAGE
        if before is not None:
            cursor_id = require_external_id(before, field="before")
            cursor = self._db.read(
                CURSOR, {"tenant": self._db.tenant_id, "message_id": cursor_id}
            ).first()
            if cursor is None:
                raise InvalidInput("before", f"no message {cursor_id!r} in this tenant")
            params.update(cursor_created=cursor.created_at, cursor_pk=cursor.id)
            statement = PAGE_BEFORE
        return [to_record(row) for row in self._db.read(statement, params)]

    def history(self, message_id: str) -> list[StatusEvent]:
        """The message's status events, one per status (the earliest), oldest first."""
        external = require_external_id(message_id, field="message_id")
        rows = self._db.read(HISTORY_OF, {"tenant": self._db.tenant_id, "message_id": external})
        return [
            status_entry(row._mapping, row.meta_message_id or row.genesys_message_id)
            for row in rows
        ]

    def pending(self, message_id: str) -> list[StatusEvent]:
        """Status events parked for an id no tracked message has (yet), oldest first."""
        external = require_external_id(message_id, field="message_id")
        rows = self._db.read(PENDING, {"tenant": self._db.tenant_id, "message_id": external})
        return [status_entry(row._mapping, row.external_id) for row in rows]
