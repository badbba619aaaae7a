"""The tool-call recorder: it receives its client's notifications while it runs, writes tool calls
in batches, keeps what the database refused until it can write it, and writes the rest on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from agents.acp.client import HandoffClient
from agents.acp.protocol import THOUGHT_METHOD, TOOL_CALL_METHOD
from agents.acp.registry import AgentRegistry
from core.db import Database, create_database
from core.events import EventBus
from core.settings import Settings
from gateway.fleet.models import AgentToolCall
from gateway.fleet.service import ToolCallRecorder
from tests.waiting import eventually


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    opened = create_database(settings.effective_database_url)
    try:
        yield opened
    finally:
        await opened.dispose()


def client() -> HandoffClient:
    return HandoffClient(registry=AgentRegistry({}), sender="gateway", token=lambda: "unused")


def tool_call(n: int) -> dict[str, Any]:
    params = {"tool": f"lookup-{n}", "investigation_id": "INV-7", "duration_ms": 1.5}
    return {"jsonrpc": "2.0", "method": TOOL_CALL_METHOD, "params": params}


async def stored(database: Database) -> list[str]:
    async with database.session() as db:
        return list(await db.scalars(select(AgentToolCall.tool).order_by(AgentToolCall.id)))


async def test_it_records_its_clients_notifications_while_it_runs(database: Database) -> None:
    bus = EventBus()
    handoff = client()
    thoughts = bus.subscribe("agents.thought")
    calls = bus.subscribe("agents.tool_call")
    async with ToolCallRecorder(database=database, bus=bus, client=handoff) as recorder:
        assert handoff.on_notification is not None
        for n in range(3):
            handoff.on_notification("malware", tool_call(n))
        thought = {"method": THOUGHT_METHOD, "params": {"text": "looks packed"}}
        handoff.on_notification("malware", thought)
        handoff.on_notification("malware", {"method": TOOL_CALL_METHOD, "params": "not an object"})
        await eventually(lambda: recorder.written == 3, what="the burst written")
        assert await stored(database) == ["lookup-0", "lookup-1", "lookup-2"]
    assert handoff.on_notification is None  # no longer received once closed
    published = [(e.payload["agent"], e.payload["tool"]) for e in calls.drain()]
    assert published == [("malware", f"lookup-{n}") for n in range(3)]
    assert [e.payload for e in thoughts.drain()] == [{"agent": "malware", "text": "looks packed"}]


async def test_close_writes_what_is_still_queued(database: Database) -> None:
    recorder = ToolCallRecorder(database=database, bus=EventBus())
    async with recorder:
        for n in range(700):  # more than one commit's batch
            recorder.on_notification("network", tool_call(n))
    assert recorder.written == 700
    assert len(await stored(database)) == 700


async def test_a_refused_batch_is_kept_and_written_later(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aurora.fleet")

    async def rename(old: str, new: str) -> None:
        async with database.session() as db:
            await db.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
            await db.commit()

    async with ToolCallRecorder(database=database, bus=EventBus()) as recorder:
        await rename("agent_tool_calls", "agent_tool_calls_away")
        try:
            for n in range(2):
                recorder.on_notification("malware", tool_call(n))
            await eventually(
                lambda: "could not record 2 tool call(s)" in caplog.text, what="a refused write"
            )
            recorder.on_notification("malware", tool_call(2))
            await asyncio.sleep(0)
            assert recorder.written == 0
        finally:
            await rename("agent_tool_calls_away", "agent_tool_calls")
        await eventually(lambda: recorder.written == 3, what="the kept calls written")
    assert await stored(database) == ["lookup-0", "lookup-1", "lookup-2"]
    async with database.session() as db:
        assert await db.scalar(select(func.count()).select_from(AgentToolCall)) == 3
