"""Queue owners on SQLite and PostgreSQL: work whose replica is gone goes back to the queue
(at once for a dead process of this host, after the stale heartbeat for another host's), and a
replica's own work is never taken from under it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import case, event, select, update

from core.db import Database, create_database
from core.db.base import utcnow
from core.db.leases import owner_gone
from core.db.queue import (
    beat,
    claim_free_slots,
    claim_many,
    claim_next,
    claim_rows,
    give_back,
    requeue_orphans,
)
from core.settings import Settings
from gateway.investigations.models import Investigation
from gateway.investigations.schemas import PRIORITY_RANK

HOST = socket.gethostname()[:64]


def dead_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def row(ident: str, owner: str | None, beat_seconds_ago: float | None) -> Investigation:
    return Investigation(
        id=ident,
        status="running",
        priority="normal",
        subject={},
        requested_by="ana",
        attempts=1,
        owner=owner,
        heartbeat_at=None
        if beat_seconds_ago is None
        else utcnow() - timedelta(seconds=beat_seconds_ago),
    )


async def queue(database: Database, priorities: dict[str, str]) -> None:
    """Queue investigations (id: priority), none claimed yet."""
    async with database.session() as db:
        for ident, priority in priorities.items():
            item = row(ident, None, None)
            item.priority = priority
            db.add(item)
        await db.flush()
        await db.execute(
            update(Investigation)
            .where(Investigation.id.in_(list(priorities)))
            .values(status="queued", attempts=0)
        )
        await db.commit()


async def test_orphans_go_back_to_the_queue_and_live_work_stays(settings: Settings) -> None:
    database = create_database(settings.effective_database_url)
    me = f"{HOST}:1:me"
    try:
        async with database.session() as db:
            db.add_all(
                [
                    row("INV-DEAD", f"{HOST}:{dead_pid()}:x", 1),  # killed here: at once
                    row("INV-FAR-FRESH", "elsewhere:42:y", 5),  # another host, beating
                    row("INV-FAR-STALE", "elsewhere:43:z", 600),  # another host, silent
                    row("INV-LEGACY", None, None),  # from before owners
                    row("INV-MINE-RUNNING", me, 1),
                    row("INV-MINE-JUST-CLAIMED", me, 1),
                    row("INV-MINE-LOST", me, 60),
                ]
            )
            await db.commit()
        requeued = await requeue_orphans(
            database,
            Investigation,
            own=me,
            running={"INV-MINE-RUNNING"},
            own_grace_seconds=10,
        )
        assert sorted(requeued) == ["INV-DEAD", "INV-FAR-STALE", "INV-LEGACY", "INV-MINE-LOST"]
        # Claimed again, by this replica: its owner and heartbeat are set.
        claimed = await claim_next(database, Investigation, order_by=(Investigation.id,), owner=me)
        assert claimed == "INV-DEAD"
        await beat(database, Investigation, ["INV-MINE-RUNNING"], me)
        # Stopping cleanly gives back every row this replica runs: the two it had, the one
        # it claimed.
        assert await give_back(database, Investigation, me) == 3
        async with database.session() as db:
            statuses = dict(
                (await db.execute(select(Investigation.id, Investigation.status))).all()
            )
        assert statuses["INV-FAR-FRESH"] == "running"
        assert statuses["INV-MINE-RUNNING"] == "queued"
    finally:
        await database.dispose()


async def test_concurrent_claims_take_each_row_once_in_order(settings: Settings) -> None:
    """Six workers claiming at once (one statement each: PostgreSQL skips the rows another
    claim holds, SQLite runs one writer at a time) take every queued row exactly once, and none
    gives up while rows are still queued."""
    database = create_database(settings.effective_database_url)
    queued = [f"INV-Q{n:02d}" for n in range(24)]
    try:
        await queue(database, dict.fromkeys(queued, "normal"))

        async def worker(name: str) -> list[str]:
            taken: list[str] = []
            while (
                got := await claim_next(
                    database, Investigation, order_by=(Investigation.id,), owner=name
                )
            ) is not None:
                taken.append(got)
            return taken

        takes = await asyncio.gather(*(worker(f"{HOST}:1:w{i}") for i in range(6)))
        everything = [ident for taken in takes for ident in taken]
        assert sorted(everything) == queued  # each once, none left behind
        for taken in takes:
            assert taken == sorted(taken)  # each worker took them in the queue's order
        async with database.session() as db:
            rows = (
                await db.execute(
                    select(Investigation.status, Investigation.attempts, Investigation.owner).where(
                        Investigation.id.in_(queued)
                    )
                )
            ).all()
        assert {(status, attempts) for status, attempts, _ in rows} == {("running", 1)}
        assert all(owner is not None for _, _, owner in rows)
        assert await claim_next(database, Investigation, order_by=(Investigation.id,)) is None
    finally:
        await database.dispose()


def test_only_a_process_of_this_host_is_known_to_be_gone() -> None:
    assert owner_gone(None)
    assert owner_gone(f"{HOST}:{dead_pid()}:t")
    assert not owner_gone(f"{HOST}:1:t")  # init: alive
    assert not owner_gone("another-host:999999:t")  # only its heartbeat can tell


async def test_a_batch_claim_takes_the_most_urgent_first_and_says_when_the_queue_is_empty(
    settings: Settings,
) -> None:
    """``claim_many`` moves up to ``limit`` rows in one statement, gives them in the queue's
    order, and comes back short only when nothing claimable is left; concurrent batch claims
    take each row once."""
    database = create_database(settings.effective_database_url)
    priorities = ["low", "urgent", "normal", "high", "urgent", "low", "normal", "high"] * 3
    queued = [f"INV-B{n:02d}" for n in range(len(priorities))]
    rank = case(PRIORITY_RANK, value=Investigation.priority)
    order = (rank, Investigation.created_at, Investigation.id)
    try:
        await queue(database, dict(zip(queued, priorities, strict=True)))
        first = await claim_many(database, Investigation, order_by=order, limit=4, owner="a")
        urgent = sorted(i for i, p in zip(queued, priorities, strict=True) if p == "urgent")
        assert len(first) == 4
        assert sorted(first) == urgent[:4]  # the urgent ones, before any other

        async def worker(name: str) -> list[str]:
            taken: list[str] = []
            while True:
                got = await claim_many(database, Investigation, order_by=order, limit=3, owner=name)
                taken += got
                if len(got) < 3:
                    return taken

        takes = await asyncio.gather(*(worker(f"{HOST}:1:b{i}") for i in range(4)))
        everything = first + [ident for taken in takes for ident in taken]
        assert sorted(everything) == sorted(queued)  # each once, none left behind
        assert await claim_many(database, Investigation, order_by=order, limit=5) == []
        async with database.session() as db:
            attempts = set((await db.scalars(select(Investigation.attempts))).all())
        assert attempts == {1}
    finally:
        await database.dispose()


async def test_a_claim_gives_the_rows_as_it_left_them(settings: Settings) -> None:
    """``claim_rows`` gives the claimed rows themselves, in the queue's order, as the claim
    wrote them (what a worker starts them with, without reading them again)."""
    database = create_database(settings.effective_database_url)
    order = (Investigation.created_at, Investigation.id)
    try:
        await queue(database, {"INV-R01": "normal", "INV-R02": "high", "INV-R03": "low"})
        rows = await claim_rows(database, Investigation, order_by=order, limit=2, owner="me")
        assert [row.id for row in rows] == ["INV-R01", "INV-R02"]
        for row in rows:
            assert (row.status, row.attempts, row.owner) == ("running", 1, "me")
            assert row.started_at is not None
            assert row.heartbeat_at is not None
            assert (row.subject, row.requested_by) == ({}, "ana")
        async with database.session() as db:
            stored = await db.get(Investigation, "INV-R01")
            assert stored is not None
            assert (stored.status, stored.started_at) == ("running", rows[0].started_at)
    finally:
        await database.dispose()


async def test_an_idle_worker_reads_the_queue_and_claims_only_what_is_there(
    settings: Settings,
) -> None:
    """With ``peek`` (the last look found the queue empty), an empty queue costs one read and
    no write; a queued row is claimed as before."""
    database = create_database(settings.effective_database_url)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements.append(sql.lstrip().split(None, 1)[0].upper())

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    started: list[str] = []
    order = (Investigation.created_at, Investigation.id)

    async def look() -> bool:
        return await claim_free_slots(
            database,
            Investigation,
            order_by=order,
            free=lambda: 2 - len(started),
            start=lambda row: started.append(row.id),
            owner=f"{HOST}:1:idle",
            peek=True,
        )

    try:
        async with database.session() as db:  # the first connection's set-up is not a look
            await db.execute(select(1))
        statements.clear()
        assert await look()  # empty
        assert statements == ["SELECT"]
        await queue(database, {"INV-P01": "normal"})
        statements.clear()
        assert await look()  # one row for two slots: claimed, and the queue is empty again
        assert started == ["INV-P01"]
        assert "UPDATE" in statements or "WITH" in statements
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)
        await database.dispose()
