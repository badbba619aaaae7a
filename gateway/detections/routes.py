"""Detection routes: rules, their runs, suppressions and feedback, metrics (thin: the work is
in :mod:`gateway.detections.rules`, ``runs``, ``suppressions`` and ``metrics``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from core.errors import Conflict, NotFound
from core.security.permissions import Permission
from gateway.detections import rules, runs, suppressions
from gateway.detections.conversion import CONVERSION_ERRORS
from gateway.detections.metrics import metrics
from gateway.detections.schemas import (
    DetectionMetrics,
    FeedbackCreate,
    FeedbackRead,
    RuleCreate,
    RuleQuery,
    RuleRead,
    RuleUpdate,
    RunRead,
    RunRequest,
    SuppressionCreate,
    SuppressionRead,
)
from gateway.http import json_response, parse_json, principal
from gateway.kernel import list_route
from gateway.keys import BUS, DATABASE, LOGSTORE, RUNTIME, SIGMA
from gateway.routing import Route


async def create_rule(request: web.Request) -> web.Response:
    body = await parse_json(request, RuleCreate)
    async with request.app[DATABASE].session() as db:
        rule = await rules.create_rule(
            db=db, converter=request.app[SIGMA], actor=principal(request).username, body=body
        )
        return json_response(RuleRead.model_validate(rule), status=201)


async def update_rule(request: web.Request) -> web.Response:
    body = await parse_json(request, RuleUpdate)
    async with request.app[DATABASE].session() as db:
        rule = await rules.update_rule(
            db=db, converter=request.app[SIGMA], rule_id=request.match_info["rule_id"], body=body
        )
        return json_response(RuleRead.model_validate(rule))


async def run_rule(request: web.Request) -> web.Response:
    body = await parse_json(request, RunRequest)
    run = await runs.run_rule(
        database=request.app[DATABASE],
        store=request.app[LOGSTORE],
        rule_id=request.match_info["rule_id"],
        start=body.start,
        end=body.end,
        kind=body.mode,
        actor=principal(request).username,
        dedup_window_seconds=request.app[RUNTIME].config.alert_dedup_window_seconds,
        publish=request.app[BUS].publish,
    )
    return json_response(RunRead.model_validate(run))


async def get_metrics(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        return json_response(await metrics(db=db))


def _rule_child(
    path: str,
    body: type[BaseModel],
    create: Callable[..., Awaitable[Any]],
    read: type[BaseModel],
    summary: str,
) -> Route:
    """``POST path``: add a row under the rule (``create(db=, rule_id=, actor=, body=)``),
    answered as ``read`` with 201; AURORA-4040 without the rule."""

    async def handler(request: web.Request) -> web.Response:
        parsed = await parse_json(request, body)
        async with request.app[DATABASE].session() as db:
            row = await create(
                db=db,
                rule_id=request.match_info["rule_id"],
                actor=principal(request).username,
                body=parsed,
            )
            return json_response(read.model_validate(row), status=201)

    handler.__name__ = handler.__qualname__ = create.__name__
    return Route(
        "POST",
        path,
        handler,
        Permission.SIEM_WRITE,
        body=body,
        response=read,
        status=201,
        errors=(NotFound,),
        summary=summary,
    )


R, W = Permission.SIEM_READ, Permission.SIEM_WRITE
RULES = "/api/v1/detections/rules"
RULE = f"{RULES}/{{rule_id}}"
ROUTES = [
    list_route(
        RULES, rules.list_rules, RuleRead, R, query=RuleQuery, summary="List detection rules"
    ),
    Route(
        "POST",
        RULES,
        create_rule,
        W,
        body=RuleCreate,
        response=RuleRead,
        status=201,
        errors=CONVERSION_ERRORS,
        summary="Create detection rule",
    ),
    Route(
        "PATCH",
        RULE,
        update_rule,
        W,
        body=RuleUpdate,
        response=RuleRead,
        errors=(NotFound, Conflict, *CONVERSION_ERRORS),
        summary="Update detection rule",
    ),
    Route(
        "POST",
        f"{RULE}/run",
        run_rule,
        W,
        body=RunRequest,
        response=RunRead,
        errors=(NotFound,),
        summary="Run detection rule",
    ),
    list_route(
        f"{RULE}/runs", runs.list_runs, RunRead, R, errors=(NotFound,), summary="List rule runs"
    ),
    Route(
        "GET",
        "/api/v1/detections/metrics",
        get_metrics,
        R,
        response=DetectionMetrics,
        summary="Detection metrics",
    ),
    list_route(
        f"{RULE}/suppressions",
        suppressions.list_suppressions,
        SuppressionRead,
        R,
        errors=(NotFound,),
        summary="List suppressions",
    ),
    _rule_child(
        f"{RULE}/suppressions",
        SuppressionCreate,
        suppressions.create_suppression,
        SuppressionRead,
        "Create suppression",
    ),
    list_route(
        f"{RULE}/feedback",
        suppressions.list_feedback,
        FeedbackRead,
        R,
        errors=(NotFound,),
        summary="List feedback",
    ),
    _rule_child(
        f"{RULE}/feedback",
        FeedbackCreate,
        suppressions.create_feedback,
        FeedbackRead,
        "Submit feedback",
    ),
]
