"""SIEM routes: ingest, search, sources, statistics (hunts and promotion live beside them)."""

from __future__ import annotations

import time

from aiohttp import web

from core.errors import ValidationFailed
from core.logstore.store import SearchRequest
from core.security.permissions import Permission
from gateway.detections.routes import HUNT_ROUTES
from gateway.http import iter_body, json_response, parse_query
from gateway.keys import INGEST, LOGSTORE, SETTINGS
from gateway.routing import Route
from gateway.siem.parsing import ingest_body, spool_dir
from gateway.siem.schemas import (
    IngestQuery,
    IngestResult,
    Rejection,
    SearchQuery,
    SearchResult,
    SourcesResult,
    StatsQuery,
    window,
)

INGEST_MAX_BYTES = 64 * 1024 * 1024
SHOWN = 1000


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
        content_type=request.headers.get("Content-Type"),
        source=query.source,
        format=query.format,
        filename=request.headers.get("X-Filename"),
    )
    rejections = [
        Rejection(line=r.line, index=r.index, reason=r.reason, excerpt=r.excerpt or None)
        for r in stored.rejections[:SHOWN]
    ]
    if not stored.accepted:
        problems = [
            {
                "loc": ["body", r.line if r.line is not None else r.index or 0],
                "msg": r.reason,
                "type": "event_rejected",
            }
            for r in rejections
        ] or [{"loc": ["body"], "msg": "no events in the body", "type": "empty"}]
        raise ValidationFailed(problems)
    result = IngestResult(
        accepted=stored.accepted,
        rejected=stored.rejected,
        rejections=rejections,
        ids=stored.ids if stored.accepted <= SHOWN else [],
        formats=stored.formats,
        took_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    return json_response(result)


async def search(request: web.Request) -> web.Response:
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
    return json_response(SourcesResult(items=await request.app[LOGSTORE].sources()))


async def stats(request: web.Request) -> web.Response:
    query = parse_query(request, StatsQuery)
    start, end = window(query.start, query.end)
    if end <= start:
        raise ValidationFailed(
            [{"loc": ["query", "end"], "msg": "end must be after start", "type": "value_error"}]
        )
    return json_response(await request.app[LOGSTORE].stats(start=start, end=end))


ROUTES = [
    Route("GET", "/api/v1/siem/logs", search, Permission.SIEM_READ),
    Route(
        "POST",
        "/api/v1/siem/logs/ingest",
        ingest,
        Permission.SIEM_WRITE,
        max_body_bytes=INGEST_MAX_BYTES,
    ),
    Route("GET", "/api/v1/siem/sources", sources, Permission.SIEM_READ),
    Route("GET", "/api/v1/siem/stats", stats, Permission.SIEM_READ),
    # Hunts and promotion work with detection rules: their handlers live beside them.
    *HUNT_ROUTES,
]
