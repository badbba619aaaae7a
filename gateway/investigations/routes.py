"""Orchestrator routes: dispatch one agent method, and the dispatch history."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, RootModel

from core.errors import AuroraError, PermissionDenied
from core.events import Event
from core.security.permissions import Permission, Role
from core.validation import validate
from gateway.auth.service import Principal
from gateway.http import json_response, parse_json, parse_query, principal
from gateway.investigations import approvals, service
from gateway.investigations.schemas import (
    DispatchPage,
    DispatchRead,
    DispatchRequest,
    HistoryQuery,
    InvestigateRequest,
    InvestigationAccepted,
    InvestigationPage,
    InvestigationQuery,
    InvestigationRead,
    InvestigationSummary,
)
from gateway.keys import BUS, DATABASE, HANDOFF, RUNNER
from gateway.routing import Access, Route
from gateway.streams import error_message, pump


async def dispatch(request: web.Request) -> web.Response:
    body = await parse_json(request, DispatchRequest)
    async with request.app[DATABASE].session() as db:
        record = await service.dispatch(
            db=db, client=request.app[HANDOFF], actor=principal(request).username, body=body
        )
    return json_response(DispatchRead.model_validate(record))


async def list_history(request: web.Request) -> web.Response:
    query = parse_query(request, HistoryQuery)
    async with request.app[DATABASE].session() as db:
        rows, total = await service.history(db=db, query=query)
    page = DispatchPage(
        items=[DispatchRead.model_validate(r) for r in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )
    return json_response(page)


async def investigate(request: web.Request) -> web.Response:
    body = await parse_json(request, InvestigateRequest)
    async with request.app[DATABASE].session() as db:
        investigation = await service.enqueue(db=db, actor=principal(request).username, body=body)
    request.app[RUNNER].wake()
    accepted = InvestigationAccepted(
        id=investigation.id, status=investigation.status, priority=investigation.priority
    )
    response = json_response(accepted, status=202)
    response.headers["Location"] = f"/api/v1/investigations/{investigation.id}"
    return response


async def list_investigations(request: web.Request) -> web.Response:
    query = parse_query(request, InvestigationQuery)
    async with request.app[DATABASE].session() as db:
        rows, total = await service.list_investigations(db=db, query=query)
    page = InvestigationPage(
        items=[InvestigationSummary.model_validate(r) for r in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )
    return json_response(page)


async def get_investigation(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        found = await service.get_investigation(
            db=db, investigation_id=request.match_info["investigation_id"]
        )
    return json_response(InvestigationRead.model_validate(found))


async def stream_receipts(request: web.Request) -> web.WebSocketResponse:
    """Receipts of finished investigations, live; ``?investigation_id=`` narrows it."""
    wanted = request.query.get("investigation_id")

    def matches(event: Event) -> bool:
        return wanted is None or event.payload.get("investigation_id") == wanted

    def render(event: Event) -> dict[str, Any]:
        return {"type": "receipt", "at": event.at, **event.payload}

    subscription = request.app[BUS].subscribe("investigations.receipt", maxsize=128, where=matches)
    return await pump(request, subscription, render)


async def stream_agent_thoughts(request: web.Request) -> web.WebSocketResponse:
    """The agents' ``agent.thought`` notifications, live; ``?investigation_id=`` and
    ``?agent=`` narrow the stream."""
    wanted = {
        key: request.query[key] for key in ("investigation_id", "agent") if key in request.query
    }

    def matches(event: Event) -> bool:
        return all(event.payload.get(key) == value for key, value in wanted.items())

    def render(event: Event) -> dict[str, Any]:
        return {"type": "thought", "at": event.at, **event.payload}

    subscription = request.app[BUS].subscribe("agents.thought", maxsize=512, where=matches)
    return await pump(request, subscription, render)


APPROVER = Permission.SOAR_WRITE
"""Who may approve or deny a response action (a human: service identities never may)."""
SERVICE_ROLES = frozenset({Role.SERVICE_AGENT.value, Role.SERVICE_RESPONDER.value})


class DecideMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["decide"]
    approval_id: str = Field(min_length=1, max_length=64)
    decision: Literal["approve", "deny"]
    comment: str | None = Field(default=None, max_length=2000)


class CancelMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["cancel"]
    investigation_id: str = Field(min_length=1, max_length=32)
    reason: str | None = Field(default=None, max_length=2000)


type AnyClientMessage = Annotated[DecideMessage | CancelMessage, Field(discriminator="type")]


class ClientMessage(RootModel[AnyClientMessage]):
    """What an approvals client may send."""


def _echo_ids(data: Any) -> dict[str, str]:
    """The ids a client's message named, for it to match the error to its request (only
    well-formed ids are echoed back)."""
    if not isinstance(data, dict):
        return {}
    return {
        key: value
        for key in ("approval_id", "investigation_id")
        if isinstance(value := data.get(key), str) and len(value) <= 64 and value.isprintable()
    }


async def stream_approvals(request: web.Request) -> web.WebSocketResponse:
    """Approval requests and decisions, live, after the ones still pending; the client decides
    (``{"type": "decide", "approval_id", "decision": "approve" | "deny", "comment"}``, needs
    ``soar:write`` and a human account) or cancels an investigation (``{"type": "cancel",
    "investigation_id"}``, needs ``investigations:write``). ``?investigation_id=`` narrows it.
    Each message is judged by its sender's credential and role as they stand when it arrives."""
    wanted = request.query.get("investigation_id")
    database = request.app[DATABASE]
    runner = request.app[RUNNER]

    def matches(event: Event) -> bool:
        return wanted is None or event.payload.get("investigation_id") == wanted

    def render(event: Event) -> dict[str, Any]:
        kind = "approval_requested" if event.topic == "approvals.requested" else "approval_decided"
        return {"type": kind, "at": event.at, **event.payload}

    async def greeting() -> list[dict[str, Any]]:
        async with database.session() as db:
            pending = await approvals.list_pending(db, wanted)
        return [{"type": "pending", "approvals": [approvals.as_event(a) for a in pending]}]

    async def on_message(data: Any, caller: Principal) -> dict[str, Any]:
        try:
            message = validate(ClientMessage, data, where="message").root
            if isinstance(message, DecideMessage):
                if not caller.can(APPROVER) or caller.user.role in SERVICE_ROLES:
                    raise PermissionDenied({"required": APPROVER.value, "human": True})
                verdict: approvals.Verdict = (
                    "approved" if message.decision == "approve" else "denied"
                )
                async with database.session() as db:
                    approval, resumable = await approvals.decide(
                        db,
                        approval_id=message.approval_id,
                        actor=caller.username,
                        verdict=verdict,
                        comment=message.comment,
                    )
                runner.on_decided(approval, resumable)
                return {"type": "decided", "approval": approvals.as_event(approval)}
            if not caller.can(Permission.INVESTIGATIONS_WRITE):
                raise PermissionDenied({"required": Permission.INVESTIGATIONS_WRITE.value})
            await runner.cancel(message.investigation_id, caller.username)
            return {"type": "cancelled", "investigation_id": message.investigation_id}
        except AuroraError as err:
            return error_message(err, **_echo_ids(data))

    subscription = request.app[BUS].subscribe(
        "approvals.requested", "approvals.decided", maxsize=256, where=matches
    )
    return await pump(request, subscription, render, greeting=greeting, on_message=on_message)


ROUTES = [
    Route("GET", "/api/v1/investigations", list_investigations, Permission.INVESTIGATIONS_READ),
    Route(
        "GET",
        "/api/v1/investigations/{investigation_id}",
        get_investigation,
        Permission.INVESTIGATIONS_READ,
    ),
    Route("POST", "/api/v1/agents/investigate", investigate, Permission.INVESTIGATIONS_WRITE),
    Route(
        "WS",
        "/api/v1/ws/investigation-receipts",
        stream_receipts,
        Access.AUTHENTICATED,
        stream_permission=Permission.INVESTIGATIONS_READ,
    ),
    Route("POST", "/api/v1/orchestrator/dispatch", dispatch, Permission.INVESTIGATIONS_WRITE),
    Route("GET", "/api/v1/orchestrator/history", list_history, Permission.INVESTIGATIONS_READ),
    Route(
        "WS",
        "/api/v1/ws/agent-thoughts",
        stream_agent_thoughts,
        Access.AUTHENTICATED,
        stream_permission=Permission.INVESTIGATIONS_READ,
    ),
    Route(
        "WS",
        "/api/v1/ws/approvals",
        stream_approvals,
        Access.AUTHENTICATED,
        stream_permission=Permission.INVESTIGATIONS_READ,
    ),
]
