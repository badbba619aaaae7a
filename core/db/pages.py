"""One page of a filtered, sorted listing, with the total the filters match."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, String, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession


async def fetch_page[T](
    db: AsyncSession,
    model: type[T],
    *,
    where: Sequence[Any],
    sort: str,
    limit: int,
    offset: int,
    ranked: Mapping[str, Mapping[str, int]] | None = None,
) -> tuple[list[T], int]:
    """Rows of ``model`` matching ``where``, ordered by ``sort`` (``field`` or ``-field``;
    a field in ``ranked`` sorts by its rank, e.g. severity), then by id, newest id first.

    ``sort`` must already be validated against the model's sortable fields.
    """
    descending = sort.startswith("-")
    field = sort.lstrip("-")
    column: Any = getattr(model, field)
    if ranked and field in ranked:
        column = case(dict(ranked[field]), value=column)
    identity: Any = model.id  # type: ignore[attr-defined]
    order = [column.desc() if descending else column.asc(), identity.desc()]
    rows = await db.execute(
        select(model).where(*where).order_by(*order).limit(limit).offset(offset)
    )
    total = await db.execute(select(func.count()).select_from(model).where(*where))
    return list(rows.scalars()), int(total.scalar_one())


async def fetch_rows[T](
    db: AsyncSession, statement: Select[T], *, limit: int, offset: int
) -> tuple[list[T], int]:
    """One page of what ``statement`` selects, in its order, with how many it selects in all."""
    rows = await db.scalars(statement.limit(limit).offset(offset))
    counted = select(func.count()).select_from(statement.order_by(None).subquery())
    return list(rows), int((await db.execute(counted)).scalar_one())


def equal(*pairs: tuple[Any, object]) -> list[Any]:
    """``column == value`` for each ``(column, value)`` whose value is not None: the filters a
    list query sets."""
    return [column == value for column, value in pairs if value is not None]


def holds_tag(column: Any, tag: str) -> Any:
    """Rows whose tags (``column``: a JSON list cleaned by :func:`core.schemas.clean_tags`,
    so sorted, of restricted characters and quoted alike everywhere) hold ``tag`` exactly."""
    escaped = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return cast(column, String).like(f'%"{escaped}"%', escape="\\")
