"""Alerts routes and the live alert stream."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core.errors import AlertNotFound, CaseNotFound, Conflict, DuplicateAlert, ValidationFailed
from core.events import Event
from core.security.permissions import Permission
from gateway.alerts import service
from gateway.alerts.schemas import (
    AlertCaseLink,
    AlertCreate,
    AlertListQuery,
    AlertPromote,
    AlertPromoted,
    AlertRead,
    AlertUpdate,
)
from gateway.http import json_response, parse_json
from gateway.kernel import as_caller, list_route
from gateway.keys import BUS, DATABASE, RUNTIME
from gateway.routing import Access, Route
from gateway.streams import pump

STREAM_FILTERS = ("severity", "status", "source", "rule_id", "assignee")


def _publish(request: web.Request, topic: str, alert: AlertRead) -> AlertRead:
    """Announce a committed change (its read model was built before the commit)."""
    request.app[BUS].publish(topic, alert.model_dump(mode="json"))
    return alert


async def create_alert(request: web.Request) -> web.Response:
    """Create an alert (201), or merge a duplicate into the open one (200, ``on_duplicate``)."""
    body = await parse_json(request, AlertCreate)
    window = request.app[RUNTIME].config.alert_dedup_window_seconds
    alert, merged = await as_caller(
        request, service.create_alert, body=body, dedup_window_seconds=window
    )
    _publish(request, "alerts.updated" if merged else "alerts.created", alert)
    return json_response(alert, status=200 if merged else 201)


async def get_alert(request: web.Request) -> web.Response:
    """One alert."""
    async with request.app[DATABASE].session() as db:
        alert = await service.get_alert(db=db, alert_id=request.match_info["alert_id"])
    return json_response(AlertRead.model_validate(alert))


async def update_alert(request: web.Request) -> web.Response:
    """Change an alert: its status along the triage workflow, severity, assignee, tags."""
    body = await parse_json(request, AlertUpdate)
    alert = await as_caller(request, service.update_alert, body=body)
    return json_response(_publish(request, "alerts.updated", alert))


async def acknowledge_alert(request: web.Request) -> web.Response:
    """Record who acknowledged the alert and when (again: unchanged)."""
    alert = await as_caller(request, service.acknowledge_alert)
    return json_response(_publish(request, "alerts.updated", alert))


async def promote_alert(request: web.Request) -> web.Response:
    """Open a case from the alert, its entities as observables (the body is optional)."""
    body = await parse_json(request, AlertPromote) if request.can_read_body else AlertPromote()
    promoted = await as_caller(request, service.promote_alert, body=body)
    _publish(request, "alerts.updated", promoted.alert)
    request.app[BUS].publish(
        "cases.created", {"id": promoted.case_id, "from_alert": promoted.alert.id}
    )
    return json_response(promoted, status=201)


async def link_alert_to_case(request: web.Request) -> web.Response:
    """Attach the alert and its entities to an existing case."""
    body = await parse_json(request, AlertCaseLink)
    linked = await as_caller(request, service.link_alert, case_id=body.case_id)
    _publish(request, "alerts.updated", linked.alert)
    request.app[BUS].publish(
        "cases.updated", {"id": linked.case_id, "linked_alert": linked.alert.id}
    )
    return json_response(linked)


async def stream_alerts(request: web.Request) -> web.WebSocketResponse:
    """New and changed alerts, live; ``?severity=high&source=suricata`` narrows the stream."""
    wanted = {key: request.query[key] for key in STREAM_FILTERS if key in request.query}

    def matches(event: Event) -> bool:
        return all(event.payload.get(key) == value for key, value in wanted.items())

    subscription = request.app[BUS].subscribe("alerts.*", maxsize=512, where=matches)
    return await pump(request, subscription, _render_alert)


def _render_alert(event: Event) -> dict[str, Any]:
    """An alert event as the stream sends it (one function for every subscriber: its text is
    made once)."""
    kind = "created" if event.topic == "alerts.created" else "updated"
    return {"type": kind, "at": event.at, "alert": event.payload}


ALERT = "/api/v1/alerts/{alert_id}"
R, W = Permission.ALERTS_READ, Permission.ALERTS_WRITE
ROUTES = [
    list_route(
        "/api/v1/alerts",
        service.list_alerts,
        AlertRead,
        R,
        query=AlertListQuery,
        summary="List alerts, filtered and sorted",
    ),
    Route(
        "POST",
        "/api/v1/alerts",
        create_alert,
        W,
        body=AlertCreate,
        response=AlertRead,
        status=201,
        also=(200,),  # a duplicate merged into the alert it repeats (on_duplicate=merge)
        errors=(DuplicateAlert,),
    ),
    Route("GET", ALERT, get_alert, R, response=AlertRead, errors=(AlertNotFound,)),
    Route(
        "PATCH",
        ALERT,
        update_alert,
        W,
        body=AlertUpdate,
        response=AlertRead,
        errors=(AlertNotFound, Conflict),
    ),
    Route(
        "POST",
        ALERT + "/acknowledge",
        acknowledge_alert,
        W,
        response=AlertRead,
        errors=(AlertNotFound, Conflict, ValidationFailed),
    ),
    Route(
        "POST",
        ALERT + "/promote",
        promote_alert,
        W,
        body=AlertPromote,
        response=AlertPromoted,
        status=201,
        errors=(AlertNotFound, Conflict),
    ),
    Route(
        "POST",
        ALERT + "/case-link",
        link_alert_to_case,
        W,
        body=AlertCaseLink,
        response=AlertPromoted,
        errors=(AlertNotFound, CaseNotFound, Conflict),
    ),
    Route(
        "WS",
        "/api/v1/ws/alerts",
        stream_alerts,
        Access.AUTHENTICATED,
        stream_permission=R,
    ),
]
