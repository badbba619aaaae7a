"""Committing a unit of work whose rows carry an optimistic version."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from core.errors import Conflict


async def commit_versioned(db: AsyncSession, *, kind: str, ident: str) -> None:
    """Commit; when another writer changed a versioned row first (its version no longer
    matches), roll back and raise AURORA-4090 naming ``kind`` and ``ident``."""
    try:
        await db.commit()
    except StaleDataError as err:
        await db.rollback()
        raise Conflict({f"{kind}_id": ident, "reason": "changed concurrently"}) from err
