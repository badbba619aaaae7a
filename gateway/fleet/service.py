"""The agent fleet: cards and tools, tool calls recorded from agent notifications, inference."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from mcp.client.client import Client
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agents.acp.client import CallOptions, HandoffClient
from agents.acp.protocol import THOUGHT_METHOD, TOOL_CALL_METHOD
from core.db import Database
from core.db.base import utcnow
from core.events import EventBus
from core.llm import LLMBackend
from gateway.fleet.models import AgentToolCall
from gateway.fleet.schemas import AgentTool, AgentTools, InferenceStatus, McpHealth

log = logging.getLogger("aurora.fleet")

CARD_TIMEOUT_SECONDS = 5.0
BATCH_WINDOW_SECONDS = 0.05
BATCH = 500


class ToolCallRecorder:
    """Receives the notifications agents stream to the gateway: publishes them on the event bus
    at once and writes tool calls to the database in batches, off the hot path. On close it
    writes everything still queued."""

    def __init__(self, *, database: Database, bus: EventBus) -> None:
        self._db = database
        self._bus = bus
        self._queue: asyncio.Queue[AgentToolCall] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.written = 0

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="tool-call-writer")

    def on_notification(self, agent: str, message: dict[str, Any]) -> None:
        """The HandoffClient's notification hook (called on its reader task: never blocks)."""
        params = message.get("params")
        if not isinstance(params, dict):
            return
        method = message.get("method")
        event = {"agent": agent, **params}
        if method == THOUGHT_METHOD:
            self._bus.publish("agents.thought", event)
        elif method == TOOL_CALL_METHOD:
            self._bus.publish("agents.tool_call", event)
            arguments = params.get("arguments")
            self._queue.put_nowait(
                AgentToolCall(
                    agent=agent,
                    request_id=_text(params.get("request_id")),
                    investigation_id=_text(params.get("investigation_id")),
                    tool=str(params.get("tool", ""))[:128],
                    arguments=arguments if isinstance(arguments, dict) else {},
                    result_summary=str(params.get("result_summary", ""))[:4000],
                    duration_ms=float(params.get("duration_ms") or 0.0),
                    created_at=utcnow(),  # when it was reported, not when the batch is written
                )
            )

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Tool calls trickle in a few at a time: wait a moment for the rest of the burst
            # so one commit carries them (a commit per call competes for the database).
            await asyncio.sleep(BATCH_WINDOW_SECONDS)
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[AgentToolCall]) -> None:
        try:
            async with self._db.session() as db:
                db.add_all(batch)
                await db.commit()
            self.written += len(batch)
        except Exception:
            log.exception("could not record %d tool call(s); retrying", len(batch))
            await asyncio.sleep(1)
            for row in batch:
                self._queue.put_nowait(row)

    async def flush(self) -> None:
        """Write what is queued now (for tests and shutdown)."""
        pending = []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        if pending:
            await self._write(pending)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.flush()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:128]


async def agent_tools(*, client: HandoffClient, agent: str) -> AgentTools:
    """The agent's card as a tool list; AURORA-4043 unknown, AURORA-5030 unreachable."""
    urls = list(client.registry.urls(agent))
    card = await client.call(agent, "agent.card", options=CallOptions(timeout=CARD_TIMEOUT_SECONDS))
    return AgentTools(
        agent=agent,
        urls=urls,
        version=str(card.get("version", "")),
        description=str(card.get("description", "")),
        backend=dict(card.get("backend") or {}),
        prompt_versions=dict(card.get("prompt_versions") or {}),
        tools=[AgentTool.model_validate(method) for method in card.get("methods", [])],
    )


async def list_tool_calls(
    *,
    db: AsyncSession,
    agent: str,
    limit: int,
    offset: int,
    investigation_id: str | None = None,
    tool: str | None = None,
) -> tuple[list[AgentToolCall], int]:
    """Newest first."""
    where = [AgentToolCall.agent == agent]
    if investigation_id is not None:
        where.append(AgentToolCall.investigation_id == investigation_id)
    if tool is not None:
        where.append(AgentToolCall.tool == tool)
    rows = await db.execute(
        select(AgentToolCall)
        .where(*where)
        .order_by(AgentToolCall.created_at.desc(), AgentToolCall.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = await db.execute(select(func.count()).select_from(AgentToolCall).where(*where))
    return list(rows.scalars()), int(total.scalar_one())


def public_url(url: str) -> str:
    """A URL without credentials, query or fragment (safe to show)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def inference_status(*, llm: LLMBackend | None) -> InferenceStatus:
    if llm is None:
        return InferenceStatus(
            backend="none",
            base_url=None,
            model=None,
            reachable=False,
            latency_ms=None,
            models=[],
            model_served=False,
            detail="no LLM configured: agents run their built-in analysis",
        )
    report = await llm.health()
    return InferenceStatus(
        backend="openai-compatible",
        base_url=public_url(llm.base_url),
        model=report.model,
        reachable=report.reachable,
        latency_ms=round(report.latency_ms, 3),
        models=list(report.models),
        model_served=report.model_served,
        detail=report.detail,
    )


MCP_TIMEOUT_SECONDS = 5.0


async def mcp_health(*, url: str) -> McpHealth:
    """Ask the MCP server for its tools; ``down`` with a safe reason when it does not answer."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(MCP_TIMEOUT_SECONDS), Client(url) as client:
            listing = await client.list_tools()
            info = client.server_info
    except Exception as err:
        reason = "timed out" if isinstance(err, TimeoutError) else type(err).__name__
        return McpHealth(status="down", url=url, detail=f"MCP server not reachable ({reason})")
    return McpHealth(
        status="ok",
        url=url,
        server_name=info.name if info else None,
        server_version=info.version if info else None,
        tools=sorted(tool.name for tool in listing.tools),
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
    )
