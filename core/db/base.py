"""The declarative base every table derives from, and column helpers."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, MetaData, Table, TypeDecorator, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random identifier (uuid4, as text)."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    SQLite keeps no zone, PostgreSQL does: this makes both behave the same.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention (for Alembic)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


def table_of(model: type[Base]) -> Table:
    """``model``'s table, for Core statements on a hot path: an ORM statement runs the ORM's
    bulk machinery each time (about twice the CPU of the database's own work for a one-row
    ``UPDATE`` on SQLite), a Core one on the table does not, and one built once also keeps its
    cache key."""
    return Base.metadata.tables[model.__tablename__]


def as_models[M: Base](model: type[M], rows: Iterable[Sequence[Any]]) -> list[M]:
    """Rows that begin with every column of :func:`table_of` ``(model)``, in the table's order
    (``select(table)``, ``RETURNING *table.c``), as ``model`` instances to read (never added
    to a session: nothing is written back from them)."""
    at = {column.name: index for index, column in enumerate(table_of(model).c)}
    fields = [(attribute.key, at[attribute.columns[0].name]) for attribute in _columns(model)]
    return [model(**{key: row[index] for key, index in fields}) for row in rows]


def _columns(model: type[Base]) -> Any:
    return inspect(model).column_attrs
