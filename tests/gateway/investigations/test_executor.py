"""The investigations' action ledger with handlers: an EDR action is carried out by its handler
once per key, a handler's refusal is the action's failure, other actions go to the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from core.db import Database, create_database
from core.errors import ServiceUnavailable
from core.events import EventBus
from core.metrics import create_metrics
from core.settings import Settings
from gateway.investigations.executor import LedgerExecutor
from gateway.investigations.models import ResponseActionRecord
from orchestrator.actions import ActionOrder


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    opened = create_database(settings.effective_database_url)
    try:
        yield opened
    finally:
        await opened.dispose()


def order(key: str, action: str = "isolate_host", target: str = "ws-042") -> ActionOrder:
    return ActionOrder(
        key=key, investigation_id="INV-2026-00001", action=action, target=target, reason="r"
    )


async def test_handled_actions_run_once_and_failures_are_recorded(database: Database) -> None:
    calls: list[ActionOrder] = []
    refuse = {"INV-2026-00001/A2"}

    async def isolate(given: ActionOrder) -> dict[str, Any]:
        calls.append(given)
        if given.key in refuse:
            raise ServiceUnavailable({"connector": "mde", "reason": "503"})
        return {"endpoint": given.target, "connector": "lab", "status": "succeeded"}

    bus = EventBus()
    metrics = create_metrics()
    executor = LedgerExecutor(
        database=database, bus=bus, handlers={"isolate_host": isolate}, metrics=metrics
    )
    with bus.subscribe("response.actions") as published:
        done = await executor.execute(order("INV-2026-00001/A1"))
        again = await executor.execute(order("INV-2026-00001/A1"))
        failed = await executor.execute(order("INV-2026-00001/A2"))
        blocked = await executor.execute(order("INV-2026-00001/A3", "block_ip", "203.0.113.9"))
        dispatched = published.drain()
    assert [c.key for c in calls] == ["INV-2026-00001/A1", "INV-2026-00001/A2"]
    assert (done.status, done.detail["connector"], done.replayed) == ("executed", "lab", False)
    assert (again.status, again.replayed) == ("executed", True)
    assert failed.status == "failed"
    assert failed.detail["error"]["code"] == "AURORA-5030"
    assert blocked.status == "executed"
    assert [e.payload["action"] for e in dispatched] == ["block_ip"]
    async with database.session() as db:
        rows = {r.key: r.status for r in await db.scalars(select(ResponseActionRecord))}
    assert rows == {
        "INV-2026-00001/A1": "executed",
        "INV-2026-00001/A2": "failed",
        "INV-2026-00001/A3": "executed",
    }
    exposition = metrics.exposition()[0].decode()
    assert (
        'aurora_response_actions_total{action="isolate_host",outcome="failed",'
        'source="investigation"} 1.0' in exposition
    )
