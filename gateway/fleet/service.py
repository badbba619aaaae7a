"""The agent fleet: cards and tools, tool calls recorded from agent notifications, inference."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agents.acp.client import CallOptions, HandoffClient
from agents.acp.protocol import THOUGHT_METHOD, TOOL_CALL_METHOD, RpcError
from core.db import Database
from core.db.base import table_of, utcnow
from core.db.pages import fetch_page
from core.errors import ServiceUnavailable
from core.events import EventBus
from core.llm import LLMBackend
from core.loops import Periodic
from gateway.fleet.models import AgentToolCall
from gateway.fleet.schemas import (
    AgentTool,
    AgentTools,
    InferenceStatus,
    McpHealth,
    ToolCallQuery,
)

log = logging.getLogger("aurora.fleet")

CARD_TIMEOUT_SECONDS = 5.0
BATCH_WINDOW_SECONDS = 0.05
BATCH = 500
RETRY_SECONDS = 1.0
"""How long the writer waits before trying again after the database refused a batch."""
_RECORD = insert(table_of(AgentToolCall))
"""One executemany a batch, on the table (the ORM's bulk insert costs more than the rows)."""


class ToolCallRecorder:
    """Receives the notifications agents stream to the gateway: publishes them on the event bus
    at once and writes tool calls to the database in batches, off the hot path.

    Given a client, it receives that client's notifications from :meth:`start` to
    :meth:`close` (or for as long as it is entered as an async context manager); on close it
    writes everything still queued."""

    def __init__(
        self, *, database: Database, bus: EventBus, client: HandoffClient | None = None
    ) -> None:
        self._db = database
        self._bus = bus
        self._client = client
        self._pending: list[dict[str, Any]] = []
        self._failing = False
        self._writer = Periodic(
            "tool-call-writer", self._write_burst, RETRY_SECONDS, log=log, first_wait=True
        )
        self.written = 0

    def start(self) -> None:
        if self._client is not None:
            self._client.on_notification = self.on_notification
        self._writer.start()

    async def close(self) -> None:
        if self._client is not None:
            self._client.on_notification = None
        await self._writer.stop()
        await self.flush()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

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
            self._pending.append(
                {
                    "agent": agent,
                    "request_id": _text(params.get("request_id")),
                    "investigation_id": _text(params.get("investigation_id")),
                    "tool": str(params.get("tool", ""))[:128],
                    "arguments": arguments if isinstance(arguments, dict) else {},
                    "result_summary": str(params.get("result_summary", ""))[:4000],
                    "duration_ms": _number(params.get("duration_ms")),
                    "created_at": utcnow(),  # when it was reported, not when it is written
                }
            )
            if not self._failing:  # after a failed write, the next try waits for its interval
                self._writer.wake()

    async def _write_burst(self) -> None:
        if self._pending:
            # Tool calls trickle in a few at a time: wait a moment for the rest of the burst
            # so one commit carries them (a commit per call competes for the database).
            await asyncio.sleep(BATCH_WINDOW_SECONDS)
            self._failing = not await self.flush()

    async def flush(self) -> bool:
        """Write what is queued now, at most ``BATCH`` a commit, each batch as one executemany
        ``INSERT`` on the table (:data:`_RECORD`); False when a write failed (logged: what it
        held stays queued for the writer to try again)."""
        while self._pending:
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            try:
                async with self._db.begin() as connection:
                    await connection.execute(_RECORD, batch)
            except Exception:
                log.exception("could not record %d tool call(s); retrying", len(batch))
                self._pending[:0] = batch
                return False
            self.written += len(batch)
        return True


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:128]


def _number(value: Any) -> float:
    """A reported duration as a float; 0.0 for anything that is not a finite number."""
    try:
        number = float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


async def agent_tools(*, client: HandoffClient, agent: str) -> AgentTools:
    """The agent's card as a tool list; AURORA-4043 unknown, AURORA-5030 unreachable or not
    answering in time."""
    urls = list(client.registry.urls(agent))
    try:
        card = await client.call(
            agent, "agent.card", options=CallOptions(timeout=CARD_TIMEOUT_SECONDS)
        )
    except RpcError as err:
        raise ServiceUnavailable(
            {"agent": agent, "reason": err.message, "rpc_code": err.code}
        ) from err
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
    *, db: AsyncSession, query: ToolCallQuery, agent_id: str
) -> tuple[list[AgentToolCall], int]:
    """The agent's tool calls the query's filters match, newest first."""
    where = [AgentToolCall.agent == agent_id]
    if query.investigation_id is not None:
        where.append(AgentToolCall.investigation_id == query.investigation_id)
    if query.tool is not None:
        where.append(AgentToolCall.tool == query.tool)
    return await fetch_page(
        db, AgentToolCall, where=where, sort="-created_at", limit=query.limit, offset=query.offset
    )


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
            detail=(
                "no LLM configured: agents run their built-in analysis, and chat answers its"
                " built-in commands only"
            ),
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
    # The MCP SDK's client is a third of a second of imports: the gateway loads it when an
    # operator first asks, not on its way to serving.
    from mcp.client.client import Client

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
