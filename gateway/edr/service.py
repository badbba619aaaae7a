"""EDR: the endpoint inventory and the response actions taken through the connectors.

The inventory merges two sources into one row per host (keyed by its lower-case short name):
the hosts the platform's own log store has events about (``host.name``, ``host.ip``) and the
endpoints each configured connector lists. :meth:`EdrService.refresh` rebuilds it every
``edr_refresh_seconds``.

An action requested over the API (:meth:`EdrService.request_action`) is decided here: the
guardrail policy on the host (and on each of its addresses: the strictest decision wins) under
the runtime mode. ``dry_run`` records it, ``monitor`` proposes it, ``active`` carries it out or
asks a human (an approval whose owner and id are the action's id); a denial is recorded and
refused. :meth:`EdrService.carry_out` is for callers that decided themselves (the SOAR engine,
the responder): it only carries the action out.

At most once: an action reaches a connector only through the writer whose write moved its row
to ``requested`` (the insert of a unique ``key``, or the claim of an approved action), and the
row is never moved back. An attempt that died between handing the action over and recording
the answer leaves ``requested``, which becomes ``unknown`` and is never repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from time import monotonic
from types import TracebackType
from typing import Any, Final, Self

from sqlalchemy import String, cast, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.db.base import utcnow
from core.db.leases import Lease
from core.db.lookup import get_or_404
from core.db.pages import equal, fetch_page
from core.db.sequences import next_id
from core.errors import AuroraError, Conflict, GuardrailDenied, InternalError, NotFound
from core.events import EventBus, Gap
from core.guardrails import (
    ActionRequest,
    GuardrailPolicy,
    GuardrailVerdict,
    Outcome,
    decide,
    policy_from_settings,
)
from core.logstore.store import LogStore
from core.loops import Periodic
from core.metrics import Metrics
from core.runtime import SystemMode
from core.settings import Settings
from core.tasks import cancel_and_wait
from core.validation import field_error
from gateway.alerts.models import Alert
from gateway.cases.models import Case, CaseObservable
from gateway.edr.models import EdrActionRecord, Endpoint
from gateway.edr.schemas import (
    GUARDRAIL_ACTIONS,
    ActionState,
    AlertMention,
    CaseMention,
    ConnectorStatus,
    EdrActionRead,
    EdrStats,
    EndpointDetail,
    EndpointListQuery,
    EndpointRead,
    EndpointSource,
)
from gateway.investigations import approvals
from gateway.investigations.models import Approval
from tools.edr.base import (
    ActionReceipt,
    ActionStatus,
    ConnectorEndpoint,
    EdrAction,
    EdrConnector,
    EndpointState,
)
from tools.edr.config import load_connectors

log = logging.getLogger("aurora.edr")

TOPIC: Final = "edr.actions"
"""Bus topic of every change of an EDR action (payload: the action as :class:`EdrActionRead`)."""
OWNER_PREFIX: Final = "EDR-"
"""EDR action ids (and so the ids and owners of their approvals) start with this."""
MAX_IPS: Final = 16
STALE_REQUEST: Final = timedelta(minutes=5)
"""A ``requested`` action older than this is an attempt that died: it becomes ``unknown``."""
ACTION_TICK_SECONDS: Final = 15.0
"""How often actions the product has not finished are asked about."""
UNKNOWN_REFRESH_SECONDS: Final = 10.0
"""How often an action on a host the inventory does not know may rebuild it first."""
KEY_MAX: Final = 200
"""The longest action key (the ``edr_actions.key`` column)."""
RECENT: Final = 20
"""How many recent alerts, cases and actions an endpoint's detail shows."""

OUTCOME_STATUS: Final[dict[Outcome, ActionState]] = {
    Outcome.RECORD_ONLY: ActionState.RECORDED,
    Outcome.PROPOSE: ActionState.PROPOSED,
    Outcome.EXECUTE: ActionState.REQUESTED,
    Outcome.AWAIT_APPROVAL: ActionState.AWAITING_APPROVAL,
    Outcome.DENIED: ActionState.DENIED,
}
FINISHED: Final = frozenset(
    {
        ActionState.RECORDED,
        ActionState.PROPOSED,
        ActionState.DENIED,
        ActionState.EXPIRED,
        ActionState.SUCCEEDED,
        ActionState.FAILED,
        ActionState.UNKNOWN,
    }
)
HOST_TYPES: Final = frozenset({"host", "hostname", "fqdn"})


# -- names --------------------------------------------------------------------------------


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host_key(name: str) -> str:
    """The inventory's key of a host name: lower case, the short name of an FQDN (an address
    stays whole)."""
    value = name.strip().rstrip(".").lower()
    if "\\" in value:  # DOMAIN\HOST
        value = value.rsplit("\\", 1)[1]
    return value if _is_ip(value) else value.split(".", 1)[0]


def _fqdn(name: str) -> str | None:
    value = name.strip().rstrip(".").lower()
    return value if "." in value and not _is_ip(value) else None


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _latest(*values: datetime | None) -> datetime | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _earliest(*values: datetime | None) -> datetime | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _merge_ips(*groups: Iterable[str]) -> list[str]:
    merged = dict.fromkeys(ip.strip() for group in groups for ip in group if ip and ip.strip())
    return list(merged)[:MAX_IPS]


def _like_quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f'%"{escaped}"%'


# -- reads --------------------------------------------------------------------------------


async def get_endpoint(*, db: AsyncSession, endpoint_id: str) -> Endpoint:
    """The endpoint; AURORA-4040 when there is none."""
    return await get_or_404(db, Endpoint, endpoint_id, name="endpoint_id")


async def find_endpoint(db: AsyncSession, target: str) -> Endpoint | None:
    """The endpoint ``target`` names: its id, its host name or FQDN (any case), or one of its
    addresses."""
    text = target.strip()
    if not text or len(text) > 255:
        return None
    by_id = await db.get(Endpoint, text)
    if by_id is not None:
        return by_id
    lowered = text.rstrip(".").lower()
    found = await db.scalar(
        select(Endpoint)
        .where(or_(Endpoint.hostname == host_key(lowered), Endpoint.fqdn == lowered))
        .order_by(Endpoint.id)
        .limit(1)
    )
    if found is not None or not _is_ip(lowered):
        return found
    candidates = await db.scalars(
        select(Endpoint)
        .where(cast(Endpoint.ips, String).like(_like_quoted(lowered), escape="\\"))
        .order_by(Endpoint.last_seen.desc())
    )
    return next((e for e in candidates if lowered in e.ips), None)


async def list_endpoints(
    *, db: AsyncSession, query: EndpointListQuery
) -> tuple[list[Endpoint], int]:
    """One page of the endpoints matching the query's filters, in its order."""
    where = equal(
        (Endpoint.state, query.state),
        (Endpoint.connector, query.connector),
        (Endpoint.source, query.source),
    )
    if query.search is not None:
        escaped = query.search.lower().replace("\\", "\\\\").replace("%", "\\%")
        pattern = "%" + escaped.replace("_", "\\_") + "%"
        where.append(
            or_(
                Endpoint.hostname.like(pattern, escape="\\"),
                Endpoint.fqdn.like(pattern, escape="\\"),
                cast(Endpoint.ips, String).like(pattern, escape="\\"),
            )
        )
    return await fetch_page(
        db, Endpoint, where=where, sort=query.sort, limit=query.limit, offset=query.offset
    )


def _names(endpoint: Endpoint) -> set[str]:
    return {n for n in (endpoint.hostname, endpoint.fqdn, *endpoint.ips) if n}


async def _alerts_naming(db: AsyncSession, endpoint: Endpoint) -> list[AlertMention]:
    names = _names(endpoint)
    # A cheap pre-filter on the stored JSON text, then the exact test on the entities.
    candidates = await db.scalars(
        select(Alert)
        .where(
            or_(*(cast(Alert.entities, String).like(_like_quoted(n), escape="\\") for n in names))
        )
        .order_by(Alert.last_seen.desc())
        .limit(RECENT * 10)
    )
    found = []
    for alert in candidates:
        for entity in alert.entities:
            value = str(entity.get("value", "")).lower()
            kind = entity.get("type")
            if (kind in HOST_TYPES and host_key(value) == endpoint.hostname) or (
                kind == "ip" and value in endpoint.ips
            ):
                found.append(
                    AlertMention(
                        id=alert.id,
                        title=alert.title,
                        severity=alert.severity,
                        status=alert.status,
                        last_seen=alert.last_seen,
                    )
                )
                break
        if len(found) >= RECENT:
            break
    return found


async def _cases_naming(db: AsyncSession, endpoint: Endpoint) -> list[CaseMention]:
    hosts = [n for n in (endpoint.hostname, endpoint.fqdn) if n]
    rows = await db.execute(
        select(Case, CaseObservable.value)
        .join(CaseObservable, CaseObservable.case_id == Case.id)
        .where(
            Case.deleted_at.is_(None),
            or_(
                CaseObservable.type.in_(HOST_TYPES) & func.lower(CaseObservable.value).in_(hosts),
                (CaseObservable.type == "ip") & CaseObservable.value.in_(endpoint.ips or [""]),
            ),
        )
        .order_by(Case.created_at.desc())
        .limit(RECENT * 4)
    )
    seen: dict[str, CaseMention] = {}
    for case_, value in rows:
        seen.setdefault(
            case_.id,
            CaseMention(
                id=case_.id,
                title=case_.title,
                severity=case_.severity,
                status=case_.status,
                observable=value,
            ),
        )
    return list(seen.values())[:RECENT]


async def endpoint_detail(*, db: AsyncSession, endpoint_id: str) -> EndpointDetail:
    """The endpoint with the recent alerts and the cases that name it, and its last actions;
    AURORA-4040 when there is none."""
    endpoint = await get_endpoint(db=db, endpoint_id=endpoint_id)
    actions = await db.scalars(
        select(EdrActionRecord)
        .where(EdrActionRecord.endpoint_id == endpoint.id)
        .order_by(EdrActionRecord.created_at.desc(), EdrActionRecord.id.desc())
        .limit(RECENT)
    )
    return EndpointDetail(
        **EndpointRead.model_validate(endpoint).model_dump(),
        recent_alerts=await _alerts_naming(db, endpoint),
        cases=await _cases_naming(db, endpoint),
        recent_actions=[EdrActionRead.model_validate(a) for a in actions],
    )


async def _counts(db: AsyncSession, *columns: Any) -> list[tuple[Any, ...]]:
    model = columns[0].class_
    rows = await db.execute(select(*columns, func.count()).select_from(model).group_by(*columns))
    return [tuple(row) for row in rows]


# -- the service --------------------------------------------------------------------------


@dataclass(slots=True)
class _Seen:
    """A host as the logs know it."""

    ips: list[str]
    first: datetime | None
    last: datetime | None
    events: int
    fqdn: str | None


@dataclass(slots=True)
class _ConnectorHealth:
    product: str
    endpoints: int = 0
    last_refresh: datetime | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What an action request led to (:meth:`EdrService.request_action`)."""

    action: EdrActionRead
    endpoint: EndpointRead
    replayed: bool = False


@dataclass(slots=True)
class _Refresh:
    at: datetime | None = None
    connectors: dict[str, _ConnectorHealth] = field(default_factory=dict)


class EdrService:
    """The inventory, the actions and their connectors (see the module docstring).

    An app resource: :meth:`start` sweeps what a stopped gateway left (approvals decided
    meanwhile, attempts that died), then listens to ``approvals.decided`` and runs the
    inventory refresh and the action poll; :meth:`close` stops them and closes the connectors.
    It is also an async context manager.
    """

    def __init__(
        self,
        *,
        database: Database,
        bus: EventBus,
        connectors: Sequence[EdrConnector],
        policy: GuardrailPolicy,
        mode: Callable[[], SystemMode],
        approval_timeout: Callable[[], float],
        logstore: LogStore | None = None,
        metrics: Metrics | None = None,
        refresh_seconds: float = 300.0,
        enrol_telemetry: bool | None = None,
        lease: Lease | None = None,
    ) -> None:
        """``enrol_telemetry``: hosts only the logs know are enrolled with the lab connector
        (so a lab can act on them); by default only when every connector is a lab one (with a
        real product, a host it does not manage is never handed to the lab: its "isolated"
        would be a fiction)."""
        self._db = database
        self._bus = bus
        self._connectors = {c.name: c for c in connectors}
        self._policy = policy
        self._mode = mode
        self._approval_timeout = approval_timeout
        self._logstore = logstore
        self._metrics = metrics
        self._enrol = (
            all(c.product == "lab" for c in connectors)
            if enrol_telemetry is None
            else enrol_telemetry
        )
        self._state = _Refresh(
            connectors={c.name: _ConnectorHealth(product=c.product) for c in connectors}
        )
        self._refresh_lock = asyncio.Lock()
        self._refreshed_at: float | None = None
        self.unknown_refresh_seconds = UNKNOWN_REFRESH_SECONDS
        """An unknown target rebuilds the inventory first when the last rebuild is older."""
        self._loops = (
            Periodic("edr-inventory", self.refresh, refresh_seconds, log=log),
            Periodic(
                "edr-actions",
                self.tick,
                ACTION_TICK_SECONDS,
                log=log,
                first_wait=True,
                lease=lease,
            ),
        )
        self._listener: asyncio.Task[None] | None = None

    @property
    def connectors(self) -> dict[str, EdrConnector]:
        return dict(self._connectors)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for decisions, settle what was decided while nothing listened, start the
        loops."""
        subscription = self._bus.subscribe(
            "approvals.decided",
            maxsize=256,
            where=lambda e: str(e.payload.get("investigation_id", "")).startswith(OWNER_PREFIX),
        )
        self._listener = asyncio.create_task(self._listen(subscription), name="edr-approvals")
        await self.sweep()
        for loop in self._loops:
            loop.start()

    async def close(self) -> None:
        for loop in self._loops:
            await loop.stop()
        await cancel_and_wait(self._listener)
        self._listener = None
        for connector in self._connectors.values():
            try:
                await connector.aclose()
            except Exception:
                log.exception("closing EDR connector %s", connector.name)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _listen(self, subscription: Any) -> None:
        with subscription:
            async for item in subscription:
                try:
                    if isinstance(item, Gap):
                        await self.sweep()
                    else:
                        await self.settle(str(item.payload["investigation_id"]))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("settling an EDR approval")

    # -- inventory ------------------------------------------------------------------------

    async def _telemetry(self) -> dict[str, _Seen]:
        if self._logstore is None or not self._logstore.owned:
            # No store, or another gateway's: the hosts the logs know are the owner's to add.
            return {}
        store = self._logstore
        result = await store.query(
            f"SELECT host_name, groupUniqArrayIf(16)(host_ip, host_ip != ''), min(timestamp), "  # noqa: S608 - the log table's quoted name, no input
            f"max(timestamp), count() FROM {store.table} WHERE host_name != '' "
            "GROUP BY host_name ORDER BY max(timestamp) DESC LIMIT 100000"
        )
        seen: dict[str, _Seen] = {}
        for name, ips, first, last, events in result.result_rows:
            key = host_key(str(name))
            if not key:
                continue
            found = seen.get(key)
            current = _Seen(
                ips=_merge_ips(sorted(str(ip) for ip in ips)),
                first=_aware(first),
                last=_aware(last),
                events=int(events),
                fqdn=_fqdn(str(name)),
            )
            if found is None:
                seen[key] = current
                continue
            found.ips = _merge_ips(found.ips, current.ips)
            found.first = _earliest(found.first, current.first)
            found.last = _latest(found.last, current.last)
            found.events += current.events
            found.fqdn = found.fqdn or current.fqdn
        return seen

    async def _listed(self) -> list[ConnectorEndpoint]:
        listed: list[ConnectorEndpoint] = []
        now = utcnow()
        for connector in self._connectors.values():
            health = self._state.connectors[connector.name]
            try:
                items = await connector.inventory()
            except AuroraError as err:
                health.error = f"{err.code}: {err.message}"
                log.warning("EDR connector %s: inventory failed: %s", connector.name, health.error)
                continue
            health.error, health.endpoints, health.last_refresh = None, len(items), now
            listed += items
        return listed

    async def _enrol_hosts(self, seen: dict[str, _Seen], listed: list[ConnectorEndpoint]) -> bool:
        """Enrol the hosts only the logs know with the lab connector; whether any was."""
        lab = next((c for c in self._connectors.values() if c.product == "lab"), None)
        enrol = getattr(lab, "enrol", None)
        if lab is None or enrol is None:
            return False
        managed = {host_key(item.hostname) for item in listed}
        added = False
        for key, host in seen.items():
            if key not in managed and not _is_ip(key):
                enrol(host.fqdn or key, ips=host.ips)
                added = True
        return added

    async def refresh(self) -> None:
        """Rebuild the inventory from the logs and the connectors' inventories (one
        transaction; a connector that fails keeps its endpoints as they were)."""
        async with self._refresh_lock:
            self._refreshed_at = monotonic()
            try:
                seen = await self._telemetry()
            except AuroraError as err:
                log.warning("EDR inventory: the log store did not answer: %s", err.message)
                seen = {}
            listed = await self._listed()
            if self._enrol and await self._enrol_hosts(seen, listed):
                listed = await self._listed()
            answered = {
                name for name, health in self._state.connectors.items() if health.error is None
            }
            async with self._db.session() as db:
                await self._merge(db, seen, listed, answered)
                await db.commit()
            self._state.at = utcnow()

    async def _merge(
        self,
        db: AsyncSession,
        seen: dict[str, _Seen],
        listed: list[ConnectorEndpoint],
        answered: set[str],
    ) -> None:
        rows = list(await db.scalars(select(Endpoint)))
        by_host = {row.hostname: row for row in rows}
        by_native = {(row.connector, row.native_id): row for row in rows if row.connector}
        now = utcnow()
        claimed: set[str] = set()

        async def new(hostname: str, source: EndpointSource, first: datetime | None) -> Endpoint:
            row = Endpoint(
                id=await next_id(db, "EP"),
                hostname=hostname,
                ips=[],
                state=EndpointState.UNKNOWN.value,
                source=source.value,
                details={},
                first_seen=first or now,
                log_events=0,
                created_at=now,
            )
            db.add(row)
            by_host[hostname] = row
            return row

        still = {(i.connector, i.native_id) for i in listed} | {
            (i.connector, host_key(i.hostname)) for i in listed
        }
        for row in rows:
            # A connector that answered without it manages it no more (another may).
            if row.connector in answered and not (
                (row.connector, row.native_id) in still or (row.connector, row.hostname) in still
            ):
                del by_native[(row.connector, row.native_id)]
                row.connector, row.native_id = None, None
                row.source = EndpointSource.TELEMETRY.value
                row.state = EndpointState.UNKNOWN.value
                row.updated_at = now
        for item in listed:
            key = host_key(item.hostname)
            found = by_native.get((item.connector, item.native_id)) or by_host.get(key)
            if found is None:
                row = await new(key, EndpointSource.CONNECTOR, item.last_seen)
            elif found.connector not in (None, item.connector) or found.id in claimed:
                continue  # another connector manages it (the first configured keeps it)
            else:
                row = found
            claimed.add(row.id)
            row.connector, row.native_id = item.connector, item.native_id
            row.source = EndpointSource.CONNECTOR.value
            row.state = item.state.value
            row.fqdn = item.fqdn or row.fqdn
            row.os = item.os or row.os
            row.ips = _merge_ips(item.ips, row.ips)
            row.details = item.model_dump(mode="json")["details"]
            row.last_seen = _latest(row.last_seen, _aware(item.last_seen))
            row.updated_at = now
        for key, host in seen.items():
            known = by_host.get(key)
            row = known or await new(key, EndpointSource.TELEMETRY, host.first)
            row.ips = _merge_ips(row.ips, host.ips)
            row.fqdn = row.fqdn or host.fqdn
            row.logs_last_seen = host.last
            row.log_events = host.events
            row.last_seen = _latest(row.last_seen, host.last)
            if host.first is not None and host.first < row.first_seen:
                row.first_seen = host.first
            row.updated_at = now

    async def resolve(self, target: str) -> Endpoint:
        """The endpoint ``target`` names (its id, host name or FQDN in any case, or an
        address); AURORA-4040 when none."""
        found = await self._find(target)
        if found is None:
            raise NotFound({"endpoint": target[:255]})
        return found

    async def _find(self, target: str) -> Endpoint | None:
        """The endpoint ``target`` names; for an unknown one, the inventory is rebuilt first
        when its last rebuild is older than ``unknown_refresh_seconds`` (a host the logs named
        since: the alert a playbook acts on is often the first word of it)."""
        async with self._db.session() as db:
            found = await find_endpoint(db, target)
        last = self._refreshed_at
        if found is None and (last is None or monotonic() - last >= self.unknown_refresh_seconds):
            await self.refresh()
            async with self._db.session() as db:
                found = await find_endpoint(db, target)
        return found

    # -- deciding -------------------------------------------------------------------------

    def _verdict(self, action: EdrAction, endpoint: Endpoint, actor: str) -> GuardrailVerdict:
        """The strictest of the policy's verdicts on the host's names and addresses (the
        operator may rate an asset by either)."""
        mode = self._mode()
        verdicts = [
            decide(
                self._policy,
                ActionRequest(
                    action=GUARDRAIL_ACTIONS[action],
                    target=target,
                    corroborated_by=[f"requested by {actor}"],
                ),
                mode,
            )
            for target in dict.fromkeys(
                t for t in (endpoint.hostname, endpoint.fqdn, *endpoint.ips) if t
            )
        ]
        strictest = max(verdicts, key=lambda v: v.decision.rank)
        reasons = list(dict.fromkeys(r for v in verdicts for r in v.reasons))
        rules = list(dict.fromkeys(r for v in verdicts for r in v.rules))
        return strictest.model_copy(
            update={"target": endpoint.hostname, "reasons": reasons, "rules": rules}
        )

    def _count(self, row: EdrActionRecord) -> None:
        if self._metrics is not None:
            self._metrics.response_actions.labels(
                source="edr", action=GUARDRAIL_ACTIONS[EdrAction(row.action)], outcome=row.status
            ).inc()

    def _announce(self, row: EdrActionRecord) -> None:
        self._count(row)
        self._bus.publish(TOPIC, EdrActionRead.model_validate(row).model_dump(mode="json"))

    def _connector_of(self, endpoint: Endpoint) -> EdrConnector:
        connector = self._connectors.get(endpoint.connector or "")
        if connector is None:
            raise Conflict(
                {
                    "endpoint_id": endpoint.id,
                    "reason": "no configured EDR connector manages this endpoint",
                }
            )
        return connector

    async def request_action(
        self,
        *,
        action: EdrAction,
        endpoint_id: str,
        actor: str,
        reason: str | None = None,
        comment: str | None = None,
        idempotency_key: str | None = None,
    ) -> ActionOutcome:
        """Decide ``action`` on the endpoint under the guardrails and the mode, record it,
        and carry it out or ask a human when the decision says so.

        AURORA-4040 unknown endpoint; AURORA-4031 denied (recorded); AURORA-4090 when active
        mode would act on an endpoint no connector manages, or when ``idempotency_key``
        already names another action; a connector's error as its own code (recorded)."""
        key = f"api:{actor}:{idempotency_key}" if idempotency_key else None
        why = reason or f"{action.value} requested by {actor}"
        async with self._db.session() as db:
            endpoint = await get_endpoint(db=db, endpoint_id=endpoint_id)
            if key is not None:
                earlier = await db.scalar(select(EdrActionRecord).where(EdrActionRecord.key == key))
                if earlier is not None:
                    return await self._replay(db, earlier, endpoint, action)
            verdict = self._verdict(action, endpoint, actor)
            status = OUTCOME_STATUS[verdict.outcome]
            if status in {ActionState.REQUESTED, ActionState.AWAITING_APPROVAL}:
                self._connector_of(endpoint)
            action_id = await next_id(db, "EDR")
            row = EdrActionRecord(
                id=action_id,
                key=key or action_id,
                endpoint_id=endpoint.id,
                hostname=endpoint.hostname,
                action=action.value,
                status=status.value,
                connector=endpoint.connector,
                mode=verdict.mode.value,
                requested_by=actor,
                reason=why[:2000],
                guardrail=verdict.model_dump(mode="json"),
                detail={"comment": comment or why[:1000]},
                finished_at=utcnow() if status in FINISHED else None,
            )
            db.add(row)
            asked: list[Approval] = []
            if status is ActionState.AWAITING_APPROVAL:
                asked = await approvals.request(
                    db,
                    action_id,
                    [
                        {
                            "approval_id": action_id,
                            "action": GUARDRAIL_ACTIONS[action],
                            "target": endpoint.hostname,
                            "reason": why[:2000],
                            "impact": _impact(action, endpoint),
                            "guardrail": verdict.model_dump(mode="json"),
                            "provenance": {
                                "requested_by": actor,
                                "endpoint_id": endpoint.id,
                                "connector": endpoint.connector,
                                "corroborated_by": [f"requested by {actor}"],
                            },
                        }
                    ],
                    timedelta(seconds=self._approval_timeout()),
                )
            try:
                await db.commit()
            except IntegrityError:  # the same key, written a moment ago by a twin request
                await db.rollback()
                earlier = await db.scalar(select(EdrActionRecord).where(EdrActionRecord.key == key))
                if earlier is None:
                    raise
                return await self._replay(db, earlier, endpoint, action)
            endpoint_read = EndpointRead.model_validate(endpoint)
        self._announce(row)
        for approval in asked:
            self._bus.publish("approvals.requested", approvals.as_event(approval))
        if status is ActionState.DENIED:
            raise GuardrailDenied(_denial(row))
        if status is ActionState.REQUESTED:
            row = await self._act(row.id)
            endpoint_read = EndpointRead.model_validate(await self.resolve(row.endpoint_id))
        return ActionOutcome(EdrActionRead.model_validate(row), endpoint_read)

    async def _replay(
        self, db: AsyncSession, earlier: EdrActionRecord, endpoint: Endpoint, action: EdrAction
    ) -> ActionOutcome:
        if earlier.endpoint_id != endpoint.id or earlier.action != action.value:
            raise Conflict(
                {
                    "reason": "the idempotency key names another action",
                    "action_id": earlier.id,
                }
            )
        if earlier.status == ActionState.DENIED.value:
            raise GuardrailDenied(_denial(earlier))
        current = await get_endpoint(db=db, endpoint_id=earlier.endpoint_id)
        return ActionOutcome(
            EdrActionRead.model_validate(earlier),
            EndpointRead.model_validate(current),
            replayed=True,
        )

    # -- carrying out ---------------------------------------------------------------------

    async def carry_out(
        self,
        *,
        action: EdrAction,
        target: str,
        key: str,
        actor: str,
        reason: str,
        approved_by: str | None = None,
    ) -> dict[str, Any]:
        """Carry out an action the caller has already decided (guardrails, mode, approval
        and its own ledger are the caller's): through the connector of the endpoint
        ``target`` names, recorded as an EDR action under the unique ``key``.

        A ``key`` already recorded is not carried out again: its record is returned
        (``replayed: true``). Returns ``{action_id, endpoint_id, hostname, connector, action,
        status, native_action_id, detail, replayed}``; raises AURORA-4040 for an unknown
        endpoint, AURORA-4090 for one no connector manages, and the connector's typed errors
        (the action recorded ``failed``)."""
        if not 0 < len(key) <= KEY_MAX:
            raise field_error(["key"], f"an action key has 1 to {KEY_MAX} characters")
        await self._find(target)  # an unknown host: the inventory rebuilt first (at most so often)
        async with self._db.session() as db:
            earlier = await db.scalar(select(EdrActionRecord).where(EdrActionRecord.key == key))
            if earlier is not None:
                return _as_result(earlier, replayed=True)
            endpoint = await find_endpoint(db, target)
            if endpoint is None:
                raise NotFound({"endpoint": target[:255]})
            self._connector_of(endpoint)
            row = EdrActionRecord(
                id=await next_id(db, "EDR"),
                key=key,
                endpoint_id=endpoint.id,
                hostname=endpoint.hostname,
                action=action.value,
                status=ActionState.REQUESTED.value,
                connector=endpoint.connector,
                mode=self._mode().value,
                requested_by=actor[:64],
                approved_by=approved_by,
                reason=reason[:2000],
                guardrail=None,
                detail={"comment": reason[:1000]},
            )
            db.add(row)
            try:
                await db.commit()
            except IntegrityError:
                await db.rollback()
                earlier = await db.scalar(select(EdrActionRecord).where(EdrActionRecord.key == key))
                if earlier is None:
                    raise
                return _as_result(earlier, replayed=True)
        self._announce(row)
        return _as_result(await self._act(row.id), replayed=False)

    async def _act(self, action_id: str) -> EdrActionRecord:
        """Hand the ``requested`` action to its connector (the caller moved it there: only
        it calls) and record the answer; a connector's error is recorded, then raised."""
        async with self._db.session() as db:
            row = await db.get(EdrActionRecord, action_id)
            assert row is not None
            endpoint = await get_endpoint(db=db, endpoint_id=row.endpoint_id)
        failure: AuroraError | None = None
        receipt: ActionReceipt | None = None
        try:
            connector = self._connectors.get(row.connector or "")
            if connector is None or endpoint.connector != row.connector or not endpoint.native_id:
                raise Conflict(
                    {
                        "endpoint_id": endpoint.id,
                        "reason": f"connector {row.connector!r} no longer manages this endpoint",
                    }
                )
            receipt = await connector.act(
                EdrAction(row.action),
                ConnectorEndpoint(
                    connector=connector.name,
                    native_id=endpoint.native_id,
                    hostname=endpoint.hostname,
                    fqdn=endpoint.fqdn,
                    ips=endpoint.ips,
                    os=endpoint.os,
                    state=EndpointState(endpoint.state),
                ),
                comment=str(row.detail.get("comment") or row.reason)[:1000],
            )
        except AuroraError as err:
            failure = err
        except Exception as err:
            log.exception("EDR connector %s failed on %s", row.connector, action_id)
            failure = InternalError({"connector": row.connector, "reason": type(err).__name__})
        if receipt is not None:
            status = _status_of(receipt)
            detail = {**row.detail, "receipt": receipt.model_dump(mode="json")}
            native = receipt.native_action_id
        else:
            assert failure is not None
            status = ActionState.FAILED
            detail = {
                **row.detail,
                "error": {
                    "code": failure.code,
                    "message": failure.message,
                    "detail": failure.detail,
                },
            }
            native = None
        row = await self._record(row.id, status, detail, native, receipt)
        if failure is not None:
            raise failure
        return row

    async def _record(
        self,
        action_id: str,
        status: ActionState,
        detail: dict[str, Any],
        native_action_id: str | None,
        receipt: ActionReceipt | None,
    ) -> EdrActionRecord:
        now = utcnow()
        async with self._db.session() as db:
            row = await db.get(EdrActionRecord, action_id)
            assert row is not None
            row.status = status.value
            row.detail = detail
            row.native_action_id = native_action_id or row.native_action_id
            row.updated_at = now
            if status in FINISHED:
                row.finished_at = now
            state = _state_after(EdrAction(row.action), receipt)
            if state is not None:
                await db.execute(
                    update(Endpoint)
                    .where(Endpoint.id == row.endpoint_id)
                    .values(state=state.value, updated_at=now, version=Endpoint.version + 1)
                )
            await db.commit()
        self._announce(row)
        return row

    # -- approvals, polls and sweeps ------------------------------------------------------

    async def settle(self, action_id: str) -> None:
        """Act on the decided approval of ``action_id``: carry the action out when approved
        (once: only the claim that moves it from ``awaiting_approval`` acts), else record it
        ``denied`` or ``expired``."""
        async with self._db.session() as db:
            approval = await db.get(Approval, action_id)
            if approval is None or approval.status == "pending":
                return
            approved = approval.status == "approved"
            status = (
                ActionState.REQUESTED
                if approved
                else ActionState.EXPIRED
                if approval.status == "expired"
                else ActionState.DENIED
            )
            now = utcnow()
            values: dict[str, Any] = {"status": status.value, "updated_at": now}
            if approved:
                values["approved_by"] = approval.decided_by
            else:
                values["finished_at"] = now
            claimed = await db.execute(
                update(EdrActionRecord)
                .where(
                    EdrActionRecord.id == action_id,
                    EdrActionRecord.status == ActionState.AWAITING_APPROVAL.value,
                )
                .values(**values)
            )
            await db.commit()
            if not getattr(claimed, "rowcount", 0):
                return
            row = await db.get(EdrActionRecord, action_id, populate_existing=True)
            assert row is not None
        self._announce(row)
        if approved:
            try:
                await self._act(action_id)
            except AuroraError as err:
                log.warning("EDR action %s failed: %s %s", action_id, err.code, err.message)

    async def sweep(self) -> None:
        """Settle the actions whose approval was decided while nothing listened, and record
        the attempts that died (``requested`` for too long) as ``unknown``."""
        async with self._db.session() as db:
            decided = list(
                await db.scalars(
                    select(EdrActionRecord.id)
                    .join(Approval, Approval.id == EdrActionRecord.id)
                    .where(
                        EdrActionRecord.status == ActionState.AWAITING_APPROVAL.value,
                        Approval.status != "pending",
                    )
                )
            )
        for action_id in decided:
            await self.settle(action_id)
        await self._unknown_stale()

    async def _unknown_stale(self) -> None:
        cutoff = utcnow() - STALE_REQUEST
        async with self._db.session() as db:
            stale = list(
                await db.scalars(
                    select(EdrActionRecord).where(
                        EdrActionRecord.status == ActionState.REQUESTED.value,
                        EdrActionRecord.updated_at < cutoff,
                    )
                )
            )
            now = utcnow()
            for row in stale:
                row.status = ActionState.UNKNOWN.value
                row.detail = {
                    **row.detail,
                    "error": {
                        "reason": "an attempt handed it to the connector and did not record "
                        "the answer; not repeated"
                    },
                }
                row.updated_at = row.finished_at = now
            await db.commit()
        for row in stale:
            self._announce(row)

    async def poll(self) -> int:
        """Ask the products about the actions they took and have not finished; how many
        changed."""
        async with self._db.session() as db:
            pending = list(
                await db.scalars(
                    select(EdrActionRecord)
                    .where(EdrActionRecord.status == ActionState.EXECUTED.value)
                    .order_by(EdrActionRecord.updated_at)
                    .limit(100)
                )
            )
        changed = 0
        for row in pending:
            connector = self._connectors.get(row.connector or "")
            stored = row.detail.get("receipt")
            if connector is None or not isinstance(stored, dict):
                continue
            try:
                receipt = await connector.status(ActionReceipt.model_validate(stored))
            except AuroraError as err:
                log.warning("EDR action %s: status: %s %s", row.id, err.code, err.message)
                continue
            status = _status_of(receipt)
            if status is ActionState.EXECUTED and receipt.model_dump(mode="json") == stored:
                continue
            detail = {**row.detail, "receipt": receipt.model_dump(mode="json")}
            await self._record(row.id, status, detail, receipt.native_action_id, receipt)
            changed += 1
        return changed

    async def tick(self) -> None:
        """The action loop's step: poll unfinished actions, record dead attempts."""
        await self.poll()
        await self._unknown_stale()

    # -- statistics -----------------------------------------------------------------------

    async def stats(self) -> EdrStats:
        """Endpoints by state, source and connector; actions by status, connector and
        action; each connector's last inventory."""
        async with self._db.session() as db:
            states = await _counts(db, Endpoint.state)
            sources = await _counts(db, Endpoint.source)
            managed = await _counts(db, Endpoint.connector)
            statuses = await _counts(db, EdrActionRecord.status)
            by_connector = await _counts(db, EdrActionRecord.connector, EdrActionRecord.status)
            kinds = await _counts(db, EdrActionRecord.action)
        per_connector: dict[str, dict[str, int]] = {}
        for connector, status, n in by_connector:
            per_connector.setdefault(connector or "none", {})[status] = int(n)
        return EdrStats(
            endpoints_total=sum(int(n) for _, n in states),
            endpoints_by_state={s: int(n) for s, n in sorted(states)},
            endpoints_by_source={s: int(n) for s, n in sorted(sources)},
            endpoints_by_connector={c or "none": int(n) for c, n in managed},
            actions_total=sum(int(n) for _, n in statuses),
            actions_by_status={s: int(n) for s, n in sorted(statuses)},
            actions_by_connector=per_connector,
            actions_by_action={a: int(n) for a, n in sorted(kinds)},
            connectors=[
                ConnectorStatus(
                    name=name,
                    product=health.product,
                    endpoints=health.endpoints,
                    last_refresh=health.last_refresh,
                    error=health.error,
                )
                for name, health in self._state.connectors.items()
            ],
            last_refresh=self._state.at,
        )


def _status_of(receipt: ActionReceipt) -> ActionState:
    if receipt.status is ActionStatus.SUCCEEDED:
        return ActionState.SUCCEEDED
    if receipt.status is ActionStatus.FAILED:
        return ActionState.FAILED
    return ActionState.EXECUTED


def _state_after(action: EdrAction, receipt: ActionReceipt | None) -> EndpointState | None:
    """The endpoint's state once the product answered ``receipt`` (None: unchanged)."""
    if receipt is None or receipt.status is ActionStatus.FAILED or action is EdrAction.SCAN:
        return None
    done = receipt.status is ActionStatus.SUCCEEDED
    if action is EdrAction.ISOLATE:
        return EndpointState.ISOLATED if done else EndpointState.ISOLATING
    return EndpointState.ONLINE if done else EndpointState.RELEASING


def _impact(action: EdrAction, endpoint: Endpoint) -> str:
    if action is EdrAction.ISOLATE:
        return (
            f"{endpoint.hostname} is cut off from the network except the EDR's own channel "
            f"(through {endpoint.connector})"
        )
    if action is EdrAction.UNISOLATE:
        return f"{endpoint.hostname} rejoins the network (through {endpoint.connector})"
    return f"{endpoint.hostname} is scanned for malware (through {endpoint.connector})"


def _denial(row: EdrActionRecord) -> dict[str, Any]:
    guardrail = row.guardrail or {}
    return {
        "action_id": row.id,
        "endpoint_id": row.endpoint_id,
        "action": GUARDRAIL_ACTIONS[EdrAction(row.action)],
        "target": row.hostname,
        "reasons": guardrail.get("reasons", []),
    }


def _as_result(row: EdrActionRecord, *, replayed: bool) -> dict[str, Any]:
    return {
        "action_id": row.id,
        "endpoint_id": row.endpoint_id,
        "hostname": row.hostname,
        "connector": row.connector,
        "action": row.action,
        "status": row.status,
        "native_action_id": row.native_action_id,
        "detail": dict(row.detail),
        "replayed": replayed,
    }


@contextlib.asynccontextmanager
async def open_edr(
    *,
    settings: Settings,
    database: Database,
    bus: EventBus,
    logstore: LogStore | None,
    mode: Callable[[], SystemMode],
    approval_timeout: Callable[[], float],
    env: Mapping[str, str],
    metrics: Metrics | None = None,
    lease: Lease | None = None,
) -> AsyncIterator[EdrService]:
    """The EDR service of ``settings``, started, with the connectors its connectors file
    configures (``tools.edr.config.load_connectors``: the lab's state kept in
    ``<data dir>/edr-lab.json``, secrets read from ``env``); stopped and its connectors closed
    on exit. An invalid connectors file raises AURORA-4220 naming the field."""
    connectors = load_connectors(
        settings.edr_connectors_file, env, lab_state_path=settings.data_dir / "edr-lab.json"
    )
    service = EdrService(
        database=database,
        bus=bus,
        connectors=connectors,
        policy=policy_from_settings(settings),
        mode=mode,
        approval_timeout=approval_timeout,
        logstore=logstore,
        metrics=metrics,
        refresh_seconds=settings.edr_refresh_seconds,
        lease=lease,
    )
    try:
        await service.start()
        yield service
    finally:
        await service.close()
