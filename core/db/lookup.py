"""Reading one row by its key, or answering that it does not exist."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.interfaces import ORMOption

from core.errors import NotFound


async def get_or_404[M](
    db: AsyncSession,
    model: type[M],
    ident: Any,
    *,
    error: type[NotFound] = NotFound,
    name: str = "id",
    options: Sequence[ORMOption] = (),
    for_update: bool = False,
) -> M:
    """The ``model`` row whose primary key is ``ident``; otherwise ``error`` (AURORA-4040 or
    a subclass such as AURORA-4041) with ``{name: ident}`` as its detail."""
    row = await db.get(model, ident, options=options, with_for_update=for_update or None)
    if row is None:
        raise error({name: ident})
    return row
