"""Committing a unit of work whose rows carry an optimistic version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from core.errors import ChangedConcurrently, Conflict


@overload
async def commit_versioned(db: AsyncSession, *, kind: str, ident: str) -> None: ...


@overload
async def commit_versioned[T](
    db: AsyncSession, *, kind: str, ident: str, read: Callable[[], T]
) -> T: ...


async def commit_versioned(
    db: AsyncSession, *, kind: str, ident: str, read: Callable[[], Any] | None = None
) -> Any:
    """Commit; when another writer changed a versioned row first (its version no longer
    matches), roll back and raise AURORA-4090 naming ``kind`` and ``ident``.

    With ``read``: flush, build what the caller answers with from the flushed rows (their new
    versions and defaults: the response model, the event payload), then commit, and return
    it. Nothing is committed when it cannot be built (the exception propagates, rolled back)."""
    try:
        built = None
        if read is not None:
            await db.flush()
            built = read()
        await db.commit()
    except StaleDataError as err:
        await db.rollback()
        raise ChangedConcurrently({f"{kind}_id": ident, "reason": "changed concurrently"}) from err
    except Exception:
        await db.rollback()
        raise
    return built


def check_version(*, kind: str, ident: str, current: int, wanted: int | None) -> None:
    """AURORA-4090 when a change names the version it was made against (``wanted``) and the
    row has moved on since (``current``); nothing when it names none."""
    if wanted is not None and wanted != current:
        raise Conflict(
            {
                f"{kind}_id": ident,
                "current_version": current,
                "reason": f"the {kind} changed since you read it",
            }
        )
