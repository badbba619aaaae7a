"""Durable queues in a table: a row waits as ``queued`` and one worker claims it.

Investigations and playbook executions both queue this way: the claim is an UPDATE that only
matches a row still ``queued``, so of two workers (two tasks, or two gateway replicas) racing
for one row exactly one wins.

A claimed row names its ``owner`` (the replica running it, :func:`core.db.leases.process_identity`)
and carries a ``heartbeat_at`` that the owner renews (:func:`beat`) while it runs. Work whose
owner is gone goes back to the queue (:func:`requeue_orphans`): at once when the owner was a
process of this host that no longer exists (a gateway killed and restarted, a replica killed
beside others), else once its heartbeat is older than ``stale_seconds`` (a replica on another
host that died). A replica that stops cleanly gives its work back (:func:`give_back`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import and_, func, or_, select, update

from core.db.base import Base, as_models, table_of, utcnow
from core.db.engine import Database
from core.db.leases import owner_gone

HEARTBEAT_SECONDS: Final = 10.0
STALE_SECONDS: Final = 60.0


async def claim_next(
    database: Database,
    model: Any,
    *,
    order_by: Sequence[Any],
    owner: str | None = None,
    **values: Any,
) -> str | None:
    """Move the first ``queued`` row of ``model`` (in ``order_by``) to ``running``, counting
    the attempt and keeping its first ``started_at``, with ``values`` set too (and ``owner``
    with a first heartbeat); its id, or ``None`` when nothing is queued that no other claim
    holds."""
    claimed = await claim_many(database, model, order_by=order_by, limit=1, owner=owner, **values)
    return claimed[0] if claimed else None


async def claim_many(
    database: Database,
    model: Any,
    *,
    order_by: Sequence[Any],
    limit: int,
    owner: str | None = None,
    **values: Any,
) -> list[str]:
    """Claim up to ``limit`` of the first ``queued`` rows at once, as :func:`claim_next`
    claims one: their ids in ``order_by``'s order (ascending expressions, returned with the
    rows to sort them). Fewer than ``limit`` means the queue was empty of claimable rows, so a
    worker with slots left need not ask again until something is queued."""
    claimed = await claim_rows(
        database, model, order_by=order_by, limit=limit, owner=owner, **values
    )
    return [str(row.id) for row in claimed]


async def claim_rows[M: Base](
    database: Database,
    model: type[M],
    *,
    order_by: Sequence[Any],
    limit: int,
    owner: str | None = None,
    **values: Any,
) -> list[M]:
    """:func:`claim_many`, giving the claimed rows as they are after the claim (read by the
    claim's own ``RETURNING``: a worker that starts them need not read them again)."""
    if limit < 1:
        return []
    table = table_of(model)
    if owner is not None:
        values = {**values, "owner": owner, "heartbeat_at": utcnow()}
    # One statement: the first queued rows, locked (PostgreSQL skips rows another claim holds,
    # so concurrent claims take different rows; SQLite runs one writer at a time) and moved.
    # The pick is a materialised CTE, run once: as an IN (subquery) PostgreSQL may run it again
    # for each row it looks at, and with SKIP LOCKED each run picks other rows. It is a Core
    # statement on the table (core.db.base.table_of): the ORM's would cost more than the claim.
    picked = (
        select(table.c.id)
        .where(table.c.status == "queued")
        .order_by(*order_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    async with database.begin() as connection:
        claimed = await connection.execute(
            update(table)
            .where(table.c.id.in_(select(picked.c.id)), table.c.status == "queued")
            .values(
                status="running",
                started_at=func.coalesce(table.c.started_at, utcnow()),
                attempts=table.c.attempts + 1,
                **values,
            )
            .returning(*table.c, *order_by)
        )
        rows = list(claimed.all())
    # RETURNING gives no order: the queue's again.
    width = len(table.c)
    rows.sort(key=lambda row: tuple(row[width:]))
    return as_models(model, rows)


async def claim_free_slots(
    database: Database,
    model: Any,
    *,
    order_by: Sequence[Any],
    free: Callable[[], int],
    start: Callable[[Any], object],
    owner: str | None = None,
    peek: bool = False,
) -> bool:
    """Fill a worker's free slots (``free()`` of them) from the queue, a :func:`claim_rows`
    each time, starting each row claimed (``start(row)``, which takes a slot) in the queue's
    order, until no slot is free or a claim comes back short; whether the queue was found
    empty.

    With ``peek`` (the worker's last look found the queue empty), a read of whether anything
    is queued comes first: an idle worker's tick then costs a read of the status index (about
    a quarter of the claim's CPU, and no write lock) instead of the claim's ``UPDATE``."""
    if peek and free() > 0 and not await anything_queued(database, model):
        return True
    while (slots := free()) > 0:
        claimed = await claim_rows(database, model, order_by=order_by, limit=slots, owner=owner)
        for row in claimed:
            start(row)
        if len(claimed) < slots:
            return True
    return False


async def anything_queued(database: Database, model: Any) -> bool:
    """Whether ``model`` has a ``queued`` row (a read: claims may still find none free). An
    idle worker asks this every tick: the statement is built once per table."""
    statement = _QUEUED.get(model)
    if statement is None:
        table = table_of(model)
        statement = _QUEUED[model] = select(table.c.id).where(table.c.status == "queued").limit(1)
    async with database.begin() as connection:
        found = (await connection.execute(statement)).first()
    return found is not None


_QUEUED: dict[Any, Any] = {}
""":func:`anything_queued`'s statement for each queue's table."""


async def beat(database: Database, model: Any, ids: Sequence[str], owner: str) -> None:
    """Renew the heartbeat of the rows ``owner`` runs."""
    if not ids:
        return
    async with database.session() as db:
        await db.execute(
            update(model)
            .where(model.id.in_(list(ids)), model.owner == owner, model.status == "running")
            .values(heartbeat_at=utcnow())
        )
        await db.commit()


async def requeue_orphans(
    database: Database,
    model: Any,
    *,
    own: str | None = None,
    running: Collection[str] = (),
    own_grace_seconds: float = 0.0,
    stale_seconds: float = STALE_SECONDS,
) -> list[str]:
    """Queue again the ``running`` rows whose owner is gone (see the module docstring), and
    those ``own`` (the caller) owns but does not run (``running``, read live: what it runs)
    and last beat more than ``own_grace_seconds`` ago (a claim made while this looks is not
    yet in ``running``); their ids."""
    now = utcnow()
    stale = now - timedelta(seconds=stale_seconds)
    grace = now - timedelta(seconds=own_grace_seconds)
    async with database.session() as db:
        rows = (
            await db.execute(
                select(model.id, model.owner, model.heartbeat_at).where(model.status == "running")
            )
        ).all()
    orphans = [
        (ident, owner)
        for ident, owner, heartbeat in rows
        if (
            owner == own
            and ident not in running
            and (heartbeat is None or own_grace_seconds <= 0 or heartbeat < grace)
        )
        or (owner != own and (owner_gone(owner) or heartbeat is None or heartbeat < stale))
    ]
    if not orphans:
        return []
    # One statement: a row is taken back only if its owner is still the one judged gone (a
    # replica that claimed it meanwhile keeps it), and no write lock is held across awaits.
    still = or_(
        *(
            and_(
                model.id == ident, model.owner.is_(None) if owner is None else model.owner == owner
            )
            for ident, owner in orphans
        )
    )
    async with database.session() as db:
        done = await db.execute(
            update(model)
            .where(model.status == "running", still)
            .values(status="queued", owner=None, heartbeat_at=None)
            .returning(model.id)
        )
        requeued = [str(ident) for ident in done.scalars()]
        await db.commit()
    return requeued


async def give_back(database: Database, model: Any, owner: str) -> int:
    """Queue again every row ``owner`` runs (a replica stopping cleanly); how many."""
    async with database.session() as db:
        done = await db.execute(
            update(model)
            .where(model.status == "running", or_(model.owner == owner, model.owner.is_(None)))
            .values(status="queued", owner=None, heartbeat_at=None)
            .returning(model.id)
        )
        count = len(done.all())
        await db.commit()
    return count
