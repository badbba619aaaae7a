"""Investigation routes: dispatch one agent method, queue investigations, and the streams of
their receipts, the agents' thoughts and the approvals they wait for."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core.errors import (
    AgentNotFound,
    AlertNotFound,
    AuroraError,
    CaseNotFound,
    LLMUnavailable,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from core.events import Event
from core.security.permissions import Permission, Role
from core.validation import validate
from gateway.http import Principal, json_response, parse_json, parse_query
from gateway.investigations import approvals, service
from gateway.investigations.schemas import (
    ClientMessage,
    DecideMessage,
    DispatchRead,
    DispatchRequest,
    HistoryQuery,
    InvestigateRequest,
    InvestigationAccepted,
    InvestigationQuery,
    InvestigationRead,
    InvestigationSummary,
    ReceiptStreamQuery,
    ThoughtStreamQuery,
)
from gateway.kernel import as_caller, list_route
from gateway.keys import BUS, DATABASE, HANDOFF, RUNNER
from gateway.routing import Route
from gateway.streams import error_message, matching, pump, spread, stream_route


async def dispatch(request: web.Request) -> web.Response:
    body = await parse_json(request, DispatchRequest)
    record = await as_caller(request, service.dispatch, client=request.app[HANDOFF], body=body)
    return json_response(DispatchRead.model_validate(record))


async def investigate(request: web.Request) -> web.Response:
    body = await parse_json(request, InvestigateRequest)
    investigation = await request.app[RUNNER].submit(
        lambda run_by: as_caller(request, service.enqueue, body=body, run_by=run_by)
    )
    accepted = InvestigationAccepted.model_validate(investigation, from_attributes=True)
    response = json_response(accepted, status=202)
    response.headers["Location"] = f"/api/v1/investigations/{investigation.id}"
    return response


async def get_investigation(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        found = await service.get_investigation(
            db=db, investigation_id=request.match_info["investigation_id"]
        )
    return json_response(InvestigationRead.model_validate(found))


async def stream_receipts(request: web.Request) -> web.WebSocketResponse:
    """Receipts of finished investigations, live; ``?investigation_id=`` narrows it."""
    query = parse_query(request, ReceiptStreamQuery)
    subscription = request.app[BUS].subscribe(
        "investigations.receipt",
        maxsize=128,
        where=matching(investigation_id=query.investigation_id),
    )
    return await pump(request, subscription, spread("receipt"))


async def stream_agent_thoughts(request: web.Request) -> web.WebSocketResponse:
    """The agents' ``agent.thought`` notifications, live; ``?investigation_id=`` and
    ``?agent=`` narrow the stream."""
    query = parse_query(request, ThoughtStreamQuery)
    subscription = request.app[BUS].subscribe(
        "agents.thought",
        maxsize=512,
        where=matching(investigation_id=query.investigation_id, agent=query.agent),
    )
    return await pump(request, subscription, spread("thought"))


APPROVERS = (Permission.SOAR_WRITE, Permission.SYSTEM_WRITE)
"""Who may approve or deny a response action: a human who runs the response (``soar:write``:
responders) or the platform's operation (``system:write``: operators, who set the mode that
makes actions real); service identities never may."""
SERVICE_ROLES = frozenset({Role.SERVICE_AGENT.value, Role.SERVICE_RESPONDER.value})


def _approval_kind(event: Event) -> str:
    return "approval_requested" if event.topic == "approvals.requested" else "approval_decided"


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
    ``soar:write`` or ``system:write`` and a human account) or cancels an investigation
    (``{"type": "cancel", "investigation_id"}``, needs ``investigations:write``).
    ``?investigation_id=`` narrows it. Each message is judged by its sender's credential and
    role as they stand when it arrives."""
    query = parse_query(request, ReceiptStreamQuery)
    database = request.app[DATABASE]
    runner = request.app[RUNNER]

    async def greeting() -> list[dict[str, Any]]:
        async with database.session() as db:
            pending = await approvals.list_pending(db, query.investigation_id)
        return [{"type": "pending", "approvals": [approvals.as_event(a) for a in pending]}]

    async def on_message(data: Any, caller: Principal) -> dict[str, Any]:
        try:
            message = validate(ClientMessage, data, where="message").root
            if isinstance(message, DecideMessage):
                if not any(caller.can(p) for p in APPROVERS) or caller.user.role in SERVICE_ROLES:
                    required = " or ".join(p.value for p in APPROVERS)
                    raise PermissionDenied({"required": required, "human": True})
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
        "approvals.requested",
        "approvals.decided",
        maxsize=256,
        where=matching(investigation_id=query.investigation_id),
    )
    return await pump(
        request, subscription, spread(_approval_kind), greeting=greeting, on_message=on_message
    )


ROUTES = [
    list_route(
        "/api/v1/investigations",
        service.list_investigations,
        InvestigationSummary,
        Permission.INVESTIGATIONS_READ,
        query=InvestigationQuery,
        summary="List investigations",
    ),
    Route(
        "GET",
        "/api/v1/investigations/{investigation_id}",
        get_investigation,
        Permission.INVESTIGATIONS_READ,
        response=InvestigationRead,
        errors=(NotFound,),
        summary="Investigation detail",
    ),
    Route(
        "POST",
        "/api/v1/agents/investigate",
        investigate,
        Permission.INVESTIGATIONS_WRITE,
        body=InvestigateRequest,
        response=InvestigationAccepted,
        status=202,
        errors=(AlertNotFound, CaseNotFound),
        summary="Dispatch investigation",
    ),
    stream_route(
        "/api/v1/ws/investigation-receipts",
        stream_receipts,
        Permission.INVESTIGATIONS_READ,
        query=ReceiptStreamQuery,
        summary="Investigation result stream",
    ),
    Route(
        "POST",
        "/api/v1/orchestrator/dispatch",
        dispatch,
        Permission.INVESTIGATIONS_WRITE,
        body=DispatchRequest,
        response=DispatchRead,
        # besides these, whatever platform error the agent's method raised, rebuilt
        errors=(AgentNotFound, NotFound, ServiceUnavailable, LLMUnavailable),
        summary="Orchestrator dispatch",
    ),
    list_route(
        "/api/v1/orchestrator/history",
        service.history,
        DispatchRead,
        Permission.INVESTIGATIONS_READ,
        query=HistoryQuery,
        summary="Dispatch history",
    ),
    stream_route(
        "/api/v1/ws/agent-thoughts",
        stream_agent_thoughts,
        Permission.INVESTIGATIONS_READ,
        query=ThoughtStreamQuery,
        summary="Agent reasoning stream",
    ),
    stream_route(
        "/api/v1/ws/approvals",
        stream_approvals,
        Permission.INVESTIGATIONS_READ,
        query=ReceiptStreamQuery,
        summary="Human approval notifications",
    ),
]
