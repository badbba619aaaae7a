"""Detection and hunt routes (thin: the work is in :mod:`gateway.detections.service`)."""

from __future__ import annotations

from aiohttp import web

from core.db.base import utcnow
from core.errors import NotFound
from core.security.permissions import Permission
from gateway.detections import service
from gateway.detections.schemas import (
    FeedbackCreate,
    FeedbackRead,
    HuntCreate,
    HuntRead,
    HuntRunRead,
    HuntRunRequest,
    HuntUpdate,
    Page,
    PageQuery,
    PromoteRequest,
    RuleCreate,
    RuleQuery,
    RuleRead,
    RuleUpdate,
    RunRead,
    RunRequest,
    SuppressionCreate,
    SuppressionRead,
)
from gateway.http import json_response, parse_json, parse_query, principal
from gateway.keys import DATABASE, LOGSTORE, RUNTIME, SIGMA
from gateway.routing import Route


def _rule_id(request: web.Request) -> str:
    return request.match_info["rule_id"]


async def list_rules(request: web.Request) -> web.Response:
    query = parse_query(request, RuleQuery)
    async with request.app[DATABASE].session() as db:
        rows, total = await service.list_rules(db=db, query=query)
    items = [RuleRead.model_validate(r) for r in rows]
    return json_response(
        Page[RuleRead](items=items, total=total, limit=query.limit, offset=query.offset)
    )


async def create_rule(request: web.Request) -> web.Response:
    body = await parse_json(request, RuleCreate)
    async with request.app[DATABASE].session() as db:
        rule = await service.create_rule(
            db=db, converter=request.app[SIGMA], actor=principal(request).username, body=body
        )
        return json_response(RuleRead.model_validate(rule), status=201)


async def update_rule(request: web.Request) -> web.Response:
    body = await parse_json(request, RuleUpdate)
    async with request.app[DATABASE].session() as db:
        rule = await service.update_rule(
            db=db, converter=request.app[SIGMA], rule_id=_rule_id(request), body=body
        )
        return json_response(RuleRead.model_validate(rule))


async def run_rule(request: web.Request) -> web.Response:
    body = await parse_json(request, RunRequest)
    run = await service.run_rule(
        database=request.app[DATABASE],
        store=request.app[LOGSTORE],
        rule_id=_rule_id(request),
        start=body.start,
        end=body.end,
        kind=body.mode,
        actor=principal(request).username,
        dedup_window_seconds=request.app[RUNTIME].config.alert_dedup_window_seconds,
    )
    return json_response(RunRead.model_validate(run))


async def list_runs(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    async with request.app[DATABASE].session() as db:
        rows, total = await service.list_runs(
            db=db, rule_id=_rule_id(request), limit=query.limit, offset=query.offset
        )
    items = [RunRead.model_validate(r) for r in rows]
    return json_response(
        Page[RunRead](items=items, total=total, limit=query.limit, offset=query.offset)
    )


async def list_suppressions(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    now = utcnow()
    async with request.app[DATABASE].session() as db:
        rows, total = await service.list_suppressions(
            db=db, rule_id=_rule_id(request), limit=query.limit, offset=query.offset
        )
    items = [
        SuppressionRead.model_validate(r).model_copy(update={"active": r.expires_at > now})
        for r in rows
    ]
    return json_response(
        Page[SuppressionRead](items=items, total=total, limit=query.limit, offset=query.offset)
    )


async def create_suppression(request: web.Request) -> web.Response:
    body = await parse_json(request, SuppressionCreate)
    async with request.app[DATABASE].session() as db:
        row = await service.create_suppression(
            db=db, rule_id=_rule_id(request), actor=principal(request).username, body=body
        )
        read = SuppressionRead.model_validate(row).model_copy(update={"active": True})
    return json_response(read, status=201)


async def list_feedback(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    async with request.app[DATABASE].session() as db:
        rows, total = await service.list_feedback(
            db=db, rule_id=_rule_id(request), limit=query.limit, offset=query.offset
        )
    items = [FeedbackRead.model_validate(r) for r in rows]
    return json_response(
        Page[FeedbackRead](items=items, total=total, limit=query.limit, offset=query.offset)
    )


async def create_feedback(request: web.Request) -> web.Response:
    body = await parse_json(request, FeedbackCreate)
    async with request.app[DATABASE].session() as db:
        row = await service.create_feedback(
            db=db, rule_id=_rule_id(request), actor=principal(request).username, body=body
        )
        return json_response(FeedbackRead.model_validate(row), status=201)


async def get_metrics(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        return json_response(await service.metrics(db=db))


async def list_hunts(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    async with request.app[DATABASE].session() as db:
        rows, total = await service.list_hunts(db=db, limit=query.limit, offset=query.offset)
        latest = await service.last_hunt_runs(db, [h.id for h in rows])
    items = [
        HuntRead.model_validate(h).model_copy(update={"last_run": latest.get(h.id)}) for h in rows
    ]
    return json_response(
        Page[HuntRead](items=items, total=total, limit=query.limit, offset=query.offset)
    )


async def create_hunt(request: web.Request) -> web.Response:
    body = await parse_json(request, HuntCreate)
    async with request.app[DATABASE].session() as db:
        hunt = await service.create_hunt(
            db=db, converter=request.app[SIGMA], actor=principal(request).username, body=body
        )
        return json_response(HuntRead.model_validate(hunt), status=201)


async def update_hunt(request: web.Request) -> web.Response:
    body = await parse_json(request, HuntUpdate)
    async with request.app[DATABASE].session() as db:
        hunt = await service.update_hunt(
            db=db,
            converter=request.app[SIGMA],
            hunt_id=request.match_info["hunt_id"],
            body=body,
        )
        return json_response(HuntRead.model_validate(hunt))


async def run_hunt(request: web.Request) -> web.Response:
    body = await parse_json(request, HuntRunRequest)
    run = await service.run_hunt(
        database=request.app[DATABASE],
        store=request.app[LOGSTORE],
        hunt_id=request.match_info["hunt_id"],
        start=body.start,
        end=body.end,
        actor=principal(request).username,
    )
    return json_response(HuntRunRead.model_validate(run))


async def promote_log(request: web.Request) -> web.Response:
    """Draft a Sigma rule from chosen fields of one event, validate it, save it disabled."""
    body = await parse_json(request, PromoteRequest)
    log_id = request.match_info["log_id"]
    event = await request.app[LOGSTORE].get(log_id)
    if event is None:
        raise NotFound({"log_id": log_id})
    sigma = service.draft_rule(event, body)
    async with request.app[DATABASE].session() as db:
        rule = await service.create_rule(
            db=db,
            converter=request.app[SIGMA],
            actor=principal(request).username,
            body=RuleCreate(sigma=sigma, enabled=False),
        )
        return json_response(RuleRead.model_validate(rule), status=201)


R = "/api/v1/detections/rules/{rule_id}"
ROUTES = [
    Route("GET", "/api/v1/detections/rules", list_rules, Permission.SIEM_READ),
    Route("POST", "/api/v1/detections/rules", create_rule, Permission.SIEM_WRITE),
    Route("PATCH", R, update_rule, Permission.SIEM_WRITE),
    Route("POST", f"{R}/run", run_rule, Permission.SIEM_WRITE),
    Route("GET", f"{R}/runs", list_runs, Permission.SIEM_READ),
    Route("GET", "/api/v1/detections/metrics", get_metrics, Permission.SIEM_READ),
    Route("GET", f"{R}/suppressions", list_suppressions, Permission.SIEM_READ),
    Route("POST", f"{R}/suppressions", create_suppression, Permission.SIEM_WRITE),
    Route("GET", f"{R}/feedback", list_feedback, Permission.SIEM_READ),
    Route("POST", f"{R}/feedback", create_feedback, Permission.SIEM_WRITE),
]
HUNT_ROUTES = [
    Route("GET", "/api/v1/siem/hunts", list_hunts, Permission.SIEM_READ),
    Route("POST", "/api/v1/siem/hunts", create_hunt, Permission.SIEM_WRITE),
    Route("PATCH", "/api/v1/siem/hunts/{hunt_id}", update_hunt, Permission.SIEM_WRITE),
    Route("POST", "/api/v1/siem/hunts/{hunt_id}/run", run_hunt, Permission.SIEM_WRITE),
    Route("POST", "/api/v1/siem/logs/{log_id}/promote", promote_log, Permission.SIEM_WRITE),
]
