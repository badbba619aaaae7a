"""SIEM routes: ingest, search, sources, statistics, hunts, and promoting an event to a
detection rule (thin: the work is in the log store, :mod:`gateway.siem.service` and
:mod:`gateway.detections.api`)."""

from __future__ import annotations

import time

from aiohttp import web

from core.errors import ClickHouseUnavailable, Conflict, NotFound
from core.logstore.store import SearchRequest
from core.security.permissions import Permission
from core.validation import field_error
from gateway.detections.api import CONVERSION_ERRORS, PromoteRequest, RuleRead, promote_event
from gateway.http import iter_body, json_response, parse_json, parse_query, principal
from gateway.kernel import list_route
from gateway.keys import DATABASE, INGEST, LOGSTORE, SETTINGS, SIGMA
from gateway.routing import Route
from gateway.siem import service
from gateway.siem.parsing import BodyInfo, ingest_answer, ingest_body, spool_dir
from gateway.siem.schemas import (
    HuntCreate,
    HuntRead,
    HuntRunRead,
    HuntRunRequest,
    HuntUpdate,
    IngestQuery,
    IngestResult,
    SearchQuery,
    SearchResult,
    SourcesResult,
    StatsQuery,
    StatsResult,
    window,
)

INGEST_MAX_BYTES = 64 * 1024 * 1024
INGEST_MEDIA = "application/x-ndjson"
"""The ingest body the contract names: NDJSON. The route reads JSON (one event or an array),
syslog / CEF text lines and ``.evtx`` files as well, told apart by their content."""


async def ingest(request: web.Request) -> web.Response:
    """One event, a JSON array, NDJSON, syslog / CEF text lines, or an ``.evtx`` file, read as
    it arrives (see :func:`gateway.siem.parsing.ingest_body`). Good events are stored (durably,
    before the answer) even when other lines are rejected; a body with nothing valid is
    AURORA-4220 with the reason of each line; a body past the limit stores nothing."""
    query = parse_query(request, IngestQuery)
    started = time.perf_counter()
    stored = await ingest_body(
        iter_body(request),
        parser=request.app[INGEST],
        store=request.app[LOGSTORE],
        spool=spool_dir(request.app[SETTINGS].data_dir),
        info=BodyInfo(
            content_type=request.headers.get("Content-Type"),
            source=query.source,
            format=query.format,
            filename=request.headers.get("X-Filename"),
        ),
    )
    result = ingest_answer(stored, started=started)
    return json_response(result)


async def search(request: web.Request) -> web.Response:
    """A page of events matching the search, newest first by default; ``next_cursor`` goes
    on from its last event."""
    query = parse_query(request, SearchQuery)
    filters = {
        name: value
        for name, value in (
            ("source", query.source),
            ("format", query.format),
            ("host.name", query.host),
        )
        if value is not None
    }
    page = await request.app[LOGSTORE].search(
        SearchRequest(
            start=query.start,
            end=query.end,
            query=query.q,
            filters=filters,
            order="asc" if query.sort == "timestamp" else "desc",
            limit=query.limit,
            cursor=query.cursor,
        )
    )
    return json_response(
        SearchResult(items=page.items, next_cursor=page.next_cursor, took_ms=page.took_ms)
    )


async def sources(request: web.Request) -> web.Response:
    return json_response(
        SourcesResult.model_validate({"items": await request.app[LOGSTORE].sources()})
    )


async def stats(request: web.Request) -> web.Response:
    query = parse_query(request, StatsQuery)
    start, end = window(query.start, query.end)
    if end <= start:
        raise field_error(["query", "end"], "end must be after start")
    found = await request.app[LOGSTORE].stats(start=start, end=end)
    return json_response(StatsResult.model_validate(found))


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
    async with request.app[DATABASE].session() as db:
        rule = await promote_event(
            db=db,
            converter=request.app[SIGMA],
            actor=principal(request).username,
            event=event,
            body=body,
        )
        return json_response(RuleRead.model_validate(rule), status=201)


R, W = Permission.SIEM_READ, Permission.SIEM_WRITE
HUNTS = "/api/v1/siem/hunts"
HUNT = f"{HUNTS}/{{hunt_id}}"
ROUTES = [
    Route(
        "GET",
        "/api/v1/siem/logs",
        search,
        R,
        query=SearchQuery,
        response=SearchResult,
        errors=(ClickHouseUnavailable,),
        summary="Search SIEM logs",
    ),
    Route(
        "POST",
        "/api/v1/siem/logs/ingest",
        ingest,
        W,
        max_body_bytes=INGEST_MAX_BYTES,
        body_media=INGEST_MEDIA,
        query=IngestQuery,
        response=IngestResult,
        errors=(ClickHouseUnavailable,),
        summary="Ingest log entry",
    ),
    Route(
        "GET",
        "/api/v1/siem/sources",
        sources,
        R,
        response=SourcesResult,
        errors=(ClickHouseUnavailable,),
        summary="List log sources",
    ),
    Route(
        "GET",
        "/api/v1/siem/stats",
        stats,
        R,
        query=StatsQuery,
        response=StatsResult,
        errors=(ClickHouseUnavailable,),
        summary="SIEM statistics",
    ),
    list_route(HUNTS, service.list_hunts, HuntRead, R, summary="List hunt queries"),
    Route(
        "POST",
        HUNTS,
        create_hunt,
        W,
        body=HuntCreate,
        response=HuntRead,
        status=201,
        errors=CONVERSION_ERRORS,
        summary="Create hunt query",
    ),
    Route(
        "PATCH",
        HUNT,
        update_hunt,
        W,
        body=HuntUpdate,
        response=HuntRead,
        errors=(NotFound, Conflict, *CONVERSION_ERRORS),
        summary="Update hunt query",
    ),
    Route(
        "POST",
        f"{HUNT}/run",
        run_hunt,
        W,
        body=HuntRunRequest,
        response=HuntRunRead,
        errors=(NotFound,),
        summary="Run hunt query",
    ),
    Route(
        "POST",
        "/api/v1/siem/logs/{log_id}/promote",
        promote_log,
        W,
        body=PromoteRequest,
        response=RuleRead,
        status=201,
        errors=(NotFound, ClickHouseUnavailable, *CONVERSION_ERRORS),
        summary="Promote log to rule",
    ),
]
