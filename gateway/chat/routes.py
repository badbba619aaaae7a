"""Chat routes: completions in JSON, the same turn as Server-Sent Events, and the sessions.

Both chat endpoints charge the caller's per-minute allowance (the runtime setting
``chat_rate_limit_per_minute``) before anything else; the count lives in the database, so the
limit holds across gateway replicas.
"""

from __future__ import annotations

import json

from aiohttp import web
from aiohttp_sse import sse_response

from core.errors import AuroraError, InternalError, NotFound, RateLimited
from core.schemas import PageQuery
from core.security.permissions import Permission
from gateway.chat import service
from gateway.chat.engine import ChatEngine
from gateway.chat.schemas import (
    MAX_BODY_BYTES,
    ChatAnswer,
    ChatRequest,
    SessionCreate,
    SessionDetail,
    SessionRead,
)
from gateway.http import error_body, json_response, no_content, parse_json, principal
from gateway.kernel import list_route
from gateway.keys import CHAT, DATABASE, REQUEST_ID, RUNTIME
from gateway.routing import Route


async def _charge(request: web.Request) -> None:
    limit = request.app[RUNTIME].config.chat_rate_limit_per_minute
    async with request.app[DATABASE].session() as db:
        await service.charge(db, username=principal(request).username, limit=limit)


async def completions(request: web.Request) -> web.Response:
    """One turn, answered when it is done."""
    await _charge(request)
    body = await parse_json(request, ChatRequest)
    engine: ChatEngine = request.app[CHAT]
    events = engine.detach(await engine.start(principal(request), body))
    final: dict[str, object] | None = None
    while (item := await events.get()) is not None:
        if isinstance(item, AuroraError):
            raise item
        if isinstance(item, BaseException):
            raise InternalError() from item
        if item.name == "message":
            final = item.data
    if final is None:
        raise InternalError()
    return json_response(final)


async def stream(request: web.Request) -> web.StreamResponse:
    """One turn as Server-Sent Events: ``session``, ``token``, ``tool_call``, ``tool_result``,
    ``confirmation_required``, ``report_generated`` / ``report_error``, then ``message`` (the
    stored answer with usage), or ``error`` (an AURORA envelope) when the turn fails after the
    stream began. The turn runs on when the client goes away, and its answer is stored."""
    await _charge(request)
    body = await parse_json(request, ChatRequest)
    engine: ChatEngine = request.app[CHAT]
    # Errors before the stream (a session that is not the caller's, a bad confirmation) are
    # answered as ordinary error responses.
    events = engine.detach(await engine.start(principal(request), body))
    async with sse_response(request, allow_all_methods=True) as sse:
        while (item := await events.get()) is not None:
            if isinstance(item, AuroraError):
                await sse.send(_envelope(item, request), event="error")
            elif isinstance(item, BaseException):
                await sse.send(_envelope(InternalError(), request), event="error")
            else:
                await sse.send(json.dumps(item.data, default=str), event=item.name)
    return sse


def _envelope(err: AuroraError, request: web.Request) -> str:
    return error_body(err, request[REQUEST_ID]).decode()


async def create_session(request: web.Request) -> web.Response:
    body = await parse_json(request, SessionCreate)
    async with request.app[DATABASE].session() as db:
        session = await service.create_session(
            db, owner=principal(request).username, title=body.title
        )
        read = SessionRead.model_validate(session)
    response = json_response(read, status=201)
    response.headers["Location"] = f"/api/v1/chat/sessions/{read.id}"
    return response


async def get_session(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        session = await service.owned_session(
            db, session_id=request.match_info["session_id"], owner=principal(request).username
        )
        return json_response(await service.session_detail(db, session=session))


async def delete_session(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        await service.delete_session(
            db, session_id=request.match_info["session_id"], owner=principal(request).username
        )
    return no_content()


SESSION = "/api/v1/chat/sessions/{session_id}"
ROUTES = [
    Route(
        "POST",
        "/api/v1/chat/completions",
        completions,
        Permission.CHAT_WRITE,
        max_body_bytes=MAX_BODY_BYTES,
        body=ChatRequest,
        response=ChatAnswer,
        errors=(RateLimited, NotFound),
        summary="Chat completion",
    ),
    Route(
        "POST",
        "/api/v1/chat/stream",
        stream,
        Permission.CHAT_READ,
        max_body_bytes=MAX_BODY_BYTES,
        body=ChatRequest,
        response_media="text/event-stream",
        errors=(RateLimited, NotFound),
        summary="Stream chat response (SSE)",
    ),
    list_route(
        "/api/v1/chat/sessions",
        service.list_sessions,
        SessionRead,
        Permission.CHAT_READ,
        query=PageQuery,
        by_caller=True,
        summary="List chat sessions",
    ),
    Route(
        "POST",
        "/api/v1/chat/sessions",
        create_session,
        Permission.CHAT_WRITE,
        body=SessionCreate,
        response=SessionRead,
        status=201,
        summary="Create chat session",
    ),
    Route(
        "GET",
        SESSION,
        get_session,
        Permission.CHAT_READ,
        response=SessionDetail,
        errors=(NotFound,),
        summary="Get chat session",
    ),
    Route(
        "DELETE",
        SESSION,
        delete_session,
        Permission.CHAT_WRITE,
        status=204,
        errors=(NotFound,),
        summary="Delete chat session",
    ),
]
