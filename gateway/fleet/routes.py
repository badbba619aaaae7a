"""Agent fleet routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core.events import Event
from core.security.permissions import Permission
from gateway.fleet import service
from gateway.fleet.schemas import ToolCallPage, ToolCallQuery, ToolCallRead
from gateway.http import json_response, parse_query
from gateway.keys import BUS, DATABASE, HANDOFF, LLM, SETTINGS
from gateway.routing import Access, Route
from gateway.streams import pump


def _agent(request: web.Request) -> str:
    """The path's agent, AURORA-4043 when no such agent is configured."""
    name = request.match_info["agent_id"]
    request.app[HANDOFF].registry.urls(name)
    return name


async def list_agent_tools(request: web.Request) -> web.Response:
    tools = await service.agent_tools(client=request.app[HANDOFF], agent=_agent(request))
    return json_response(tools)


async def list_agent_tool_calls(request: web.Request) -> web.Response:
    agent = _agent(request)
    query = parse_query(request, ToolCallQuery)
    async with request.app[DATABASE].session() as db:
        rows, total = await service.list_tool_calls(
            db=db,
            agent=agent,
            limit=query.limit,
            offset=query.offset,
            investigation_id=query.investigation_id,
            tool=query.tool,
        )
    page = ToolCallPage(
        items=[ToolCallRead.model_validate(row) for row in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )
    return json_response(page)


async def get_inference_status(request: web.Request) -> web.Response:
    return json_response(await service.inference_status(llm=request.app[LLM]))


async def get_mcp_health(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    host = f"[{settings.mcp_host}]" if ":" in settings.mcp_host else settings.mcp_host
    return json_response(await service.mcp_health(url=f"http://{host}:{settings.mcp_port}/mcp"))


async def stream_agent_tool_calls(request: web.Request) -> web.WebSocketResponse:
    agent = _agent(request)
    investigation = request.query.get("investigation_id")

    def wanted(event: Event) -> bool:
        if event.payload.get("agent") != agent:
            return False
        return investigation is None or event.payload.get("investigation_id") == investigation

    def render(event: Event) -> dict[str, Any]:
        return {"type": "tool_call", "at": event.at, **event.payload}

    subscription = request.app[BUS].subscribe("agents.tool_call", maxsize=256, where=wanted)
    return await pump(request, subscription, render)


ROUTES = [
    Route("GET", "/api/v1/agents/{agent_id}/tools", list_agent_tools, Permission.AGENTS_READ),
    Route(
        "GET",
        "/api/v1/agents/{agent_id}/tool-calls",
        list_agent_tool_calls,
        Permission.AGENTS_READ,
    ),
    Route("GET", "/api/v1/mcp/health", get_mcp_health, Permission.AGENTS_READ),
    Route("GET", "/api/v1/inference/status", get_inference_status, Permission.AGENTS_READ),
    Route(
        "WS",
        "/api/v1/ws/agents/{agent_id}/tool-calls",
        stream_agent_tool_calls,
        Access.AUTHENTICATED,
        stream_permission=Permission.AGENTS_READ,
    ),
]
