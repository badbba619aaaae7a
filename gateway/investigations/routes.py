"""Orchestrator routes: dispatch one agent method, and the dispatch history."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core.events import Event
from core.security.permissions import Permission
from gateway.http import json_response, parse_json, parse_query, principal
from gateway.investigations import service
from gateway.investigations.schemas import (
    DispatchPage,
    DispatchRead,
    DispatchRequest,
    HistoryQuery,
    InvestigateRequest,
    InvestigationAccepted,
    InvestigationPage,
    InvestigationQuery,
    InvestigationRead,
    InvestigationSummary,
)
from gateway.keys import BUS, DATABASE, HANDOFF, RUNNER
from gateway.routing import Access, Route
from gateway.streams import pump


async def dispatch(request: web.Request) -> web.Response:
    body = await parse_json(request, DispatchRequest)
    async with request.app[DATABASE].session() as db:
        record = await service.dispatch(
            db=db, client=request.app[HANDOFF], actor=principal(request).username, body=body
        )
    return json_response(DispatchRead.model_validate(record))


async def list_history(request: web.Request) -> web.Response:
    query = parse_query(request, HistoryQuery)
    async with request.app[DATABASE].session() as db:
        rows, total = await service.history(db=db, query=query)
    page = DispatchPage(
        items=[DispatchRead.model_validate(r) for r in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )
    return json_response(page)


async def investigate(request: web.Request) -> web.Response:
    body = await parse_json(request, InvestigateRequest)
    async with request.app[DATABASE].session() as db:
        investigation = await service.enqueue(db=db, actor=principal(request).username, body=body)
    request.app[RUNNER].wake()
    accepted = InvestigationAccepted(
        id=investigation.id, status=investigation.status, priority=investigation.priority
    )
    response = json_response(accepted, status=202)
    response.headers["Location"] = f"/api/v1/investigations/{investigation.id}"
    return response


async def list_investigations(request: web.Request) -> web.Response:
    query = parse_query(request, InvestigationQuery)
    async with request.app[DATABASE].session() as db:
        rows, total = await service.list_investigations(db=db, query=query)
    page = InvestigationPage(
        items=[InvestigationSummary.model_validate(r) for r in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )
    return json_response(page)


async def get_investigation(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        found = await service.get_investigation(
            db=db, investigation_id=request.match_info["investigation_id"]
        )
    return json_response(InvestigationRead.model_validate(found))


async def stream_receipts(request: web.Request) -> web.WebSocketResponse:
    """Receipts of finished investigations, live; ``?investigation_id=`` narrows it."""
    wanted = request.query.get("investigation_id")

    def matches(event: Event) -> bool:
        return wanted is None or event.payload.get("investigation_id") == wanted

    def render(event: Event) -> dict[str, Any]:
        return {"type": "receipt", "at": event.at, **event.payload}

    subscription = request.app[BUS].subscribe("investigations.receipt", maxsize=128, where=matches)
    return await pump(request, subscription, render)


async def stream_agent_thoughts(request: web.Request) -> web.WebSocketResponse:
    """The agents' ``agent.thought`` notifications, live; ``?investigation_id=`` and
    ``?agent=`` narrow the stream."""
    wanted = {
        key: request.query[key] for key in ("investigation_id", "agent") if key in request.query
    }

    def matches(event: Event) -> bool:
        return all(event.payload.get(key) == value for key, value in wanted.items())

    def render(event: Event) -> dict[str, Any]:
        return {"type": "thought", "at": event.at, **event.payload}

    subscription = request.app[BUS].subscribe("agents.thought", maxsize=512, where=matches)
    return await pump(request, subscription, render)


ROUTES = [
    Route("GET", "/api/v1/investigations", list_investigations, Permission.INVESTIGATIONS_READ),
    Route(
        "GET",
        "/api/v1/investigations/{investigation_id}",
        get_investigation,
        Permission.INVESTIGATIONS_READ,
    ),
    Route("POST", "/api/v1/agents/investigate", investigate, Permission.INVESTIGATIONS_WRITE),
    Route("WS", "/api/v1/ws/investigation-receipts", stream_receipts, Access.AUTHENTICATED),
    Route("POST", "/api/v1/orchestrator/dispatch", dispatch, Permission.INVESTIGATIONS_WRITE),
    Route("GET", "/api/v1/orchestrator/history", list_history, Permission.INVESTIGATIONS_READ),
    Route("WS", "/api/v1/ws/agent-thoughts", stream_agent_thoughts, Access.AUTHENTICATED),
]
