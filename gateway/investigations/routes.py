"""Orchestrator routes: dispatch one agent method, and the dispatch history."""

from __future__ import annotations

from aiohttp import web

from core.security.permissions import Permission
from gateway.http import json_response, parse_json, parse_query, principal
from gateway.investigations import service
from gateway.investigations.schemas import (
    DispatchPage,
    DispatchRead,
    DispatchRequest,
    HistoryQuery,
)
from gateway.keys import DATABASE, HANDOFF
from gateway.routing import Route


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


ROUTES = [
    Route("POST", "/api/v1/orchestrator/dispatch", dispatch, Permission.INVESTIGATIONS_WRITE),
    Route("GET", "/api/v1/orchestrator/history", list_history, Permission.INVESTIGATIONS_READ),
]
