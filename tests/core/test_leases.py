"""Job leases on SQLite and PostgreSQL: one holder at a time, renewal, expiry and takeover, and
a loop that does its work only where its lease is."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import timedelta

import pytest

from core.db import create_database
from core.db.base import utcnow
from core.db.leases import Lease, hold, release
from core.loops import Periodic
from core.settings import Settings
from tests.core.test_queue_owners import dead_pid
from tests.waiting import eventually

log = logging.getLogger("test.leases")


async def test_one_holder_renewal_expiry_and_takeover(settings: Settings) -> None:
    database = create_database(settings.effective_database_url)
    now = utcnow()
    try:
        assert await hold(database, "job", "a", 60, now=now)
        assert not await hold(database, "job", "b", 60, now=now + timedelta(seconds=1))
        assert await hold(database, "job", "a", 60, now=now + timedelta(seconds=50))  # renewed
        assert not await hold(database, "job", "b", 60, now=now + timedelta(seconds=100))
        # "a" died: its lease ran out 60 s after its last renewal, and "b" takes over.
        assert await hold(database, "job", "b", 60, now=now + timedelta(seconds=111))
        assert not await hold(database, "job", "a", 60, now=now + timedelta(seconds=112))
        assert await hold(database, "other-job", "a", 60, now=now)  # one lease per job
        # Given up, a lease is free at once.
        await release(database, "job", "b")
        assert await hold(database, "job", "a", 60, now=now + timedelta(seconds=113))
        # Racing replicas: exactly one takes a free lease.
        won = await asyncio.gather(
            *(hold(database, "race", f"r{i}", 60, now=now) for i in range(6))
        )
        assert won.count(True) == 1
    finally:
        await database.dispose()


async def test_a_lease_of_a_dead_process_of_this_host_is_taken_at_once(
    settings: Settings,
) -> None:
    database = create_database(settings.effective_database_url)
    here = socket.gethostname()[:64]
    try:
        assert await hold(database, "job", f"{here}:{dead_pid()}:x", 600)
        # Its process is gone: the next replica to ask takes the lease, not in 600 s.
        assert await hold(database, "job", "elsewhere:1:y", 600)
        # A holder on another host is alive as far as this host can tell.
        assert not await hold(database, "job", f"{here}:{os.getpid()}:z", 600)
    finally:
        await database.dispose()


async def test_a_leased_loop_runs_in_one_replica_and_passes_on_when_it_stops(
    settings: Settings,
) -> None:
    database = create_database(settings.effective_database_url)
    ran: list[str] = []

    def loop(holder: str) -> Periodic:
        async def step() -> None:
            ran.append(holder)

        lease = Lease(database, holder=holder, retry_seconds=0.05)
        return Periodic("shared-job", step, 0.01, log=log, lease=lease)

    first, second = loop("first"), loop("second")
    try:
        async with first:
            await eventually(lambda: len(ran) >= 3, what="steps")
            async with second:
                before = len(ran)
                await eventually(lambda: len(ran) >= before + 5, what="more steps")
                # Both loops run; only the holder of the lease does the work.
                assert set(ran) == {"first"}
                assert first.holding
                assert not second.holding
                await first.stop()  # gives its lease up
                await eventually(lambda: ran[-1] == "second", what="the takeover")
                assert second.holding
    finally:
        await database.dispose()


async def test_stopping_is_not_held_up_by_a_database_that_does_not_answer(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A lease call that never ends (a drained pool, a file locked by a stuck writer) leaves
    the loop stopped within the bound all the same, its lease left to run out."""
    database = create_database(settings.effective_database_url)
    never = asyncio.Event()
    asked = asyncio.Event()

    async def stuck_hold(*_args: object) -> bool:
        asked.set()
        await never.wait()
        return True

    async def step() -> None:
        return None

    monkeypatch.setattr("core.loops.hold", stuck_hold)
    monkeypatch.setattr("core.loops.STOP_LEASE_SECONDS", 0.2)
    loop = Periodic("stuck-job", step, 0.01, log=log, lease=Lease(database, holder="h"))
    try:
        loop.start()
        await asyncio.wait_for(asked.wait(), 10)
        async with asyncio.timeout(5):
            await loop.stop()
        assert not loop.running
        assert "the lease runs out by itself" in caplog.text
    finally:
        never.set()
        await database.dispose()
