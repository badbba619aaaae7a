"""Network routes: attacks, telemetry ingest / status / coverage, its configuration with
history, and the network specialist's findings (thin: the work is in this package's modules)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import select

from core.db.base import utcnow
from core.errors import ClickHouseUnavailable, Conflict, NotFound, ServiceUnavailable
from core.schemas import Page
from core.security.permissions import Permission
from gateway.http import iter_body, json_response, parse_json, parse_query, principal
from gateway.kernel import as_caller, list_route
from gateway.keys import (
    ATTACK_KB,
    BUS,
    DATABASE,
    HANDOFF,
    INGEST,
    LOGSTORE,
    NETWORK,
    SETTINGS,
    SOAR,
)
from gateway.network import attacks, config, findings
from gateway.network.config import (
    ConfigRead,
    ConfigUpdate,
    ConfigVersionRead,
    HistoryQuery,
    RollbackRequest,
    load_config,
)
from gateway.network.coverage import Coverage, CoverageQuery, coverage, navigator_layer
from gateway.network.models import NetworkDetectorState
from gateway.network.schemas import (
    AnalyzeRequest,
    AttackDetail,
    AttackDispatch,
    AttackDispatched,
    AttackPromote,
    AttackPromoted,
    AttackQuery,
    AttackRead,
    DetectorHealth,
    FindingQuery,
    FindingRead,
    SecurityStatus,
)
from gateway.network.status import StatusQuery, TelemetryStatus, telemetry_status
from gateway.network.telemetry import TelemetryIngestResult, ingest_telemetry
from gateway.routing import Route
from gateway.siem.parsing import spool_dir
from gateway.siem.schemas import IngestQuery


async def _dedupe(request: web.Request) -> timedelta:
    config = await load_config(request.app[DATABASE])
    return timedelta(seconds=config.schedule.dedupe_seconds)


async def list_attacks(request: web.Request) -> web.Response:
    """A page of network attacks, filtered."""
    query = parse_query(request, AttackQuery)
    dedupe = await _dedupe(request)
    async with request.app[DATABASE].session() as db:
        items, total = await attacks.list_attacks(db=db, query=query, dedupe=dedupe)
    return json_response(Page[AttackRead].of(items, total, query))


async def get_attack(request: web.Request) -> web.Response:
    """An attack with its evidence and the events behind it."""
    dedupe = await _dedupe(request)
    async with request.app[DATABASE].session() as db:
        detail = await attacks.attack_detail(
            db=db,
            store=request.app[LOGSTORE],
            attack_id=request.match_info["attack_id"],
            dedupe=dedupe,
        )
    return json_response(detail)


async def promote_attack(request: web.Request) -> web.Response:
    """Open a case from the attack, its addresses and domains as observables."""
    body = await parse_json(request, AttackPromote) if request.can_read_body else AttackPromote()
    dedupe = await _dedupe(request)
    async with request.app[DATABASE].session() as db:
        promoted = await attacks.promote(
            db=db,
            actor=principal(request).username,
            attack_id=request.match_info["attack_id"],
            body=body,
            dedupe=dedupe,
        )
    request.app[BUS].publish(
        attacks.TOPIC,
        {"attack_id": promoted.attack.id, "new": False, "case_id": promoted.case_id},
    )
    return json_response(promoted, status=201)


async def dispatch_attack(request: web.Request) -> web.Response:
    """Queue a response playbook for the attack (guardrails, mode and approvals apply)."""
    body = await parse_json(request, AttackDispatch) if request.can_read_body else AttackDispatch()
    current = await load_config(request.app[DATABASE])
    async with request.app[DATABASE].session() as db:
        dispatched = await attacks.dispatch(
            db=db,
            starter=request.app[SOAR],
            actor=principal(request).username,
            attack_id=request.match_info["attack_id"],
            body=body,
            config=current,
        )
    request.app[SOAR].wake()
    return json_response(dispatched, status=202)


async def list_findings(request: web.Request) -> web.Response:
    """A page of the network specialist's findings, filtered."""
    query = parse_query(request, FindingQuery)
    async with request.app[DATABASE].session() as db:
        rows, total = await findings.list_findings(db=db, query=query)
        page = Page[FindingRead].of(rows, total, query, FindingRead.model_validate)
    return json_response(page)


async def analyze(request: web.Request) -> web.Response:
    """Run the network specialist on a window of telemetry, an attack's events, or records."""
    body = await parse_json(request, AnalyzeRequest)
    current = await load_config(request.app[DATABASE])
    finding = await findings.analyze(
        database=request.app[DATABASE],
        store=request.app[LOGSTORE],
        handoff=request.app[HANDOFF],
        config=current,
        actor=principal(request).username,
        body=body,
    )
    return json_response(finding, status=201)


async def security_status(request: web.Request) -> web.Response:
    """Detector health and last runs, attack and finding counts, the specialist's reach."""
    current = await load_config(request.app[DATABASE])
    dedupe = timedelta(seconds=current.schedule.dedupe_seconds)
    enabled = {d.value for d in current.thresholds.enabled()}
    async with request.app[DATABASE].session() as db:
        states = {s.detector: s for s in await db.scalars(select(NetworkDetectorState))}
        attack_counts = await attacks.counts(db, dedupe=dedupe)
        finding_counts = await findings.finding_counts(db)
    detectors = []
    for name in sorted({*enabled, *states}):
        state = states.get(name)
        health = DetectorHealth.model_validate(state) if state else DetectorHealth(detector=name)
        health.enabled = name in enabled
        health.healthy = state is None or state.last_status != "failed"
        detectors.append(health)
    scheduler = request.app.get(NETWORK)
    running = scheduler.state if scheduler is not None else {"running": False}
    return json_response(
        SecurityStatus(
            scheduler={
                **running,
                "enabled": current.schedule.enabled,
                "interval_seconds": current.schedule.interval_seconds,
            },
            detectors=detectors,
            attacks=attack_counts,
            findings=finding_counts,
            agent={
                "name": findings.AGENT,
                "circuit": request.app[HANDOFF].breaker_state(findings.AGENT),
            },
        )
    )


# --- telemetry --------------------------------------------------------------------------------

INGEST_MAX_BYTES = 64 * 1024 * 1024


async def ingest(request: web.Request) -> web.Response:
    """Suricata eve.json, Zeek logs (JSON or the native TSV) and NetFlow/IPFIX JSON, on the SIEM
    ingest path; a record already stored is not stored again (``duplicates`` counts them)."""
    query = parse_query(request, IngestQuery)
    current = await load_config(request.app[DATABASE])
    result = await ingest_telemetry(
        iter_body(request),
        parser=request.app[INGEST],
        store=request.app[LOGSTORE],
        spool=spool_dir(request.app[SETTINGS].data_dir),
        sources=current.sources,
        content_type=request.headers.get("Content-Type"),
        source=query.source,
        format=query.format,
        filename=request.headers.get("X-Filename"),
    )
    return json_response(result)


async def status(request: web.Request) -> web.Response:
    """Each sensor's last event, rates and gaps; silent ones flagged."""
    query = parse_query(request, StatusQuery)
    current = await load_config(request.app[DATABASE])
    found = await telemetry_status(
        request.app[LOGSTORE],
        current,
        now=utcnow(),
        window=timedelta(seconds=query.window_seconds),
        max_gaps=query.max_gaps,
    )
    return json_response(found)


async def coverage_map(request: web.Request) -> web.Response:
    """The ATT&CK techniques the platform can see now (JSON, or a Navigator layer)."""
    query = parse_query(request, CoverageQuery)
    current = await load_config(request.app[DATABASE])
    kb = await asyncio.to_thread(request.app[ATTACK_KB])
    async with request.app[DATABASE].session() as db:
        found = await coverage(
            db,
            request.app[LOGSTORE],
            current,
            kb=kb,
            now=utcnow(),
            lookback=timedelta(seconds=query.lookback_seconds),
        )
    if query.format == "navigator":
        return web.json_response(
            navigator_layer(found, kb),
            dumps=lambda value: orjson.dumps(value).decode(),
            headers={"Content-Disposition": 'attachment; filename="aurorasoc-coverage.json"'},
        )
    return json_response(found)


async def get_config(request: web.Request) -> web.Response:
    """The configuration in force and its version."""
    async with request.app[DATABASE].session() as db:
        return json_response(await config.current_config(db))


async def put_config(request: web.Request) -> web.Response:
    """Replace the configuration: a new version (who, when, the diff)."""
    body = await parse_json(request, ConfigUpdate)
    return json_response(await as_caller(request, _put, body=body))


async def _put(*, db: Any, actor: str, body: ConfigUpdate) -> ConfigRead:
    return await config.put_config(db, actor=actor, body=body)


async def rollback(request: web.Request) -> web.Response:
    """A new version equal to an earlier one."""
    body = await parse_json(request, RollbackRequest) if request.can_read_body else None
    async with request.app[DATABASE].session() as db:
        restored = await config.rollback(
            db,
            actor=principal(request).username,
            history_id=request.match_info["history_id"],
            body=body,
        )
    return json_response(restored, status=201)


R, W = Permission.NETWORK_READ, Permission.NETWORK_WRITE
ATTACKS = "/api/v1/network-attacks"
ATTACK = f"{ATTACKS}/{{attack_id}}"
SETTINGS_PATH = "/api/v1/settings/network-telemetry"
ROUTES = [
    Route(
        "POST",
        "/api/v1/network-telemetry/ingest",
        ingest,
        W,
        max_body_bytes=INGEST_MAX_BYTES,
        body_media="application/x-ndjson",
        query=IngestQuery,
        response=TelemetryIngestResult,
        errors=(ClickHouseUnavailable,),
        summary="Ingest telemetry",
    ),
    Route(
        "GET",
        "/api/v1/network-telemetry/status",
        status,
        R,
        query=StatusQuery,
        response=TelemetryStatus,
        errors=(ClickHouseUnavailable,),
        summary="Telemetry status",
    ),
    Route(
        "GET",
        "/api/v1/network-telemetry/coverage",
        coverage_map,
        R,
        query=CoverageQuery,
        # The coverage document, or with ?format=navigator an ATT&CK Navigator layer (that
        # format's own schema, not restated here).
        response=Coverage | dict[str, Any],
        errors=(ClickHouseUnavailable,),
        summary="Attack coverage map",
    ),
    Route("GET", SETTINGS_PATH, get_config, R, response=ConfigRead, summary="Telemetry config"),
    Route(
        "PUT",
        SETTINGS_PATH,
        put_config,
        W,
        body=ConfigUpdate,
        response=ConfigRead,
        errors=(Conflict,),
        summary="Update telemetry config",
    ),
    list_route(
        f"{SETTINGS_PATH}/history",
        config.history,
        ConfigVersionRead,
        R,
        query=HistoryQuery,
        summary="Config history",
    ),
    Route(
        "POST",
        f"{SETTINGS_PATH}/history/{{history_id}}/rollback",
        rollback,
        W,
        body=RollbackRequest,
        response=ConfigRead,
        status=201,
        errors=(NotFound, Conflict),
        summary="Rollback config",
    ),
    Route(
        "GET",
        ATTACKS,
        list_attacks,
        R,
        query=AttackQuery,
        response=Page[AttackRead],
        summary="List network attacks",
    ),
    Route(
        "GET",
        ATTACK,
        get_attack,
        R,
        response=AttackDetail,
        errors=(NotFound, ClickHouseUnavailable),
        summary="Attack detail",
    ),
    Route(
        "POST",
        f"{ATTACK}/case",
        promote_attack,
        W,
        body=AttackPromote,
        response=AttackPromoted,
        status=201,
        errors=(NotFound, Conflict),
        summary="Promote to case",
    ),
    Route(
        "POST",
        f"{ATTACK}/dispatch",
        dispatch_attack,
        W,
        body=AttackDispatch,
        response=AttackDispatched,
        status=202,
        errors=(NotFound, Conflict),
        summary="Dispatch response",
    ),
    Route(
        "GET",
        "/api/v1/network-security/findings",
        list_findings,
        R,
        query=FindingQuery,
        response=Page[FindingRead],
        summary="Network findings",
    ),
    Route(
        "POST",
        "/api/v1/network-security/analyze",
        analyze,
        W,
        body=AnalyzeRequest,
        response=FindingRead,
        status=201,
        errors=(NotFound, ClickHouseUnavailable, ServiceUnavailable),
        summary="Analyse network data",
    ),
    Route(
        "GET",
        "/api/v1/network-security/status",
        security_status,
        R,
        response=SecurityStatus,
        summary="Network security status",
    ),
]
