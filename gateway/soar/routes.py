"""SOAR routes: playbooks, their executions, automation rules, and the deprecated
``/playbooks`` list."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from core.errors import Conflict, NotFound, PlaybookValidationFailed
from core.security.permissions import Permission
from gateway.http import (
    json_response,
    no_content,
    parse_json,
    principal,
    read_body,
)
from gateway.kernel import as_caller, list_route
from gateway.keys import DATABASE, SOAR
from gateway.routing import Route
from gateway.soar import rules, service
from gateway.soar.definition import parse_playbook
from gateway.soar.schemas import (
    ExecuteRequest,
    ExecutionAccepted,
    ExecutionQuery,
    ExecutionRead,
    PlaybookQuery,
    PlaybookRead,
    PlaybookSummary,
    PlaybookToggle,
)

PLAYBOOK_MAX_BYTES = 256 * 1024
YAML_MEDIA = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
SUNSET = "2027-06-30T00:00:00Z"
"""When ``GET /api/v1/playbooks`` goes (use ``GET /api/v1/soar/playbooks``)."""


async def create_playbook(request: web.Request) -> web.Response:
    """Create a playbook from its YAML or JSON definition (201), or add a version to the one
    with its id (201; 200 when the definition equals the newest version)."""
    media = request.content_type
    source = await read_body(request, limit=PLAYBOOK_MAX_BYTES)
    definition = parse_playbook(source, media=media)
    text = source.decode("utf-8", errors="replace")
    async with request.app[DATABASE].session() as db:
        playbook, added = await service.save_playbook(
            db=db,
            actor=principal(request).username,
            definition=definition,
            source=text,
            media=media if media in YAML_MEDIA else "application/json",
        )
        read = await service.get_playbook(db=db, playbook_id=playbook.id)
    response = json_response(read, status=201 if added else 200)
    response.headers["Location"] = f"/api/v1/soar/playbooks/{playbook.id}"
    return response


async def get_playbook(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        found = await service.get_playbook(db=db, playbook_id=request.match_info["playbook_id"])
    return json_response(found)


async def toggle_playbook(request: web.Request) -> web.Response:
    """Enable or disable a playbook (``{"enabled": bool}`` sets it; no body flips it)."""
    body = await parse_json(request, PlaybookToggle) if request.can_read_body else PlaybookToggle()
    playbook = await as_caller(request, service.toggle_playbook, enabled=body.enabled)
    return json_response(service.summary(playbook))


async def execute_playbook(request: web.Request) -> web.Response:
    """Queue a run of the playbook's newest version under the current mode (202)."""
    body = await parse_json(request, ExecuteRequest)
    execution = await request.app[SOAR].enqueue(
        playbook_id=request.match_info["playbook_id"],
        inputs=body.inputs,
        actor=principal(request).username,
        trigger={"kind": "manual"},
    )
    response = json_response(ExecutionAccepted.model_validate(execution), status=202)
    response.headers["Location"] = f"/api/v1/soar/executions?playbook_id={execution.playbook_id}"
    return response


async def create_rule(request: web.Request) -> web.Response:
    body = await parse_json(request, rules.RuleCreate)
    rule = await as_caller(request, rules.create_rule, body=body)
    return json_response(rules.RuleRead.model_validate(rule), status=201)


async def toggle_rule(request: web.Request) -> web.Response:
    rule = await as_caller(request, rules.toggle_rule)
    return json_response(rules.RuleRead.model_validate(rule))


async def delete_rule(request: web.Request) -> web.Response:
    await as_caller(request, rules.delete_rule)
    return no_content()


_LIST_PLAYBOOKS = list_route(
    "/api/v1/soar/playbooks",
    service.list_playbooks,
    PlaybookSummary,
    Permission.SOAR_READ,
    query=PlaybookQuery,
    read=service.summary,
    summary="List SOAR playbooks",
)

ROUTES = [
    _LIST_PLAYBOOKS,
    dataclasses.replace(
        _LIST_PLAYBOOKS,
        path="/api/v1/playbooks",
        access=Permission.PLAYBOOKS_READ,
        sunset=SUNSET,
        summary="List playbooks (deprecated: use GET /api/v1/soar/playbooks)",
    ),
    Route(
        "POST",
        "/api/v1/soar/playbooks",
        create_playbook,
        Permission.SOAR_WRITE,
        max_body_bytes=PLAYBOOK_MAX_BYTES,
        body_media="application/yaml",
        response=PlaybookRead,
        status=201,
        also=(200,),
        errors=(PlaybookValidationFailed,),
        summary="Create SOAR playbook",
    ),
    Route(
        "GET",
        "/api/v1/soar/playbooks/{playbook_id}",
        get_playbook,
        Permission.SOAR_READ,
        response=PlaybookRead,
        errors=(NotFound,),
        summary="Playbook detail",
    ),
    Route(
        "POST",
        "/api/v1/soar/playbooks/{playbook_id}/toggle",
        toggle_playbook,
        Permission.SOAR_WRITE,
        body=PlaybookToggle,
        response=PlaybookSummary,
        errors=(NotFound,),
        summary="Toggle playbook",
    ),
    Route(
        "POST",
        "/api/v1/soar/playbooks/{playbook_id}/execute",
        execute_playbook,
        Permission.SOAR_WRITE,
        body=ExecuteRequest,
        response=ExecutionAccepted,
        status=202,
        errors=(NotFound, Conflict, PlaybookValidationFailed),
        summary="Execute playbook",
    ),
    list_route(
        "/api/v1/soar/executions",
        service.list_executions,
        ExecutionRead,
        Permission.SOAR_READ,
        query=ExecutionQuery,
        summary="List executions",
    ),
    list_route(
        "/api/v1/soar/rules",
        rules.list_rules,
        rules.RuleRead,
        Permission.SOAR_READ,
        query=rules.RuleQuery,
        summary="List automation rules",
    ),
    Route(
        "POST",
        "/api/v1/soar/rules",
        create_rule,
        Permission.SOAR_WRITE,
        body=rules.RuleCreate,
        response=rules.RuleRead,
        status=201,
        summary="Create automation rule",
    ),
    Route(
        "POST",
        "/api/v1/soar/rules/{rule_id}/toggle",
        toggle_rule,
        Permission.SOAR_WRITE,
        response=rules.RuleRead,
        errors=(NotFound,),
        summary="Toggle rule",
    ),
    Route(
        "DELETE",
        "/api/v1/soar/rules/{rule_id}",
        delete_rule,
        Permission.SOAR_WRITE,
        status=204,
        errors=(NotFound,),
        summary="Delete rule",
    ),
]
