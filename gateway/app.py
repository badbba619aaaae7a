"""``create_app(settings)``: the gateway application, its resources and its route table."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta

from aiohttp import web

from agents.acp.client import HandoffClient
from agents.acp.registry import AgentRegistry
from agents.acp.server import AGENT_TOKEN_TYPE
from core.blobs import BlobStore
from core.db import create_database
from core.db.migrate import is_current
from core.errors import ClickHouseUnavailable
from core.events import EventBus
from core.guardrails import policy_from_settings
from core.ledger import Keyring
from core.llm import LLMBackend
from core.logstore.store import LogStore
from core.metrics import create_metrics
from core.security.passwords import PasswordHasher
from core.security.tokens import TokenService
from core.settings import Settings, ensure_data_dir
from gateway.alerts.routes import ROUTES as ALERTS_ROUTES
from gateway.auth.routes import ROUTES as AUTH_ROUTES
from gateway.auth.service import Authenticator
from gateway.cases.evidence.routes import ROUTES as EVIDENCE_ROUTES
from gateway.cases.evidence.service import seal_legacy_ledgers
from gateway.cases.routes import ROUTES as CASES_ROUTES
from gateway.detections.conversion import SigmaConverter
from gateway.detections.routes import ROUTES as DETECTIONS_ROUTES
from gateway.detections.service import DetectionScheduler
from gateway.fleet.routes import ROUTES as FLEET_ROUTES
from gateway.fleet.service import ToolCallRecorder
from gateway.index import INDEX_ROUTES
from gateway.investigations.executor import LedgerExecutor
from gateway.investigations.routes import ROUTES as INVESTIGATIONS_ROUTES
from gateway.investigations.service import InvestigationRunner
from gateway.keys import (
    AUTHENTICATOR,
    BLOBS,
    BUS,
    DATABASE,
    HANDOFF,
    HASHER,
    INGEST,
    LEDGER_KEYS,
    LLM,
    LOGSTORE,
    METRICS,
    RECORDER,
    ROUTE_TABLE,
    RUNNER,
    RUNTIME,
    SETTINGS,
    SIGMA,
    TOKENS,
)
from gateway.middleware import add_standard_headers, auth_middleware, context_middleware
from gateway.routing import Route
from gateway.siem.parsing import IngestParser, clear_spool, spool_dir
from gateway.siem.routes import ROUTES as SIEM_ROUTES
from gateway.system.routes import ROUTES as SYSTEM_ROUTES
from gateway.system.service import RuntimeState, load_runtime
from gateway.users.routes import ROUTES as USERS_ROUTES
from orchestrator.checkpoints import open_checkpointer
from orchestrator.graph import GraphDeps, build_graph
from orchestrator.planner import PlannerTools

log = logging.getLogger("aurora.gateway")

ALL_ROUTES: tuple[Route, ...] = (
    *AUTH_ROUTES,
    *USERS_ROUTES,
    *ALERTS_ROUTES,
    *CASES_ROUTES,
    *EVIDENCE_ROUTES,
    *SYSTEM_ROUTES,
    *FLEET_ROUTES,
    *INVESTIGATIONS_ROUTES,
    *SIEM_ROUTES,
    *DETECTIONS_ROUTES,
)
AGENT_TOKEN_TTL_SECONDS = 3600


class AgentToken:
    """The gateway's own token for agents, renewed well before it expires."""

    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens
        self._token = ""
        self._renew_at = 0.0

    def __call__(self) -> str:
        now = time.monotonic()
        if now >= self._renew_at:
            self._token = self._tokens.issue(
                "gateway", ttl_seconds=AGENT_TOKEN_TTL_SECONDS, token_type=AGENT_TOKEN_TYPE
            ).token
            self._renew_at = now + AGENT_TOKEN_TTL_SECONDS / 2
        return self._token


AGENT_HEALTH_INTERVAL_SECONDS = 15.0


async def _probe_agents(client: HandoffClient) -> None:
    """Probe every agent replica now and then, so calls skip the ones that are down; log when
    a replica goes down or comes back."""
    known: dict[str, bool] = {}
    while True:
        try:
            report = await client.check_health()
        except Exception:
            log.exception("agent health check failed")
        else:
            for replica in report:
                before = known.get(replica.url)
                known[replica.url] = replica.healthy
                if before is None and not replica.healthy:
                    log.info(
                        "agent %s at %s is not up (%s)", replica.agent, replica.url, replica.detail
                    )
                elif before is True and not replica.healthy:
                    log.warning(
                        "agent %s at %s went down (%s)", replica.agent, replica.url, replica.detail
                    )
                elif before is False and replica.healthy:
                    log.info("agent %s at %s is back", replica.agent, replica.url)
        await asyncio.sleep(AGENT_HEALTH_INTERVAL_SECONDS)


class SchemaNotCurrent(RuntimeError):
    """The database is not migrated to the newest revision."""


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    database = create_database(settings.effective_database_url)
    try:
        if not await is_current(database):
            raise SchemaNotCurrent(
                "the database schema is not current: run `aurora db upgrade` first"
            )
        app[DATABASE] = database
        authenticator = Authenticator(
            database=database,
            tokens=app[TOKENS],
            user_cache_ttl=settings.auth_cache_ttl_seconds,
        )
        await authenticator.load_revocations()
        app[AUTHENTICATOR] = authenticator
        async with database.session() as db:
            app[RUNTIME].apply(await load_runtime(db=db))
        if not app[LEDGER_KEYS].legacy_sealed:
            async with database.session() as db:
                await seal_legacy_ledgers(db=db, keys=app[LEDGER_KEYS])
        refresher = asyncio.create_task(authenticator.run_refresh(), name="revocation-refresh")
        recorder = ToolCallRecorder(database=database, bus=app[BUS])
        recorder.start()
        app[RECORDER] = recorder
        app[HANDOFF].on_notification = recorder.on_notification
        app[LLM] = LLMBackend.from_settings(settings)
        logstore = LogStore.from_settings(settings)
        try:
            await logstore.start()
        except ClickHouseUnavailable:
            # The gateway serves everything else; log routes answer AURORA-5032 until the
            # store is back (each call tries again).
            log.exception("the log store is not available")
        app[LOGSTORE] = logstore
        if removed := clear_spool(spool_dir(settings.data_dir)):
            log.info("removed %d ingest spool file(s) an earlier run left", removed)
        ingest = IngestParser(settings.ingest_workers)
        ingest.start()
        app[INGEST] = ingest
        sigma = SigmaConverter()
        app[SIGMA] = sigma
        scheduler = DetectionScheduler(
            database=database,
            store=logstore,
            dedup_window=lambda: app[RUNTIME].config.alert_dedup_window_seconds,
        )
        scheduler.start()
        prober = asyncio.create_task(_probe_agents(app[HANDOFF]), name="agent-health")
        runtime = app[RUNTIME]
        available = frozenset(app[HANDOFF].registry.names())
        llm = app[LLM]
        async with open_checkpointer(
            settings.effective_database_url, settings.data_dir
        ) as checkpointer:
            deps = GraphDeps(
                client=app[HANDOFF],
                available=available,
                call_timeout=settings.acp_call_timeout_seconds,
                policy=policy_from_settings(settings),
                executor=LedgerExecutor(database=database, bus=app[BUS]),
                llm=llm,
                planner_tools=PlannerTools(app[HANDOFF], available) if llm else None,
            )
            runner = InvestigationRunner(
                database=database,
                graph=build_graph(deps, checkpointer=checkpointer),
                bus=app[BUS],
                concurrency=lambda: runtime.config.max_concurrent_investigations,
                mode=lambda: runtime.mode.value,
                approval_timeout=lambda: runtime.config.approval_timeout_seconds,
                checkpointer=checkpointer,
                retention=timedelta(hours=settings.checkpoint_retention_hours),
            )
            app[RUNNER] = runner
            await runner.start()
            yield
            await runner.stop()
        prober.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await prober
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await app[HANDOFF].close()
        await recorder.close()
        await scheduler.stop()
        if llm is not None:
            await llm.close()
        await ingest.close()
        await sigma.close()
        await logstore.close()
    finally:
        await database.dispose()


def create_app(settings: Settings, *, extra_routes: Iterable[Route] = ()) -> web.Application:
    """Build the gateway for ``settings``; resources open on start-up and close on cleanup.

    ``extra_routes`` lets an embedding program (or a test) add routes that go through the same
    middleware and access rules.
    """
    ensure_data_dir(settings)
    routes = (*ALL_ROUTES, *INDEX_ROUTES, *extra_routes)
    # aiohttp's own readers (forms) stop at the default; routes with a larger limit read their
    # bodies through gateway.http, which enforces each route's limit while reading.
    app = web.Application(
        middlewares=[context_middleware, auth_middleware], client_max_size=settings.max_body_bytes
    )
    app[SETTINGS] = settings
    app[METRICS] = create_metrics()
    app[BUS] = EventBus()
    app[TOKENS] = TokenService.from_settings(settings)
    app[HASHER] = PasswordHasher.from_settings(settings)
    app[RUNTIME] = RuntimeState()
    app[BLOBS] = BlobStore(settings.data_dir / "evidence", max_bytes=settings.evidence_max_bytes)
    app[LEDGER_KEYS] = Keyring.from_settings(settings)
    app[HANDOFF] = HandoffClient(
        registry=AgentRegistry.from_settings(settings),
        sender="gateway",
        token=AgentToken(app[TOKENS]),
        default_timeout=settings.acp_call_timeout_seconds,
        max_frame_bytes=settings.acp_max_frame_bytes,
        startup_grace=settings.acp_startup_grace_seconds,
    )
    table = {}
    for route in routes:
        registered = app.router.add_route(route.http_method, route.path, route.handler)
        table[registered] = route
    app[ROUTE_TABLE] = table
    app.cleanup_ctx.append(_resources)
    app.on_response_prepare.append(add_standard_headers)
    return app


def registered_routes(app: web.Application) -> list[Route]:
    """The routes of ``app``'s route table."""
    return list(app[ROUTE_TABLE].values())
