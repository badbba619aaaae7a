"""Cases routes: cases, their observables, comments and tasks."""

from __future__ import annotations

from aiohttp import web

from core.security.permissions import Permission
from gateway.cases import service
from gateway.cases.schemas import (
    CaseCreate,
    CaseDetail,
    CaseListQuery,
    CasePage,
    CaseRead,
    CaseUpdate,
    CommentCreate,
    CommentPage,
    CommentRead,
    LinkedAlert,
    ObservableCreate,
    ObservablePage,
    PageQuery,
    TaskCreate,
    TaskPage,
    TaskRead,
    TaskUpdate,
    TimelineEntry,
)
from gateway.http import json_response, no_content, parse_json, parse_query, principal
from gateway.keys import BUS, DATABASE
from gateway.routing import Route


def _publish(request: web.Request, topic: str, case: CaseRead) -> CaseRead:
    """Announce a committed change (its read model was built before the commit)."""
    request.app[BUS].publish(topic, case.model_dump(mode="json"))
    return case


async def list_cases(request: web.Request) -> web.Response:
    query = parse_query(request, CaseListQuery)
    async with request.app[DATABASE].session() as db:
        cases, total = await service.list_cases(db=db, query=query)
    page = CasePage(
        items=[CaseRead.model_validate(c) for c in cases],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )
    return json_response(page)


async def create_case(request: web.Request) -> web.Response:
    body = await parse_json(request, CaseCreate)
    async with request.app[DATABASE].session() as db:
        case = await service.create_case(db=db, actor=principal(request).username, body=body)
    return json_response(_publish(request, "cases.created", case), status=201)


async def get_case(request: web.Request) -> web.Response:
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
    body = await parse_json(request, CaseUpdate)
    async with request.app[DATABASE].session() as db:
        case = await service.update_case(
            db=db,
            actor=principal(request).username,
            case_id=request.match_info["case_id"],
            body=body,
        )
    return json_response(_publish(request, "cases.updated", case))


async def delete_case(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        case = await service.delete_case(
            db=db, actor=principal(request).username, case_id=request.match_info["case_id"]
        )
    _publish(request, "cases.updated", case)
    return no_content()


async def list_observables(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    case_id = request.match_info["case_id"]
    async with request.app[DATABASE].session() as db:
        observables, total = await service.list_observables(db=db, case_id=case_id, query=query)
        similar = await service.similar_cases(db=db, case_id=case_id, observables=observables)
    items = [service.observable_read(o, similar) for o in observables]
    return json_response(
        ObservablePage(items=items, total=total, limit=query.limit, offset=query.offset)
    )


async def add_observable(request: web.Request) -> web.Response:
    body = await parse_json(request, ObservableCreate)
    case_id = request.match_info["case_id"]
    async with request.app[DATABASE].session() as db:
        observable, merged = await service.add_observable(
            db=db, actor=principal(request).username, case_id=case_id, body=body
        )
    return json_response(observable, status=200 if merged else 201)


async def list_comments(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    async with request.app[DATABASE].session() as db:
        comments, total = await service.list_comments(
            db=db, case_id=request.match_info["case_id"], query=query
        )
    return json_response(
        CommentPage(
            items=[CommentRead.model_validate(c) for c in comments],
            total=total,
            limit=query.limit,
            offset=query.offset,
        )
    )


async def add_comment(request: web.Request) -> web.Response:
    body = await parse_json(request, CommentCreate)
    async with request.app[DATABASE].session() as db:
        comment = await service.add_comment(
            db=db,
            actor=principal(request).username,
            case_id=request.match_info["case_id"],
            body=body,
        )
    return json_response(comment, status=201)


async def list_tasks(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    async with request.app[DATABASE].session() as db:
        tasks, total = await service.list_tasks(
            db=db, case_id=request.match_info["case_id"], query=query
        )
    return json_response(
        TaskPage(
            items=[TaskRead.model_validate(t) for t in tasks],
            total=total,
            limit=query.limit,
            offset=query.offset,
        )
    )


async def create_task(request: web.Request) -> web.Response:
    body = await parse_json(request, TaskCreate)
    async with request.app[DATABASE].session() as db:
        task = await service.create_task(
            db=db,
            actor=principal(request).username,
            case_id=request.match_info["case_id"],
            body=body,
        )
    return json_response(task, status=201)


async def update_task(request: web.Request) -> web.Response:
    body = await parse_json(request, TaskUpdate)
    async with request.app[DATABASE].session() as db:
        task = await service.update_task(
            db=db,
            actor=principal(request).username,
            case_id=request.match_info["case_id"],
            task_id=request.match_info["task_id"],
            body=body,
        )
    return json_response(task)


R, W = Permission.CASES_READ, Permission.CASES_WRITE
ROUTES = [
    Route("GET", "/api/v1/cases", list_cases, R),
    Route("POST", "/api/v1/cases", create_case, W),
    Route("GET", "/api/v1/cases/{case_id}", get_case, R),
    Route("PATCH", "/api/v1/cases/{case_id}", update_case, W),
    Route("DELETE", "/api/v1/cases/{case_id}", delete_case, W),
    Route("GET", "/api/v1/cases/{case_id}/observables", list_observables, R),
    Route("POST", "/api/v1/cases/{case_id}/observables", add_observable, W),
    Route("GET", "/api/v1/cases/{case_id}/comments", list_comments, R),
    Route("POST", "/api/v1/cases/{case_id}/comments", add_comment, W),
    Route("GET", "/api/v1/cases/{case_id}/tasks", list_tasks, R),
    Route("POST", "/api/v1/cases/{case_id}/tasks", create_task, W),
    Route("PATCH", "/api/v1/cases/{case_id}/tasks/{task_id}", update_task, W),
]
