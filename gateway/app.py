"""``create_app(settings)``: the gateway application, its resources and its route table."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from agents.acp.client import HandoffClient
from agents.acp.registry import AgentRegistry
from agents.acp.server import AGENT_TOKEN_TYPE
from core.blobs import BlobStore
from core.bridge import BusBridge
from core.db import Database, create_database
from core.db.leases import Lease, process_identity
from core.db.migrate import is_current
from core.errors import ClickHouseUnavailable, Conflict
from core.events import Event, EventBus, Gap
from core.guardrails import policy_from_settings
from core.ledger import Keyring
from core.llm import LLMBackend
from core.logstore.store import LogStore
from core.loops import Periodic
from core.metrics import create_metrics
from core.security.passwords import PasswordHasher
from core.security.tokens import TokenService
from core.settings import JwtAlgorithm, Settings, ensure_data_dir, jwt_hmac_secret
from gateway.alerts.routes import ROUTES as ALERTS_ROUTES
from gateway.auth.routes import ROUTES as AUTH_ROUTES
from gateway.auth.service import Authenticator, Principal
from gateway.cases.evidence.routes import ROUTES as EVIDENCE_ROUTES
from gateway.cases.evidence.service import seal_legacy_ledgers
from gateway.cases.routes import ROUTES as CASES_ROUTES
from gateway.chat.engine import ChatEngine
from gateway.chat.routes import ROUTES as CHAT_ROUTES
from gateway.chat.tools import ToolEnv
from gateway.console.assets import STATIC_ROOT, Console
from gateway.console.routes import CONSOLE_ROUTES
from gateway.detections.conversion import SigmaConverter
from gateway.detections.routes import ROUTES as DETECTIONS_ROUTES
from gateway.detections.runs import DetectionScheduler
from gateway.edr.routes import ROUTES as EDR_ROUTES
from gateway.edr.service import EdrService, open_edr
from gateway.fleet.routes import ROUTES as FLEET_ROUTES
from gateway.fleet.service import ToolCallRecorder
from gateway.index import INDEX_ROUTES
from gateway.investigations import service as investigations
from gateway.investigations.executor import Handler, LedgerExecutor
from gateway.investigations.routes import ROUTES as INVESTIGATIONS_ROUTES
from gateway.investigations.schemas import InvestigateRequest
from gateway.investigations.service import SEGMENT_ENDS, InvestigationRunner
from gateway.keys import (
    ATTACK_KB,
    AUTHENTICATOR,
    BLOBS,
    BUS,
    CHAT,
    CONSOLE,
    DATABASE,
    EDR,
    HANDOFF,
    HASHER,
    INGEST,
    LEDGER_KEYS,
    LLM,
    LOGSTORE,
    METRICS,
    NETWORK,
    RECORDER,
    REPLICA,
    ROUTE_TABLE,
    RUNNER,
    RUNTIME,
    SCHEDULER,
    SETTINGS,
    SIGMA,
    SOAR,
    SSO,
    TOKENS,
)
from gateway.lifecycle import CleanupContext, background, resource, step
from gateway.middleware import add_standard_headers, context_middleware
from gateway.network.routes import ROUTES as NETWORK_ROUTES
from gateway.network.scheduler import NetworkScheduler
from gateway.routing import Route
from gateway.siem.parsing import IngestParser, clear_spool, spool_dir
from gateway.siem.routes import ROUTES as SIEM_ROUTES
from gateway.soar.automation import Automation
from gateway.soar.definition import load_builtin
from gateway.soar.engine import AttributedBus, SoarEngine, origin
from gateway.soar.models import PlaybookExecution
from gateway.soar.routes import ROUTES as SOAR_ROUTES
from gateway.soar.service import install_builtin
from gateway.soar.steps import StepEnv
from gateway.sso.routes import METADATA_ROUTES, open_sso
from gateway.sso.routes import ROUTES as SSO_ROUTES
from gateway.system.routes import ROUTES as SYSTEM_ROUTES
from gateway.system.service import RuntimeState, load_runtime
from gateway.users.routes import ROUTES as USERS_ROUTES
from orchestrator.actions import ActionOrder
from orchestrator.checkpoints import open_checkpointer
from orchestrator.context import GraphContext
from orchestrator.graph import build_graph
from orchestrator.planner import PlannerTools
from tools.attack import AttackKB
from tools.edr.base import EdrAction

log = logging.getLogger("aurora.gateway")

ALL_ROUTES: tuple[Route, ...] = (
    *AUTH_ROUTES,
    *SSO_ROUTES,
    *USERS_ROUTES,
    *ALERTS_ROUTES,
    *CASES_ROUTES,
    *EVIDENCE_ROUTES,
    *SYSTEM_ROUTES,
    *FLEET_ROUTES,
    *INVESTIGATIONS_ROUTES,
    *SIEM_ROUTES,
    *DETECTIONS_ROUTES,
    *EDR_ROUTES,
    *SOAR_ROUTES,
    *NETWORK_ROUTES,
    *CHAT_ROUTES,
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


class SchemaNotCurrent(RuntimeError):
    """The database is not migrated to the newest revision."""


def _agent_health(app: web.Application) -> Callable[[], Awaitable[None]]:
    """One probe of every agent replica, so calls skip the ones that are down; logs when a
    replica goes down or comes back."""
    client = app[HANDOFF]
    known: dict[str, bool] = {}

    async def probe() -> None:
        for replica in await client.check_health():
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

    return probe


@contextlib.asynccontextmanager
async def _database(app: web.Application) -> AsyncIterator[Database]:
    database = create_database(app[SETTINGS].effective_database_url)
    try:
        if not await is_current(database):
            raise SchemaNotCurrent(
                "the database schema is not current: run `aurora db upgrade` first"
            )
        yield database
    finally:
        await database.dispose()


@contextlib.asynccontextmanager
async def _agents_closed(app: web.Application) -> AsyncIterator[None]:
    """The connections to the agents, closed once everything that calls them has stopped."""
    try:
        yield
    finally:
        await app[HANDOFF].close()


@contextlib.asynccontextmanager
async def _authenticator(app: web.Application) -> AsyncIterator[Authenticator]:
    settings = app[SETTINGS]
    authenticator = Authenticator(
        database=app[DATABASE],
        tokens=app[TOKENS],
        user_cache_ttl=settings.auth_cache_ttl_seconds,
    )
    await authenticator.load_revocations()
    yield authenticator


@contextlib.asynccontextmanager
async def _replica_follower(app: web.Application) -> AsyncIterator[None]:
    """What another replica changed (heard through the bridge) takes effect here at once:
    runtime settings are loaded again; a revoked token or a deleted account ends its sessions
    here too (without waiting for the revocation refresh)."""
    subscription = app[BUS].subscribe(
        "system.settings.changed",
        "auth.*",
        "users.*",
        maxsize=64,
        where=lambda event: event.origin is not None,
    )

    async def follow() -> None:
        async for item in subscription:
            try:
                if isinstance(item, Gap) or item.topic == "system.settings.changed":
                    async with app[DATABASE].session() as db:
                        app[RUNTIME].apply(await load_runtime(db=db))
                if isinstance(item, Gap) or item.topic != "system.settings.changed":
                    if isinstance(item, Event) and (user_id := item.payload.get("user_id")):
                        app[AUTHENTICATOR].forget_user(str(user_id))
                    await app[AUTHENTICATOR].refresh()
            except Exception:
                log.exception("could not apply what another replica changed")

    task = asyncio.create_task(follow(), name="replica-follower")
    try:
        yield
    finally:
        subscription.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _load_state(app: web.Application) -> None:
    """The runtime settings, and the seal over ledgers written before they were keyed."""
    async with app[DATABASE].session() as db:
        app[RUNTIME].apply(await load_runtime(db=db))
    if not app[LEDGER_KEYS].legacy_sealed:
        async with app[DATABASE].session() as db:
            await seal_legacy_ledgers(db=db, keys=app[LEDGER_KEYS])


def _recorder(app: web.Application) -> ToolCallRecorder:
    return ToolCallRecorder(database=app[DATABASE], bus=app[BUS], client=app[HANDOFF])


@contextlib.asynccontextmanager
async def _llm(app: web.Application) -> AsyncIterator[LLMBackend | None]:
    llm = LLMBackend.from_settings(app[SETTINGS])
    try:
        yield llm
    finally:
        if llm is not None:
            await llm.close()


@contextlib.asynccontextmanager
async def _logstore(app: web.Application) -> AsyncIterator[LogStore]:
    logstore = LogStore.from_settings(app[SETTINGS])
    try:
        if logstore.owned:
            await logstore.start()
        else:
            log.info("the embedded log store is another gateway's (AURORA_LOG_STORE_OWNER=false)")
    except ClickHouseUnavailable:
        # The gateway serves everything else; log routes answer AURORA-5032 until the store
        # is back (each call tries again).
        log.exception("the log store is not available")
    try:
        yield logstore
    finally:
        await logstore.close()


@contextlib.asynccontextmanager
async def _ingest(app: web.Application) -> AsyncIterator[IngestParser]:
    settings = app[SETTINGS]
    if removed := clear_spool(spool_dir(settings.data_dir)):
        log.info("removed %d ingest spool file(s) an earlier run left", removed)
    ingest = IngestParser(settings.ingest_workers)
    ingest.start()
    try:
        yield ingest
    finally:
        await ingest.close()


@contextlib.asynccontextmanager
async def _sigma(app: web.Application) -> AsyncIterator[SigmaConverter]:
    sigma = SigmaConverter()
    try:
        yield sigma
    finally:
        await sigma.close()


def edr_handlers(edr: EdrService) -> dict[str, Handler]:
    """The investigations' response actions the EDR connectors carry out."""

    def handler(action: EdrAction) -> Handler:
        async def carry_out(order: ActionOrder) -> dict[str, Any]:
            return await edr.carry_out(
                action=action,
                target=order.target,
                key=order.key,
                actor=f"investigation:{order.investigation_id}",
                reason=order.reason,
                approved_by=order.approved_by,
            )

        return carry_out

    return {
        "isolate_host": handler(EdrAction.ISOLATE),
        "release_host": handler(EdrAction.UNISOLATE),
        "scan_host": handler(EdrAction.SCAN),
    }


def _store_job[T: Periodic](
    make: Callable[[web.Application], T],
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[T]]:
    """``make``'s job, run only where the log store is this process's: a gateway that leaves
    the embedded store to another has the job (its state reads as not running) and runs nothing
    (its lease would make it the only one, reading a store it does not have)."""

    @contextlib.asynccontextmanager
    async def opener(app: web.Application) -> AsyncIterator[T]:
        job = make(app)
        if not app[LOGSTORE].owned:
            yield job
            return
        async with job:
            yield job

    return opener


def _network(app: web.Application) -> NetworkScheduler:
    return NetworkScheduler(
        database=app[DATABASE],
        store=app[LOGSTORE],
        publish=app[BUS].publish,
        metrics=app[METRICS],
        lease=Lease(app[DATABASE], holder=app[REPLICA]),
    )


def _scheduler(app: web.Application) -> DetectionScheduler:
    return DetectionScheduler(
        database=app[DATABASE],
        store=app[LOGSTORE],
        dedup_window=lambda: app[RUNTIME].config.alert_dedup_window_seconds,
        publish=app[BUS].publish,
        lease=Lease(app[DATABASE], holder=app[REPLICA]),
    )


@contextlib.asynccontextmanager
async def _edr(app: web.Application) -> AsyncIterator[EdrService]:
    runtime = app[RUNTIME]
    async with open_edr(
        settings=app[SETTINGS],
        database=app[DATABASE],
        bus=app[BUS],
        logstore=app[LOGSTORE],
        mode=lambda: runtime.mode,
        approval_timeout=lambda: runtime.config.approval_timeout_seconds,
        env=os.environ,
        metrics=app[METRICS],
        lease=Lease(app[DATABASE], holder=app[REPLICA]),
    ) as edr:
        yield edr


@contextlib.asynccontextmanager
async def _runner(app: web.Application) -> AsyncIterator[InvestigationRunner]:
    settings = app[SETTINGS]
    database = app[DATABASE]
    runtime = app[RUNTIME]
    available = frozenset(app[HANDOFF].registry.names())
    llm = app[LLM]
    async with open_checkpointer(
        settings.effective_database_url, settings.data_dir
    ) as checkpointer:
        context = GraphContext(
            client=app[HANDOFF],
            available=available,
            call_timeout=settings.acp_call_timeout_seconds,
            policy=policy_from_settings(settings),
            executor=LedgerExecutor(
                database=database,
                bus=app[BUS],
                handlers=edr_handlers(app[EDR]),
                metrics=app[METRICS],
            ),
            llm=llm,
            planner_tools=PlannerTools(app[HANDOFF], available) if llm else None,
            # Loaded by the first investigation that has text to map, not at start-up.
            attack=app[ATTACK_KB],
        )
        async with InvestigationRunner(
            database=database,
            graph=build_graph(checkpointer=checkpointer),
            context=context,
            bus=app[BUS],
            concurrency=lambda: runtime.config.max_concurrent_investigations,
            mode=lambda: runtime.mode.value,
            approval_timeout=lambda: runtime.config.approval_timeout_seconds,
            checkpointer=checkpointer,
            retention=timedelta(hours=settings.checkpoint_retention_hours),
            lease=Lease(database, holder=app[REPLICA]),
            owner=app[REPLICA],
            # The specialists use the model the planner does (one setting for the platform).
            segment_ends=SEGMENT_ENDS if llm is not None else (),
        ) as runner:
            yield runner


@contextlib.asynccontextmanager
async def _soar(app: web.Application) -> AsyncIterator[SoarEngine]:
    """The playbook engine, after the shipped playbooks the database lacks are installed."""
    settings = app[SETTINGS]
    runtime = app[RUNTIME]
    for attempt in range(3):
        try:
            async with app[DATABASE].session() as db:
                if added := await install_builtin(db=db, definitions=load_builtin()):
                    log.info("installed %d built-in playbook version(s)", added)
            break
        except (IntegrityError, Conflict):
            # Another replica starting at the same time installed them first: look again.
            if attempt == 2:
                raise
    base = StepEnv(
        database=app[DATABASE],
        bus=app[BUS],
        handoff=app[HANDOFF],
        logstore=app[LOGSTORE],
        edr=app[EDR],
        settings=settings,
        execution_id="",
        actor="",
        mode=runtime.mode.value,
        webhook_url=settings.soar_webhook_url,
    )

    def env(execution: PlaybookExecution) -> StepEnv:
        chain = origin(execution)
        return dataclasses.replace(
            base,
            bus=base.bus if chain is None else AttributedBus(base.bus, chain),
            execution_id=execution.id,
            actor=f"playbook:{execution.playbook_id}",
            mode=execution.mode,
            playbook_id=execution.playbook_id,
        )

    async with SoarEngine(
        database=app[DATABASE],
        bus=app[BUS],
        env=env,
        policy=policy_from_settings(settings),
        mode=lambda: runtime.mode.value,
        approval_timeout=lambda: runtime.config.approval_timeout_seconds,
        concurrency=lambda: runtime.config.max_concurrent_investigations,
        metrics=app[METRICS],
        owner=app[REPLICA],
    ) as engine:
        yield engine


class _Dispatcher:
    """Automation's way to dispatch an investigation: queued as the API's are."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def dispatch(
        self, *, actor: str, alert_id: str | None, case_id: str | None, priority: str
    ) -> str:
        body = InvestigateRequest.model_validate(
            {"alert_id": alert_id, "case_id": case_id, "priority": priority}
        )
        async with self._app[DATABASE].session() as db:
            investigation = await investigations.enqueue(db=db, actor=actor, body=body)
        self._app[RUNNER].wake()
        return investigation.id


@contextlib.asynccontextmanager
async def _automation(app: web.Application) -> AsyncIterator[None]:
    metrics = app[METRICS]
    automation = Automation(
        database=app[DATABASE],
        bus=app[BUS],
        engine=app[SOAR],
        dispatch=_Dispatcher(app),
        on_outcome=lambda trigger, outcome: metrics.automation_firings.labels(
            trigger=trigger, outcome=outcome
        ).inc(),
        on_lost=metrics.automation_events_lost.inc,
    )
    async with automation:
        yield


def platform_secrets(settings: Settings) -> list[str]:
    """The platform's own secrets, which no chat answer may show: every secret setting, the
    database password, and the token signing key."""
    found = [
        value.get_secret_value()
        for value in settings.model_dump().values()
        if isinstance(value, SecretStr)
    ]
    url = make_url(settings.effective_database_url)
    if url.password:
        found.append(str(url.password))
    if settings.jwt_algorithm is JwtAlgorithm.HS256:
        found.append(jwt_hmac_secret(settings))
    return [value for value in found if value]


@contextlib.asynccontextmanager
async def _chat(app: web.Application) -> AsyncIterator[ChatEngine]:
    def tool_env(caller: Principal) -> ToolEnv:
        return ToolEnv(
            database=app[DATABASE],
            logstore=app[LOGSTORE],
            handoff=app[HANDOFF],
            wake_runner=app[RUNNER].wake,
            attack=app[ATTACK_KB],
            sigma=app[SIGMA],
            principal=caller,
        )

    engine = ChatEngine(
        database=app[DATABASE],
        llm=app[LLM],
        tool_env=tool_env,
        platform_secrets=platform_secrets(app[SETTINGS]),
    )
    try:
        yield engine
    finally:
        await engine.close()


@contextlib.asynccontextmanager
async def _bridge(app: web.Application) -> AsyncIterator[None]:
    """With PostgreSQL, this replica's bus shares its events with the other replicas'
    (core.bridge); alone on SQLite there are no others."""
    url = app[SETTINGS].effective_database_url
    if make_url(url).get_backend_name() != "postgresql":
        yield
        return
    async with BusBridge(app[BUS], app[DATABASE], url=url, origin=app[REPLICA]):
        yield


RESOURCES: tuple[CleanupContext, ...] = (
    resource(DATABASE, _database),
    _bridge,
    _agents_closed,
    resource(AUTHENTICATOR, _authenticator),
    resource(SSO, open_sso),
    background(
        "revocation-refresh",
        lambda app: app[AUTHENTICATOR].refresh_step,
        lambda app: app[AUTHENTICATOR].refresh_interval,
        log=log,
        first_wait=True,
    ),
    step(_load_state),
    _replica_follower,
    resource(RECORDER, _recorder),
    resource(LLM, _llm),
    resource(LOGSTORE, _logstore),
    resource(INGEST, _ingest),
    resource(SIGMA, _sigma),
    resource(SCHEDULER, _store_job(_scheduler)),
    background("agent-health", _agent_health, lambda app: AGENT_HEALTH_INTERVAL_SECONDS, log=log),
    resource(EDR, _edr),
    resource(RUNNER, _runner),
    resource(SOAR, _soar),
    _automation,
    resource(NETWORK, _store_job(_network)),
    resource(CHAT, _chat),
)
"""What the gateway opens at start-up, in order; aiohttp closes them in reverse order at
cleanup, and when one fails to start, closes those already open."""


def create_app(
    settings: Settings, *, extra_routes: Iterable[Route] = (), console_root: Path = STATIC_ROOT
) -> web.Application:
    """Build the gateway for ``settings``; resources open on start-up and close on cleanup.

    ``extra_routes`` lets an embedding program (or a test) add routes that go through the same
    middleware and access rules; ``console_root`` is the folder the web console is served from
    (the shipped one unless a test says).
    """
    ensure_data_dir(settings)
    routes = (*ALL_ROUTES, *INDEX_ROUTES, *METADATA_ROUTES, *CONSOLE_ROUTES, *extra_routes)
    # aiohttp's own readers (forms) stop at the default; routes with a larger limit read their
    # bodies through gateway.http, which enforces each route's limit while reading.
    app = web.Application(middlewares=[context_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = create_metrics()
    app[REPLICA] = process_identity()
    app[BUS] = EventBus()
    app[TOKENS] = TokenService.from_settings(settings)
    app[HASHER] = PasswordHasher.from_settings(settings)
    app[RUNTIME] = RuntimeState()
    app[BLOBS] = BlobStore.from_settings(settings)
    app[LEDGER_KEYS] = Keyring.from_settings(settings)
    # Loaded by its first user (an investigation with text to map, the coverage map), not at
    # start-up.
    load_attack: Callable[[], AttackKB] = functools.cache(
        functools.partial(AttackKB.from_settings, settings)
    )
    app[ATTACK_KB] = load_attack
    app[CONSOLE] = Console(console_root)
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
    app.cleanup_ctx.extend(RESOURCES)
    app.on_response_prepare.append(add_standard_headers)
    return app


def registered_routes(app: web.Application) -> list[Route]:
    """The routes of ``app``'s route table."""
    return list(app[ROUTE_TABLE].values())
