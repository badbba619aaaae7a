"""System routes: runtime settings and the Prometheus exposition."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from core.errors import Conflict
from core.security.permissions import Permission
from gateway.http import json_response, parse_json, principal
from gateway.kernel import as_caller
from gateway.keys import BUS, DATABASE, METRICS, RUNTIME
from gateway.routing import Access, Route
from gateway.system import service
from gateway.system.schemas import RuntimeConfigUpdate, RuntimeSettingsRead


async def get_runtime_settings(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        read = await service.settings_read(db=db, state=request.app[RUNTIME])
    return json_response(read)


async def update_runtime_settings(request: web.Request) -> web.Response:
    body = await parse_json(request, RuntimeConfigUpdate)
    update = await as_caller(
        request, service.update_runtime, changes=body.model_dump(exclude_none=True)
    )
    request.app[RUNTIME].apply(update.state)
    if update.changes is not None:
        by = principal(request).username
        request.app[BUS].publish("system.settings.changed", {"by": by, "changes": update.changes})
    return json_response(update.read)


async def get_metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


ROUTES = [
    Route(
        "GET",
        "/api/v1/settings/runtime",
        get_runtime_settings,
        Permission.SYSTEM_READ,
        response=RuntimeSettingsRead,
        summary="Runtime configuration",
    ),
    Route(
        "PATCH",
        "/api/v1/settings/runtime",
        update_runtime_settings,
        Permission.SYSTEM_WRITE,
        body=RuntimeConfigUpdate,
        response=RuntimeSettingsRead,
        errors=(Conflict,),
        summary="Update runtime config",
    ),
    Route(
        "GET",
        "/metrics",
        get_metrics,
        Access.AUTHENTICATED,
        response=str,
        response_media=CONTENT_TYPE_LATEST,
        summary="Prometheus metrics",
    ),
]
