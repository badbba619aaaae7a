"""Durable queues in a table: a row waits as ``queued`` and one worker claims it.

Investigations and playbook executions both queue this way: the claim is an UPDATE that only
matches a row still ``queued``, so of two workers (two tasks, or two gateway replicas) racing
for one row exactly one wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update

from core.db.base import utcnow
from core.db.engine import Database


async def claim_next(
    database: Database, model: Any, *, order_by: Sequence[Any], **values: Any
) -> str | None:
    """Move the first ``queued`` row of ``model`` (in ``order_by``) to ``running``, counting
    the attempt and keeping its first ``started_at``, with ``values`` set too; its id, ``""``
    when another worker claimed it first, or ``None`` when nothing is queued."""
    async with database.session() as db:
        candidate = (
            await db.execute(
                select(model.id).where(model.status == "queued").order_by(*order_by).limit(1)
            )
        ).scalar_one_or_none()
        if candidate is None:
            return None
        claimed = await db.execute(
            update(model)
            .where(model.id == candidate, model.status == "queued")
            .values(
                status="running",
                started_at=func.coalesce(model.started_at, utcnow()),
                attempts=model.attempts + 1,
                **values,
            )
            .returning(model.id)
        )
        got = claimed.scalar_one_or_none()
        await db.commit()
        return str(got) if got else ""
