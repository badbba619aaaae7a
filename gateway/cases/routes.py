"""Cases routes: cases, their observables, comments and tasks."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from core.errors import CaseNotFound, Conflict, NotFound
from core.security.permissions import Permission
from gateway.cases import service
from gateway.cases.schemas import (
    CaseCreate,
    CaseDetail,
    CaseItemsQuery,
    CaseListQuery,
    CaseRead,
    CaseUpdate,
    CommentCreate,
    CommentRead,
    LinkedAlert,
    ObservableCreate,
    ObservableRead,
    TaskCreate,
    TaskRead,
    TaskUpdate,
    TimelineEntry,
)
from gateway.http import json_response, no_content, parse_json
from gateway.kernel import Fetch, as_caller, list_route
from gateway.keys import BUS, DATABASE
from gateway.routing import Handler, Route


def _publish(request: web.Request, topic: str, case: CaseRead) -> CaseRead:
    """Announce a committed change (its read model was built before the commit)."""
    request.app[BUS].publish(topic, case.model_dump(mode="json"))
    return case


async def create_case(request: web.Request) -> web.Response:
    """Open a case."""
    case = await as_caller(request, service.create_case, body=await parse_json(request, CaseCreate))
    return json_response(_publish(request, "cases.created", case), status=201)


async def get_case(request: web.Request) -> web.Response:
    """One case with its newest timeline entries and its alerts."""
    case_id = request.match_info["case_id"]
    async with request.app[DATABASE].session() as db:
        case = await service.get_case(db=db, case_id=case_id)
        events = await service.timeline(db=db, case_id=case_id)
        alerts = await service.linked_alerts(db=db, case_id=case_id)
    detail = CaseDetail.model_validate(
        {
            **CaseRead.model_validate(case).model_dump(),
            "timeline": [TimelineEntry.model_validate(e) for e in events],
            "alerts": [LinkedAlert.model_validate(a) for a in alerts],
        }
    )
    return json_response(detail)


async def update_case(request: web.Request) -> web.Response:
    """Change a case: its status along the workflow, severity, markings, assignee, tags."""
    case = await as_caller(request, service.update_case, body=await parse_json(request, CaseUpdate))
    return json_response(_publish(request, "cases.updated", case))


async def delete_case(request: web.Request) -> web.Response:
    """Delete a case (it stays stored, out of every read)."""
    _publish(request, "cases.updated", await as_caller(request, service.delete_case))
    return no_content()


async def add_observable(request: web.Request) -> web.Response:
    """Add an observable (201), or merge a repeat into the one the case holds (200)."""
    body = await parse_json(request, ObservableCreate)
    observable, merged = await as_caller(request, service.add_observable, body=body)
    return json_response(observable, status=200 if merged else 201)


async def add_comment(request: web.Request) -> web.Response:
    """Comment on a case."""
    body = await parse_json(request, CommentCreate)
    return json_response(await as_caller(request, service.add_comment, body=body), status=201)


async def create_task(request: web.Request) -> web.Response:
    """Add a task to a case."""
    body = await parse_json(request, TaskCreate)
    return json_response(await as_caller(request, service.create_task, body=body), status=201)


async def update_task(request: web.Request) -> web.Response:
    """Change a task of a case."""
    body = await parse_json(request, TaskUpdate)
    return json_response(await as_caller(request, service.update_task, body=body))


CASE = "/api/v1/cases/{case_id}"
R, W = Permission.CASES_READ, Permission.CASES_WRITE
GONE = (CaseNotFound,)
"""What every route under one case can answer: the case is unknown or deleted."""


def _items(path: str, fetch: Fetch, item: type[BaseModel]) -> Route:
    """A page of one kind of a case's items (observables, comments, tasks), oldest first."""
    summary = f"List a case's {path.strip('/')}, oldest first"
    return list_route(
        CASE + path, fetch, item, R, query=CaseItemsQuery, errors=GONE, summary=summary
    )


def _adds(
    path: str,
    handler: Handler,
    body: type[BaseModel],
    item: type[BaseModel],
    also: tuple[int, ...] = (),
) -> Route:
    """Adding one item of that kind to a case (201; ``also``: other success statuses)."""
    return Route(
        "POST",
        CASE + path,
        handler,
        W,
        body=body,
        response=item,
        status=201,
        also=also,
        errors=(*GONE, Conflict),
    )


ROUTES = [
    list_route(
        "/api/v1/cases",
        service.list_cases,
        CaseRead,
        R,
        query=CaseListQuery,
        summary="List live cases, filtered and sorted",
    ),
    Route("POST", "/api/v1/cases", create_case, W, body=CaseCreate, response=CaseRead, status=201),
    Route("GET", CASE, get_case, R, response=CaseDetail, errors=GONE),
    Route(
        "PATCH", CASE, update_case, W, body=CaseUpdate, response=CaseRead, errors=(*GONE, Conflict)
    ),
    Route("DELETE", CASE, delete_case, W, status=204, errors=(*GONE, Conflict)),
    _items("/observables", service.list_observable_reads, ObservableRead),
    # 200: the observable was already on the case, and the two were merged.
    _adds("/observables", add_observable, ObservableCreate, ObservableRead, also=(200,)),
    _items("/comments", service.list_comments, CommentRead),
    _adds("/comments", add_comment, CommentCreate, CommentRead),
    _items("/tasks", service.list_tasks, TaskRead),
    _adds("/tasks", create_task, TaskCreate, TaskRead),
    Route(
        "PATCH",
        CASE + "/tasks/{task_id}",
        update_task,
        W,
        body=TaskUpdate,
        response=TaskRead,
        errors=(*GONE, NotFound, Conflict),
    ),
]
