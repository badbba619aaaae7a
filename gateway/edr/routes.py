"""EDR routes: the endpoint inventory, its detail, containment actions and statistics."""

from __future__ import annotations

from aiohttp import web

from core.errors import Conflict, GuardrailDenied, NotFound, RateLimited, ServiceUnavailable
from core.security.permissions import Permission
from gateway.edr import service
from gateway.edr.schemas import (
    ActionState,
    EdrActionRequest,
    EdrActionResult,
    EdrStats,
    EndpointDetail,
    EndpointListQuery,
    EndpointRead,
)
from gateway.http import json_response, parse_json, principal
from gateway.kernel import list_route
from gateway.keys import DATABASE, EDR
from gateway.routing import Handler, Route
from tools.edr.base import EdrAction

ACCEPTED = frozenset({ActionState.RECORDED, ActionState.PROPOSED, ActionState.AWAITING_APPROVAL})
"""Statuses answered 202: decided, not carried out (yet)."""


async def get_endpoint(request: web.Request) -> web.Response:
    """Endpoint detail: state, last seen, recent alerts, cases and actions."""
    async with request.app[DATABASE].session() as db:
        detail = await service.endpoint_detail(db=db, endpoint_id=request.match_info["endpoint_id"])
    return json_response(detail)


def _acting(action: EdrAction) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        body = (
            await parse_json(request, EdrActionRequest)
            if request.can_read_body
            else EdrActionRequest()
        )
        outcome = await request.app[EDR].request_action(
            action=action,
            endpoint_id=request.match_info["endpoint_id"],
            actor=principal(request).username,
            reason=body.reason,
            comment=body.comment,
            idempotency_key=body.idempotency_key,
        )
        result = EdrActionResult(
            action=outcome.action, endpoint=outcome.endpoint, replayed=outcome.replayed
        )
        status = 202 if outcome.action.status in ACCEPTED else 200
        return json_response(result, status=status)

    handler.__name__ = handler.__qualname__ = f"{action.value}_endpoint"
    return handler


async def edr_stats(request: web.Request) -> web.Response:
    """Endpoints by state, actions by status and connector."""
    return json_response(await request.app[EDR].stats())


ENDPOINT = "/api/v1/edr/endpoints/{endpoint_id}"
R, W = Permission.EDR_READ, Permission.EDR_WRITE
ACTION_ERRORS = (NotFound, GuardrailDenied, Conflict, RateLimited, ServiceUnavailable)
SUMMARIES = {
    EdrAction.ISOLATE: "Isolate endpoint",
    EdrAction.UNISOLATE: "Release endpoint",
    EdrAction.SCAN: "Scan endpoint",
}
ROUTES = [
    list_route(
        "/api/v1/edr/endpoints",
        service.list_endpoints,
        EndpointRead,
        R,
        query=EndpointListQuery,
        summary="List endpoints",
    ),
    Route("GET", ENDPOINT, get_endpoint, R, response=EndpointDetail, errors=(NotFound,)),
    *(
        Route(
            "POST",
            f"{ENDPOINT}/{action.value}",
            _acting(action),
            W,
            body=EdrActionRequest,
            response=EdrActionResult,
            status=200,
            also=(202,),  # recorded (dry_run), proposed (monitor), awaiting approval
            errors=ACTION_ERRORS,
            summary=SUMMARIES[action],
        )
        for action in EdrAction
    ),
    Route("GET", "/api/v1/edr/stats", edr_stats, R, response=EdrStats, summary="EDR statistics"),
]
