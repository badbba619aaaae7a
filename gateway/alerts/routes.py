"""Alerts routes and the live alert stream."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core.events import Event
from core.security.permissions import Permission
from gateway.alerts import service
from gateway.alerts.schemas import (
    AlertCaseLink,
    AlertCreate,
    AlertListQuery,
    AlertPage,
    AlertPromote,
    AlertRead,
    AlertUpdate,
)
from gateway.http import json_response, parse_json, parse_query, principal
from gateway.keys import BUS, DATABASE, RUNTIME
from gateway.routing import Access, Route
from gateway.streams import pump

STREAM_FILTERS = ("severity", "status", "source", "rule_id", "assignee")


def _publish(request: web.Request, topic: str, alert: AlertRead) -> AlertRead:
    """Announce a committed change (its read model was built before the commit)."""
    request.app[BUS].publish(topic, alert.model_dump(mode="json"))
    return alert


async def list_alerts(request: web.Request) -> web.Response:
    query = parse_query(request, AlertListQuery)
    async with request.app[DATABASE].session() as db:
        alerts, total = await service.list_alerts(db=db, query=query)
    page = AlertPage(
        items=[AlertRead.model_validate(a) for a in alerts],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )
    return json_response(page)


async def create_alert(request: web.Request) -> web.Response:
    body = await parse_json(request, AlertCreate)
    window = request.app[RUNTIME].config.alert_dedup_window_seconds
    async with request.app[DATABASE].session() as db:
        alert, merged = await service.create_alert(
            db=db, actor=principal(request).username, body=body, dedup_window_seconds=window
        )
    _publish(request, "alerts.updated" if merged else "alerts.created", alert)
    return json_response(alert, status=200 if merged else 201)


async def get_alert(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        alert = await service.get_alert(db=db, alert_id=request.match_info["alert_id"])
    return json_response(AlertRead.model_validate(alert))


async def update_alert(request: web.Request) -> web.Response:
    body = await parse_json(request, AlertUpdate)
    async with request.app[DATABASE].session() as db:
        alert = await service.update_alert(
            db=db,
            actor=principal(request).username,
            alert_id=request.match_info["alert_id"],
            body=body,
        )
    return json_response(_publish(request, "alerts.updated", alert))


async def acknowledge_alert(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        alert = await service.acknowledge_alert(
            db=db, actor=principal(request).username, alert_id=request.match_info["alert_id"]
        )
    return json_response(_publish(request, "alerts.updated", alert))


async def promote_alert(request: web.Request) -> web.Response:
    body = await parse_json(request, AlertPromote) if request.can_read_body else AlertPromote()
    async with request.app[DATABASE].session() as db:
        promoted = await service.promote_alert(
            db=db,
            actor=principal(request).username,
            alert_id=request.match_info["alert_id"],
            body=body,
        )
    _publish(request, "alerts.updated", promoted.alert)
    request.app[BUS].publish(
        "cases.created", {"id": promoted.case_id, "from_alert": promoted.alert.id}
    )
    return json_response(promoted, status=201)


async def link_alert_to_case(request: web.Request) -> web.Response:
    body = await parse_json(request, AlertCaseLink)
    async with request.app[DATABASE].session() as db:
        linked = await service.link_alert(
            db=db,
            actor=principal(request).username,
            alert_id=request.match_info["alert_id"],
            case_id=body.case_id,
        )
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

    def render(event: Event) -> dict[str, Any]:
        kind = "created" if event.topic == "alerts.created" else "updated"
        return {"type": kind, "at": event.at, "alert": event.payload}

    subscription = request.app[BUS].subscribe("alerts.*", maxsize=512, where=matches)
    return await pump(request, subscription, render)


ROUTES = [
    Route("GET", "/api/v1/alerts", list_alerts, Permission.ALERTS_READ),
    Route("POST", "/api/v1/alerts", create_alert, Permission.ALERTS_WRITE),
    Route("GET", "/api/v1/alerts/{alert_id}", get_alert, Permission.ALERTS_READ),
    Route("PATCH", "/api/v1/alerts/{alert_id}", update_alert, Permission.ALERTS_WRITE),
    Route(
        "POST",
        "/api/v1/alerts/{alert_id}/acknowledge",
        acknowledge_alert,
        Permission.ALERTS_WRITE,
    ),
    Route("POST", "/api/v1/alerts/{alert_id}/promote", promote_alert, Permission.ALERTS_WRITE),
    Route(
        "POST",
        "/api/v1/alerts/{alert_id}/case-link",
        link_alert_to_case,
        Permission.ALERTS_WRITE,
    ),
    Route(
        "WS",
        "/api/v1/ws/alerts",
        stream_alerts,
        Access.AUTHENTICATED,
        stream_permission=Permission.ALERTS_READ,
    ),
]
