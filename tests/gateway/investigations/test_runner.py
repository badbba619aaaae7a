"""The investigation runner's loops: it queues again what a stopped gateway left running, runs
the queue, expires approvals past their deadline (and goes on with their investigations), and
leaves nothing running once stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from core.db import Database, create_database
from core.db.base import utcnow
from core.events import EventBus
from core.settings import Settings
from gateway.investigations.models import Approval, Investigation
from gateway.investigations.schemas import InvestigateRequest
from gateway.investigations.service import InvestigationRunner, enqueue
from tests.waiting import eventually


class Reporting:
    """Stands in for the investigation graph (the runner is under test here, not the graph):
    every thread reports at once, after ``gate`` opens."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.threads: list[str] = []

    async def ainvoke(self, payload: Any, config: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.threads.append(config["configurable"]["thread_id"])
        await self.gate.wait()
        return {"report": {"verdict": "benign"}, "timeline": []}

    async def aget_state(self, config: dict[str, Any]) -> Any:
        return SimpleNamespace(values={}, interrupts=())


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    opened = create_database(settings.effective_database_url)
    try:
        yield opened
    finally:
        await opened.dispose()


def runner(database: Database, bus: EventBus, graph: Reporting) -> InvestigationRunner:
    return InvestigationRunner(
        database=database,
        graph=graph,
        bus=bus,
        concurrency=lambda: 2,
        mode=lambda: "dry_run",
        approval_timeout=lambda: 60.0,
        checkpointer=None,  # nothing finished an hour ago: nothing to prune
        retention=timedelta(hours=1),
        tick_seconds=0.05,
    )


def investigation(ident: str, status: str) -> Investigation:
    return Investigation(
        id=ident,
        status=status,
        priority="normal",
        subject={"title": ident, "text": "", "iocs": []},
        requested_by="ana",
        attempts=0,
    )


async def status_of(database: Database, ident: str) -> tuple[str, int]:
    async with database.session() as db:
        found = await db.get(Investigation, ident)
        assert found is not None
        return found.status, found.attempts


def _others() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_what_a_stopped_gateway_left_running_runs_again(database: Database) -> None:
    async with database.session() as db:
        db.add(investigation("INV-1", "running"))
        await db.commit()
    before = _others()
    graph = Reporting()
    graph.gate.clear()  # the first run never finishes: the gateway stops under it
    async with runner(database, EventBus(), graph):
        await eventually(lambda: graph.threads == ["INV-1"], what="INV-1 started")
        assert await status_of(database, "INV-1") == ("running", 1)
    assert _others() == before  # its loops and its investigation's task are gone
    # Given back to the queue: the next start (or another replica) resumes it.
    assert await status_of(database, "INV-1") == ("queued", 1)

    graph = Reporting()
    bus = EventBus()
    receipts = bus.subscribe("investigations.receipt")
    async with runner(database, bus, graph):
        await eventually(
            lambda: [e.payload["status"] for e in receipts.drain()] == ["completed"],
            what="INV-1 completed",
        )
    assert graph.threads == ["INV-1"]
    assert await status_of(database, "INV-1") == ("completed", 2)


async def test_a_submission_runs_at_once_on_a_free_slot_and_queues_behind_a_full_runner(
    database: Database,
) -> None:
    """With a slot free and the queue empty, a submitted investigation is recorded as this
    runner's claim would leave it and starts without a claim; with every slot taken it is
    queued and runs when one frees; a recording that fails gives its slot back."""
    graph = Reporting()
    graph.gate.clear()  # nothing finishes until the gate opens
    work = runner(database, EventBus(), graph)

    async def submit(ident: str) -> Investigation:
        async def record(run_by: str | None) -> Investigation:
            async with database.session() as db:
                return await enqueue(
                    db=db, actor="ana", body=InvestigateRequest(text=ident), run_by=run_by
                )

        return await work.submit(record)

    async def refused(run_by: str | None) -> Investigation:
        raise RuntimeError("the database refused it")

    async with work:
        await eventually(lambda: work._drained, what="the queue's first look")
        with pytest.raises(RuntimeError):
            await work.submit(refused)
        first, second = await submit("one"), await submit("two")  # the two slots
        for started in (first, second):
            assert (started.status, started.attempts, started.owner) == ("running", 1, work._owner)
            assert started.started_at is not None
            assert await status_of(database, started.id) == ("running", 1)
        await eventually(lambda: len(graph.threads) == 2, what="both started")
        third = await submit("three")
        assert third.status == "queued"
        assert await status_of(database, third.id) == ("queued", 0)
        graph.gate.set()
        await eventually(lambda: len(graph.threads) == 3, what="the third started")
        for done in (first, second, third):
            await eventually(
                lambda done=done: _completed(database, done.id), what=f"{done.id} completed"
            )
    assert graph.threads == [first.id, second.id, third.id]


async def _completed(database: Database, ident: str) -> bool:
    return (await status_of(database, ident)) == ("completed", 1)


class Legacy(Reporting):
    """A thread checkpointed by the version before typed state: its values are plain dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.payloads: list[Any] = []
        self.deleted: list[str] = []

    async def ainvoke(self, payload: Any, config: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.payloads.append(payload)
        return await super().ainvoke(payload, config)

    async def aget_state(self, config: dict[str, Any]) -> Any:
        thread = config["configurable"]["thread_id"]
        if thread in self.deleted:
            return SimpleNamespace(values={}, interrupts=())
        subject = {"title": thread, "text": "", "iocs": []}
        return SimpleNamespace(values={"subject": subject, "findings": [{}]}, interrupts=())

    async def adelete_thread(self, thread_id: str) -> None:  # the checkpointer's side
        self.deleted.append(thread_id)


async def test_a_checkpoint_from_an_older_version_starts_its_investigation_over(
    database: Database,
) -> None:
    """An investigation that was running across the upgrade is neither lost nor resumed from
    state the new nodes cannot read: its old checkpoints go and it runs from its input."""
    interrupted = investigation("INV-7", "running")
    interrupted.attempts = 1  # it ran before the upgrade
    async with database.session() as db:
        db.add(interrupted)
        await db.commit()
    graph = Legacy()
    bus = EventBus()
    receipts = bus.subscribe("investigations.receipt")
    legacy = InvestigationRunner(
        database=database,
        graph=graph,
        bus=bus,
        concurrency=lambda: 2,
        mode=lambda: "dry_run",
        approval_timeout=lambda: 60.0,
        checkpointer=graph,  # type: ignore[arg-type]
        retention=timedelta(hours=1),
        tick_seconds=0.05,
    )
    async with legacy:
        await eventually(
            lambda: [e.payload["status"] for e in receipts.drain()] == ["completed"],
            what="INV-7 completed",
        )
    assert graph.deleted == ["INV-7"]
    assert graph.payloads == [
        {
            "investigation_id": "INV-7",
            "subject": {"title": "INV-7", "text": "", "iocs": []},
            "mode": "dry_run",
        }
    ]


async def test_an_expired_approval_is_announced_and_its_investigation_goes_on(
    database: Database,
) -> None:
    async with database.session() as db:
        db.add(investigation("INV-2", "awaiting_approval"))
        db.add(
            Approval(
                id="act-1",
                investigation_id="INV-2",
                action="isolate_host",
                target="ws-17",
                request={},
                status="pending",
                requested_at=utcnow() - timedelta(minutes=2),
                expires_at=utcnow() - timedelta(minutes=1),
            )
        )
        await db.commit()
    bus = EventBus()
    decided = bus.subscribe("approvals.decided")
    graph = Reporting()
    async with runner(database, bus, graph):
        await eventually(lambda: graph.threads == ["INV-2"], what="INV-2 went on")
        await eventually(lambda: _done(database, "INV-2"), what="INV-2 completed")
    events = decided.drain()
    assert [(e.payload["approval_id"], e.payload["status"]) for e in events] == [
        ("act-1", "expired")
    ]
    async with database.session() as db:
        approval = await db.get(Approval, "act-1")
        assert approval is not None
        assert approval.status == "expired"


async def _done(database: Database, ident: str) -> bool:
    return (await status_of(database, ident))[0] == "completed"
