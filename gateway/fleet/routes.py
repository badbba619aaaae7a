"""Agent fleet routes: an agent's tools and tool calls, the tool-call stream, inference and MCP
status."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from core.errors import AgentNotFound, ServiceUnavailable
from core.security.permissions import Permission
from gateway.fleet import service
from gateway.fleet.schemas import (
    AgentTools,
    InferenceStatus,
    McpHealth,
    ToolCallQuery,
    ToolCallRead,
    ToolCallStreamQuery,
)
from gateway.http import json_response, parse_query
from gateway.kernel import list_route
from gateway.keys import BUS, HANDOFF, LLM, SETTINGS
from gateway.routing import Handler, Route
from gateway.streams import matching, pump, spread, stream_route


def _of_known_agent(route: Route) -> Route:
    """``route``, answering AURORA-4043 for a path's ``agent_id`` that names no configured
    agent, before anything else is read."""
    inner: Handler = route.handler

    async def handler(request: web.Request) -> web.StreamResponse:
        request.app[HANDOFF].registry.urls(request.match_info["agent_id"])
        return await inner(request)

    handler.__name__ = handler.__qualname__ = inner.__name__
    return dataclasses.replace(route, handler=handler, errors=(AgentNotFound, *route.errors))


async def list_agent_tools(request: web.Request) -> web.Response:
    tools = await service.agent_tools(
        client=request.app[HANDOFF], agent=request.match_info["agent_id"]
    )
    return json_response(tools)


async def get_inference_status(request: web.Request) -> web.Response:
    return json_response(await service.inference_status(llm=request.app[LLM]))


async def get_mcp_health(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    host = f"[{settings.mcp_host}]" if ":" in settings.mcp_host else settings.mcp_host
    return json_response(await service.mcp_health(url=f"http://{host}:{settings.mcp_port}/mcp"))


async def stream_agent_tool_calls(request: web.Request) -> web.WebSocketResponse:
    """The agent's ``agent.tool_call`` notifications, live; ``?investigation_id=`` narrows
    the stream."""
    query = parse_query(request, ToolCallStreamQuery)
    subscription = request.app[BUS].subscribe(
        "agents.tool_call",
        maxsize=256,
        where=matching(
            agent=request.match_info["agent_id"], investigation_id=query.investigation_id
        ),
    )
    return await pump(request, subscription, spread("tool_call"))


ROUTES = [
    _of_known_agent(
        Route(
            "GET",
            "/api/v1/agents/{agent_id}/tools",
            list_agent_tools,
            Permission.AGENTS_READ,
            response=AgentTools,
            errors=(ServiceUnavailable,),
            summary="List agent tools",
        )
    ),
    _of_known_agent(
        list_route(
            "/api/v1/agents/{agent_id}/tool-calls",
            service.list_tool_calls,
            ToolCallRead,
            Permission.AGENTS_READ,
            query=ToolCallQuery,
            summary="List agent tool calls",
        )
    ),
    Route(
        "GET",
        "/api/v1/mcp/health",
        get_mcp_health,
        Permission.AGENTS_READ,
        response=McpHealth,
        summary="MCP server health",
    ),
    Route(
        "GET",
        "/api/v1/inference/status",
        get_inference_status,
        Permission.AGENTS_READ,
        response=InferenceStatus,
        summary="Inference backend status",
    ),
    _of_known_agent(
        stream_route(
            "/api/v1/ws/agents/{agent_id}/tool-calls",
            stream_agent_tool_calls,
            Permission.AGENTS_READ,
            query=ToolCallStreamQuery,
            summary="Agent tool call stream",
        )
    ),
]
