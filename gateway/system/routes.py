"""System routes: runtime settings and the Prometheus exposition."""

from __future__ import annotations

from aiohttp import web

from core.security.permissions import Permission
from gateway.http import json_response, parse_json, principal
from gateway.keys import BUS, DATABASE, METRICS, RUNTIME
from gateway.routing import Access, Route
from gateway.system import service
from gateway.system.schemas import (
    RuntimeConfigUpdate,
    RuntimeSettingChangeRead,
    RuntimeSettingsRead,
)


async def _read(request: web.Request) -> RuntimeSettingsRead:
    state = request.app[RUNTIME]
    async with request.app[DATABASE].session() as db:
        history = await service.list_changes(db=db)
    return RuntimeSettingsRead(
        settings=state.config,
        updated_at=state.updated_at,
        updated_by=state.updated_by,
        history=[RuntimeSettingChangeRead.model_validate(change) for change in history],
    )


async def get_runtime_settings(request: web.Request) -> web.Response:
    return json_response(await _read(request))


async def update_runtime_settings(request: web.Request) -> web.Response:
    body = await parse_json(request, RuntimeConfigUpdate)
    actor = principal(request).username
    async with request.app[DATABASE].session() as db:
        state, change = await service.update_runtime(
            db=db, actor=actor, changes=body.model_dump(exclude_none=True)
        )
    request.app[RUNTIME].apply(state)
    if change is not None:
        request.app[BUS].publish(
            "system.settings.changed", {"by": actor, "changes": change.changes}
        )
    return json_response(await _read(request))


async def get_metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


ROUTES = [
    Route("GET", "/api/v1/settings/runtime", get_runtime_settings, Permission.SYSTEM_READ),
    Route("PATCH", "/api/v1/settings/runtime", update_runtime_settings, Permission.SYSTEM_WRITE),
    Route("GET", "/metrics", get_metrics, Access.AUTHENTICATED),
]
