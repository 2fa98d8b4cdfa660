"""Declarative base, the metadata naming convention, and the portable column types.

Every constraint and index gets a stable, predictable name from `NAMING_CONVENTION`, so migrations
and DBAs can refer to them. `UTCDateTime` stores UTC on every database and always hands back
aware datetimes (SQLite has no time zones).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Integer,
    MetaData,
    Table,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

from wastate.domain.clock import as_utc

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "BigId",
    "JSONValue",
    "UTCDateTime",
    "enum_check",
    "table_of",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit surrogate keys; SQLite only auto-increments an INTEGER PRIMARY KEY."""

JSONValue = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored as UTC; naive input is refused, output is aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; wastate stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        # SQLite keeps text: drop the offset so every stored value sorts as plain UTC text.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # aggregates over SQLite text columns
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return as_utc(value)


def enum_check(column: str, enum: type[StrEnum], *, name: str | None = None) -> CheckConstraint:
    """A CHECK constraint allowing exactly the values of `enum` in `column`."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return CheckConstraint(f"{column} IN ({values})", name=name or column)


class Base(DeclarativeBase):
    """Base of every wastate table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """The Core `Table` of a model, typed as such (for Core statements: insert/update/delete)."""
    return cast(Table, model.__table__)
