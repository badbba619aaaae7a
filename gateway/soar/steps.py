"""The step kinds a playbook ``uses``: what each takes (a pydantic model, unknown fields
refused, every field bounded), what it may do (its :class:`Effect`) and the work it does
through the platform's own services.

The engine owns control flow (conditions, loops, timeouts, retries), the system mode, the
guardrails, approvals and the at-most-once ledger: a kind's :attr:`StepKind.run` only does the
work once the engine decided it runs, and :meth:`StepKind.describe` says what it would do
(``dry_run``, ``monitor``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Protocol

import aiohttp
import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agents.acp.client import CallOptions, HandoffClient
from agents.acp.protocol import INVALID_PARAMS, METHOD_NOT_FOUND, RpcError
from core.db import Database
from core.db.base import utcnow
from core.errors import ChangedConcurrently, Conflict, ServiceUnavailable, ValidationFailed
from core.events import EventBus
from core.logstore.query import MAX_QUERY_LENGTH, compile_query
from core.logstore.store import LogStore, SearchRequest
from core.schemas import Severity, Tags
from core.settings import Settings
from core.validation import UtcDatetime, bounded_json, validation_detail
from gateway.alerts import api as alerts
from gateway.alerts.schemas import AlertPromote, AlertRead, AlertUpdate
from gateway.cases import api as cases
from gateway.cases.schemas import (
    CaseCreate,
    CaseRead,
    CaseStatus,
    CaseUpdate,
    CommentCreate,
    ObservableCreate,
    Pap,
    Tlp,
)
from tools.edr.base import EdrAction
from tools.ioc import normalise_ioc

RESPONSE_TOPIC: Final = "response.actions"
"""Where network and mail response actions go: the firewall, proxy and mail integrations
subscribe (as they do to the investigations' executor)."""
NOTIFY_TOPIC: Final = "soar.notifications"
ENRICHABLE: Final = frozenset(
    {"ip", "ipv4", "ipv6", "domain", "url", "email", "hash", "md5", "sha1", "sha256", "sha512"}
)
"""Entity types the threat-intel specialist judges; others (hosts, users) are skipped."""
MALICIOUS: Final = frozenset({Severity.HIGH.value, Severity.CRITICAL.value})
"""An indicator judged at these severities counts as malicious."""
MAX_ITEMS: Final = 200
MAX_RESULTS: Final = 500
WEBHOOK_TIMEOUT_SECONDS: Final = 10.0

Text = Annotated[str, Field(min_length=1, max_length=500)]
Reason = Annotated[str, Field(max_length=2000)]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w.:-]*$")]
JsonObject = Annotated[dict[str, Any], AfterValidator(bounded_json(max_bytes=64 * 1024))]


class Effect(StrEnum):
    """What a step may do, which decides how the engine runs it in each mode."""

    READ = "read"
    """Reads or analyses; runs in every mode."""
    RECORD = "record"
    """Writes to the platform (a case, a tag, a notification): at most once, skipped in
    ``dry_run``."""
    RESPONSE = "response"
    """A response action outside the platform, decided by the guardrails."""
    APPROVAL = "approval"
    """Waits for a human; never run."""


class EdrActions(Protocol):
    """What the steps need of the EDR service (``gateway.edr``): carry out an action already
    decided (guardrails, mode, approval and ledger are the caller's)."""

    async def carry_out(
        self,
        *,
        action: EdrAction,
        target: str,
        key: str,
        actor: str,
        reason: str,
        approved_by: str | None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class StepEnv:
    """What a step runs with: the platform's resources, and who and what it runs for.

    ``key`` is the step run's key (``<execution>/<step>#<item>``: its ledger key, the EDR
    action's key and the dispatched action's key) and ``approved_by`` who approved it, when a
    human did; the engine sets both per run (``dataclasses.replace``)."""

    database: Database
    bus: EventBus
    handoff: HandoffClient
    logstore: LogStore
    edr: EdrActions | None
    settings: Settings
    execution_id: str
    actor: str
    """``playbook:<id>``: what the platform's records name as the author."""
    mode: str
    playbook_id: str = ""
    key: str | None = None
    approved_by: str | None = None
    corroborated_by: tuple[str, ...] = ()
    webhook_url: str | None = None
    """An HTTP(S) endpoint ``notify`` also posts to (a chat or paging integration)."""

    def run_key(self, action: str, target: str) -> str:
        """The step run's key; without one (a run outside the engine), one per execution,
        action and target: the same action on the same target happens once."""
        return self.key or f"{self.execution_id}/{action}:{target}"


@dataclass(frozen=True)
class StepKind[P: BaseModel]:
    """One kind of step: its parameters, its effect, and its work."""

    name: str
    summary: str
    params: type[P]
    effect: Effect
    run: Callable[[StepEnv, P], Awaitable[dict[str, Any]]]
    would: Callable[[P], str]
    """What the step would do, in a sentence (for ``dry_run`` and ``monitor``)."""
    action: str | None = None
    """The guardrail action of a response; the ledger's name of a record."""
    target: Callable[[P], str] | None = None
    """What the action acts on (the guardrails judge it)."""

    def describe(self, params: P) -> dict[str, Any]:
        """What the step would do with ``params``: a sentence, its action and target, and the
        parameters."""
        return {
            "step": self.name,
            "effect": self.effect.value,
            "summary": self.would(params),
            "action": self.action,
            "target": self.target(params) if self.target is not None else None,
            "params": params.model_dump(mode="json"),
        }

    def validate(self, values: dict[str, Any]) -> P:
        """``values`` (rendered) as this kind's parameters; AURORA-4220 at ``["with", ...]``."""
        try:
            return self.params.model_validate(values)
        except ValidationError as err:
            raise ValidationFailed(validation_detail(err, "with")) from err


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _json(value: BaseModel) -> dict[str, Any]:
    return value.model_dump(mode="json")


def _reason(err: ValidationFailed) -> str:
    detail = err.detail
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return str(detail[0].get("msg", ""))
    return str(detail)


# --- logs.search -------------------------------------------------------------------------------


class LogSearch(Params):
    query: str = Field(default="", max_length=MAX_QUERY_LENGTH)
    """The log search language (``process.name:powershell.exe AND user.name:bob``)."""
    lookback_seconds: int = Field(default=3600, ge=60, le=30 * 86400)
    """The window starts this long before ``end`` (now, unless given), unless ``start``."""
    lookahead_seconds: int = Field(default=0, ge=0, le=30 * 86400)
    """The window goes on this long after ``end`` (what followed an alert's last event)."""
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    host: str | None = Field(default=None, min_length=1, max_length=255)
    source: str | None = Field(default=None, min_length=1, max_length=100)
    limit: int = Field(default=100, ge=1, le=MAX_RESULTS)

    @field_validator("query")
    @classmethod
    def _compiles(cls, query: str) -> str:
        try:
            compile_query(query)
        except ValidationFailed as err:
            raise ValueError(_reason(err)) from err
        return query

    @model_validator(mode="after")
    def _window(self) -> LogSearch:
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def window(self) -> tuple[datetime, datetime]:
        end = self.end or utcnow()
        start = self.start or end - timedelta(seconds=self.lookback_seconds)
        return start, end + timedelta(seconds=self.lookahead_seconds)


async def search_logs(env: StepEnv, p: LogSearch) -> dict[str, Any]:
    start, end = p.window()
    filters = {name: v for name, v in (("host.name", p.host), ("source", p.source)) if v}
    page = await env.logstore.search(
        SearchRequest(start=start, end=end, query=p.query or None, filters=filters, limit=p.limit)
    )
    return {
        "count": len(page.items),
        "more": page.next_cursor is not None,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "items": page.items,
    }


# --- intel.enrich and agent.call ---------------------------------------------------------------


class Indicator(BaseModel):
    """An indicator, or an alert's entity (its other keys ignored)."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(min_length=1, max_length=32)
    value: str = Field(min_length=1, max_length=4096)


class Enrich(Params):
    indicators: list[Indicator] = Field(default_factory=list, max_length=MAX_ITEMS)
    """What to judge; entities that are not indicators (hosts, users) are skipped."""
    context: str | None = Field(default=None, max_length=100_000)
    """Free text around them (the alert's description), mined for more indicators."""
    alert_id: str | None = Field(default=None, max_length=128)
    timeout_seconds: int = Field(default=60, ge=1, le=3600)


def _verdicts(finding: dict[str, Any]) -> list[dict[str, Any]]:
    """Each indicator's verdict, from the finding's ``indicator_verdict`` evidence
    (``ref`` ``type:value``, ``summary`` ``severity: reasons``)."""
    found = []
    for evidence in finding.get("evidence", []):
        if not isinstance(evidence, dict) or evidence.get("kind") != "indicator_verdict":
            continue
        kind, _, value = str(evidence.get("ref", "")).partition(":")
        severity, _, reasons = str(evidence.get("summary", "")).partition(": ")
        found.append({"type": kind, "value": value, "severity": severity, "reasons": reasons})
    return found


async def _ask(
    env: StepEnv, agent: str, method: str, params: dict[str, Any], seconds: float
) -> Any:
    """``agent.method(params)`` through the handoff client, for this execution. A protocol
    error is typed: params or a method the agent refuses are AURORA-4220 at ``with``; any other
    (a deadline, a cancelled call) AURORA-5030."""
    options = CallOptions(
        investigation_id=env.execution_id, timeout=seconds, idempotency_key=env.key
    )
    try:
        return await env.handoff.call(agent, method, params, options)
    except RpcError as err:
        if err.code in {INVALID_PARAMS, METHOD_NOT_FOUND}:
            field = "params" if err.code == INVALID_PARAMS else "method"
            why = err.data if isinstance(err.data, str) else orjson.dumps(err.data).decode()
            raise ValidationFailed(
                [
                    {
                        "loc": ["with", field],
                        "msg": f"{agent}.{method}: {err.message}: {why}"[:2000],
                        "type": "agent_refused",
                    }
                ]
            ) from err
        raise ServiceUnavailable({"agent": agent, "reason": err.message}) from err


async def enrich(env: StepEnv, p: Enrich) -> dict[str, Any]:
    chosen = [i for i in p.indicators if i.type.strip().lower() in ENRICHABLE]
    skipped = [f"{i.type}:{i.value}" for i in p.indicators if i not in chosen]
    unique = list({(i.type, i.value): i for i in chosen}.values())
    if not unique and not (p.context and p.context.strip()):
        return {
            "malicious": False,
            "severity": None,
            "verdicts": [],
            "malicious_indicators": [],
            "skipped": skipped,
        }
    request: dict[str, Any] = {"iocs": [i.model_dump() for i in unique]}
    if p.context:
        request["context"] = p.context
    if p.alert_id:
        request["alert_id"] = p.alert_id
    finding = await _ask(env, "threat_intel", "analyze_threat", request, p.timeout_seconds)
    verdicts = _verdicts(finding)
    bad = [{"type": v["type"], "value": v["value"]} for v in verdicts if v["severity"] in MALICIOUS]
    return {
        "malicious": bool(bad),
        "severity": finding.get("severity"),
        "confidence": finding.get("confidence"),
        "summary": finding.get("summary"),
        "verdicts": verdicts,
        "malicious_indicators": bad,
        "corroborations": finding.get("corroborations", []),
        "skipped": skipped,
        "finding": finding,
    }


class AgentCall(Params):
    agent: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    method: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")
    params: JsonObject = Field(default_factory=dict)
    timeout_seconds: int = Field(default=60, ge=1, le=3600)


async def call_agent(env: StepEnv, p: AgentCall) -> dict[str, Any]:
    result = await _ask(env, p.agent, p.method, p.params, p.timeout_seconds)
    return {"agent": p.agent, "method": p.method, "result": result}


# --- alerts ------------------------------------------------------------------------------------

AlertId = Annotated[str, Field(min_length=1, max_length=64)]


class AlertGet(Params):
    alert_id: AlertId


def _alert_output(alert: AlertRead) -> dict[str, Any]:
    out = _json(alert)
    out["indicators"] = [e for e in alert.entities if e.get("type") in ENRICHABLE]
    return out


async def get_alert(env: StepEnv, p: AlertGet) -> dict[str, Any]:
    async with env.database.session() as db:
        alert = AlertRead.model_validate(await alerts.get_alert(db=db, alert_id=p.alert_id))
    return _alert_output(alert)


class AlertTag(Params):
    alert_id: AlertId
    tags: Tags = Field(min_length=1)


REAPPLY_TRIES: Final = 8
"""How often a change computed from a row is read and reapplied after another writer changed
the row first (several executions tagging one alert): each loss means another writer won."""


async def reapplied[T](change: Callable[[], Awaitable[T]]) -> T:
    """``change`` (which reads a versioned row and writes a change computed from it), again
    from a fresh read while another writer changed the row first (nothing was written)."""
    for _ in range(REAPPLY_TRIES - 1):
        try:
            return await change()
        except ChangedConcurrently:
            continue
    return await change()


async def tag_alert(env: StepEnv, p: AlertTag) -> dict[str, Any]:
    async def tag() -> tuple[AlertRead | None, list[str], list[str]]:
        async with env.database.session() as db:
            alert = await alerts.get_alert(db=db, alert_id=p.alert_id)
            added = [t for t in p.tags if t not in alert.tags]
            if not added:
                return None, list(alert.tags), []
            body = AlertUpdate(tags=sorted({*alert.tags, *p.tags}))
            read = await alerts.update_alert(db=db, actor=env.actor, alert_id=p.alert_id, body=body)
            return read, read.tags, added

    read, tags, added = await reapplied(tag)
    if read is not None:
        env.bus.publish("alerts.updated", _json(read))
    return {"alert_id": p.alert_id, "tags": tags, "added": added}


class AlertAssign(Params):
    alert_id: AlertId
    assignee: str = Field(min_length=1, max_length=64)
    status: Literal["acknowledged", "in_progress"] | None = None


async def assign_alert(env: StepEnv, p: AlertAssign) -> dict[str, Any]:
    async def assign() -> AlertRead:
        async with env.database.session() as db:
            alert = await alerts.get_alert(db=db, alert_id=p.alert_id)
            changes: dict[str, Any] = {"assignee": p.assignee}
            if p.status is not None and alert.status != p.status:
                changes["status"] = p.status
            body = AlertUpdate.model_validate(changes)
            return await alerts.update_alert(db=db, actor=env.actor, alert_id=p.alert_id, body=body)

    read = await reapplied(assign)
    env.bus.publish("alerts.updated", _json(read))
    return {"alert_id": p.alert_id, "assignee": read.assignee, "status": read.status}


# --- cases -------------------------------------------------------------------------------------

CaseId = Annotated[str, Field(min_length=1, max_length=32)]


class Observable(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str = Field(min_length=1, max_length=32)
    value: str = Field(min_length=1, max_length=2048)
    ioc: bool = True
    sighted: bool = False
    description: str | None = Field(default=None, max_length=10_000)
    tags: Tags = Field(default_factory=list)


class CaseOpen(Params):
    title: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=50_000)
    severity: Severity = Severity.MEDIUM
    tlp: Tlp = "TLP:AMBER"
    pap: Pap = "PAP:AMBER"
    tags: Tags = Field(default_factory=list)
    assignee: str | None = Field(default=None, min_length=1, max_length=64)
    alert_id: AlertId | None = None
    """Open the case from this alert (its entities become observables, it links back); an
    alert already on a case adds to that case."""
    observables: list[Observable] = Field(default_factory=list, max_length=MAX_ITEMS)


async def _add_observables(
    env: StepEnv, case_id: str, observables: list[Observable]
) -> tuple[int, list[str]]:
    added, skipped = 0, []
    for item in observables:
        body = ObservableCreate(
            type=item.type,
            value=item.value,
            ioc=item.ioc,
            sighted=item.sighted,
            description=item.description,
            tags=item.tags,
            on_duplicate="merge",
        )
        try:
            async with env.database.session() as db:
                _, merged = await cases.add_observable(
                    db=db, actor=env.actor, case_id=case_id, body=body
                )
        except ValidationFailed as err:
            skipped.append(f"{item.type} {item.value[:80]!r}: {_reason(err)}")
            continue
        added += 0 if merged else 1
    return added, skipped


async def open_case(env: StepEnv, p: CaseOpen) -> dict[str, Any]:
    created, carried, skipped = True, 0, []
    if p.alert_id is None:
        body = CaseCreate(
            title=p.title,
            description=p.description,
            severity=p.severity,
            tlp=p.tlp,
            pap=p.pap,
            tags=p.tags,
            assignee=p.assignee,
        )
        async with env.database.session() as db:
            case_id = (await cases.create_case(db=db, actor=env.actor, body=body)).id
    else:
        overrides = AlertPromote(
            title=p.title,
            description=p.description,
            severity=p.severity,
            tlp=p.tlp,
            pap=p.pap,
            assignee=p.assignee,
        )
        try:
            async with env.database.session() as db:
                promoted = await alerts.promote_alert(
                    db=db, actor=env.actor, alert_id=p.alert_id, body=overrides
                )
        except Conflict:
            async with env.database.session() as db:
                alert = await alerts.get_alert(db=db, alert_id=p.alert_id)
            if alert.case_id is None:
                raise
            case_id, created = alert.case_id, False
        else:
            case_id = promoted.case_id
            carried, skipped = promoted.observables_added, list(promoted.observables_skipped)
            env.bus.publish("alerts.updated", _json(promoted.alert))
    if p.tags:

        async def tag() -> None:
            async with env.database.session() as db:
                current = await cases.get_case(db=db, case_id=case_id)
                if not set(p.tags) <= set(current.tags):
                    body = CaseUpdate(tags=sorted({*current.tags, *p.tags}))
                    await cases.update_case(db=db, actor=env.actor, case_id=case_id, body=body)

        await reapplied(tag)
    added, refused = await _add_observables(env, case_id, p.observables)
    async with env.database.session() as db:
        read = CaseRead.model_validate(await cases.get_case(db=db, case_id=case_id))
    env.bus.publish("cases.created" if created else "cases.updated", _json(read))
    return {
        "case_id": case_id,
        "created": created,
        "alert_id": p.alert_id,
        "title": read.title,
        "severity": read.severity,
        "observables_added": carried + added,
        "observables_skipped": skipped + refused,
    }


class CaseChange(Params):
    case_id: CaseId
    status: CaseStatus | None = None
    severity: Severity | None = None
    assignee: str | None = Field(default=None, min_length=1, max_length=64)
    tags: Tags = Field(default_factory=list)
    """Added to the case's tags."""
    comment: str | None = Field(default=None, min_length=1, max_length=50_000)
    """A note on the case (markdown), such as the accounts a step found affected."""

    @model_validator(mode="after")
    def _something(self) -> CaseChange:
        if not (self.status or self.severity or self.assignee or self.tags or self.comment):
            raise ValueError("give at least one of status, severity, assignee, tags, comment")
        return self


async def update_case(env: StepEnv, p: CaseChange) -> dict[str, Any]:
    async def change() -> tuple[CaseRead, dict[str, Any]]:
        async with env.database.session() as db:
            current = await cases.get_case(db=db, case_id=p.case_id)
            changes: dict[str, Any] = {
                k: v for k, v in (("status", p.status), ("severity", p.severity)) if v is not None
            }
            if p.assignee is not None:
                changes["assignee"] = p.assignee
            if p.tags and not set(p.tags) <= set(current.tags):
                changes["tags"] = sorted({*current.tags, *p.tags})
            if not changes:
                return CaseRead.model_validate(current), changes
            body = CaseUpdate.model_validate(changes)
            read = await cases.update_case(db=db, actor=env.actor, case_id=p.case_id, body=body)
            return read, changes

    read, changes = await reapplied(change)
    comment_id = None
    if p.comment is not None:
        async with env.database.session() as db:
            comment = await cases.add_comment(
                db=db, actor=env.actor, case_id=p.case_id, body=CommentCreate(body=p.comment)
            )
        comment_id = comment.id
    if changes:
        env.bus.publish("cases.updated", _json(read))
    return {**_json(read), "case_id": p.case_id, "comment_id": comment_id}


class CaseObservable(Params, Observable):
    model_config = ConfigDict(extra="forbid")

    case_id: CaseId


async def add_observable(env: StepEnv, p: CaseObservable) -> dict[str, Any]:
    body = ObservableCreate(
        type=p.type,
        value=p.value,
        ioc=p.ioc,
        sighted=p.sighted,
        description=p.description,
        tags=p.tags,
        on_duplicate="merge",
    )
    async with env.database.session() as db:
        read, merged = await cases.add_observable(
            db=db, actor=env.actor, case_id=p.case_id, body=body
        )
    return {
        "case_id": p.case_id,
        "observable_id": read.id,
        "type": read.type,
        "value": read.value,
        "merged": merged,
    }


# --- notify ------------------------------------------------------------------------------------


class Notify(Params):
    message: str = Field(min_length=1, max_length=4000)
    title: str | None = Field(default=None, max_length=200)
    channel: str = Field(default="soc", pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    severity: Severity = Severity.INFORMATIONAL
    data: JsonObject = Field(default_factory=dict)


async def notify(env: StepEnv, p: Notify) -> dict[str, Any]:
    payload = {
        "execution_id": env.execution_id,
        "playbook_id": env.playbook_id,
        "actor": env.actor,
        "channel": p.channel,
        "severity": p.severity.value,
        "title": p.title,
        "message": p.message,
        "data": p.data,
    }
    env.bus.publish(NOTIFY_TOPIC, payload)
    out: dict[str, Any] = {"published": NOTIFY_TOPIC, "channel": p.channel, "webhook": None}
    if env.webhook_url:
        out["webhook"] = await _post(env.webhook_url, payload)
    return out


async def _post(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST the notification; a refused or unreachable endpoint is AURORA-5030 (no URL in the
    detail: a webhook's URL is its secret)."""
    timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                url,
                data=orjson.dumps(payload),
                headers={"Content-Type": "application/json"},
            ) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as err:
        raise ServiceUnavailable({"service": "webhook", "reason": type(err).__name__}) from err
    if status >= 300:
        raise ServiceUnavailable({"service": "webhook", "status": status})
    return {"status": status}


# --- endpoint and network response ------------------------------------------------------------


class EndpointAction(Params):
    host: str = Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")
    """The endpoint: its id, host name or an IP address."""
    reason: Reason = ""


def _edr(action: EdrAction) -> Callable[[StepEnv, EndpointAction], Awaitable[dict[str, Any]]]:
    async def run(env: StepEnv, p: EndpointAction) -> dict[str, Any]:
        if env.edr is None:
            raise ServiceUnavailable({"service": "edr", "reason": "no EDR service"})
        return await env.edr.carry_out(
            action=action,
            target=p.host,
            key=env.run_key(f"edr.{action.value}", p.host),
            actor=env.actor,
            reason=p.reason or f"playbook {env.playbook_id} ({env.execution_id})",
            approved_by=env.approved_by,
        )

    return run


def _indicator(kind: str) -> Callable[[str], str]:
    def normalised(value: str) -> str:
        try:
            return normalise_ioc(kind, value).value
        except ValidationFailed as err:
            raise ValueError(_reason(err)) from err

    return normalised


class Block(Params):
    value: str = Field(min_length=1, max_length=4096)
    reason: Reason = ""
    duration_seconds: int | None = Field(default=None, ge=60, le=90 * 86400)
    """How long the block should hold; unset: until lifted."""


class BlockIp(Block):
    value: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_indicator("ip"))]


class BlockDomain(Block):
    value: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_indicator("domain"))]


class BlockUrl(Block):
    value: Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_indicator("url"))]


class BlockSender(Block):
    value: Annotated[str, Field(min_length=3, max_length=320), AfterValidator(_indicator("email"))]


def _dispatch[B: Block](action: str) -> Callable[[StepEnv, B], Awaitable[dict[str, Any]]]:
    async def run(env: StepEnv, p: B) -> dict[str, Any]:
        key = env.run_key(action, p.value)
        order = {
            "key": key,
            "investigation_id": env.execution_id,
            "execution_id": env.execution_id,
            "playbook_id": env.playbook_id,
            "action": action,
            "target": p.value,
            "reason": p.reason or f"playbook {env.playbook_id}",
            "duration_seconds": p.duration_seconds,
            "approved_by": env.approved_by,
            "corroborated_by": list(env.corroborated_by),
        }
        env.bus.publish(RESPONSE_TOPIC, order)
        return {"dispatched_to": RESPONSE_TOPIC, **order}

    return run


# --- approval ----------------------------------------------------------------------------------


class Approval(Params):
    prompt: str = Field(min_length=1, max_length=2000)
    """What the approver is asked."""
    timeout_seconds: int | None = Field(default=None, ge=60, le=7 * 86400)
    """How long to wait before the request expires (failing closed); unset: the platform's."""


async def _decided_by_a_human(_env: StepEnv, _p: Approval) -> dict[str, Any]:
    raise RuntimeError("an approval step is decided by a human; the engine never runs it")


# --- the table ---------------------------------------------------------------------------------


def _kinds() -> dict[str, StepKind[Any]]:
    def edr(action: EdrAction, guardrail: str, summary: str, verb: str) -> StepKind[Any]:
        return StepKind(
            f"edr.{action.value}",
            summary,
            EndpointAction,
            Effect.RESPONSE,
            _edr(action),
            lambda p: f"{verb} endpoint {p.host} through its EDR connector",
            guardrail,
            lambda p: p.host,
        )

    def block(name: str, model: type[Block], action: str, what: str) -> StepKind[Any]:
        return StepKind(
            name,
            f"Block {what} at the network and mail integrations (published on {RESPONSE_TOPIC})",
            model,
            Effect.RESPONSE,
            _dispatch(action),
            lambda p: f"{action} {p.value}",
            action,
            lambda p: str(p.value),
        )

    kinds: list[StepKind[Any]] = [
        StepKind(
            "logs.search",
            "Search the log store with the search language over a window",
            LogSearch,
            Effect.READ,
            search_logs,
            lambda p: f"search the logs for {p.query or 'everything'!r}",
        ),
        StepKind(
            "intel.enrich",
            "Judge indicators with the threat-intel specialist (feeds and reputation)",
            Enrich,
            Effect.READ,
            enrich,
            lambda p: f"ask threat_intel about {len(p.indicators)} indicator(s)",
        ),
        StepKind(
            "agent.call",
            "Call a specialist's method through the handoff client",
            AgentCall,
            Effect.READ,
            call_agent,
            lambda p: f"call {p.agent}.{p.method}",
        ),
        StepKind(
            "alert.get",
            "Read an alert (with its indicators)",
            AlertGet,
            Effect.READ,
            get_alert,
            lambda p: f"read alert {p.alert_id}",
        ),
        StepKind(
            "alert.tag",
            "Add tags to an alert",
            AlertTag,
            Effect.RECORD,
            tag_alert,
            lambda p: f"tag alert {p.alert_id} with {', '.join(p.tags)}",
            "alert.tag",
            lambda p: p.alert_id,
        ),
        StepKind(
            "alert.assign",
            "Assign an alert (and start work on it)",
            AlertAssign,
            Effect.RECORD,
            assign_alert,
            lambda p: f"assign alert {p.alert_id} to {p.assignee}",
            "alert.assign",
            lambda p: p.alert_id,
        ),
        StepKind(
            "case.create",
            "Open a case (from an alert, carrying its entities) with observables",
            CaseOpen,
            Effect.RECORD,
            open_case,
            lambda p: (
                f"open case {p.title!r}" + (f" from alert {p.alert_id}" if p.alert_id else "")
            ),
            "case.create",
            lambda p: p.alert_id or p.title,
        ),
        StepKind(
            "case.update",
            "Change a case's status, severity, assignee or tags, or add a comment",
            CaseChange,
            Effect.RECORD,
            update_case,
            lambda p: f"update case {p.case_id}",
            "case.update",
            lambda p: p.case_id,
        ),
        StepKind(
            "case.add_observable",
            "Add an observable to a case (merged into one it holds)",
            CaseObservable,
            Effect.RECORD,
            add_observable,
            lambda p: f"add {p.type} {p.value} to case {p.case_id}",
            "case.add_observable",
            lambda p: p.case_id,
        ),
        StepKind(
            "notify",
            f"Notify analysts (published on {NOTIFY_TOPIC}, and to the webhook when one is set)",
            Notify,
            Effect.RECORD,
            notify,
            lambda p: f"notify {p.channel}: {p.message[:120]}",
            "notify",
            lambda p: p.channel,
        ),
        edr(EdrAction.ISOLATE, "isolate_host", "Isolate an endpoint from the network", "isolate"),
        edr(EdrAction.UNISOLATE, "release_host", "Release an isolated endpoint", "release"),
        edr(EdrAction.SCAN, "scan_host", "Scan an endpoint for malware", "scan"),
        block("network.block_ip", BlockIp, "block_ip", "an IP address"),
        block("network.block_domain", BlockDomain, "block_domain", "a domain"),
        block("network.block_url", BlockUrl, "block_url", "a URL"),
        block("email.block_sender", BlockSender, "block_sender", "a mail sender"),
        StepKind(
            "approval",
            "Wait for a human's approval before going on",
            Approval,
            Effect.APPROVAL,
            _decided_by_a_human,
            lambda p: f"ask for approval: {p.prompt[:200]}",
        ),
    ]
    return {kind.name: kind for kind in kinds}


STEP_KINDS: Final[dict[str, StepKind[Any]]] = _kinds()
"""Every step kind a playbook may use, by name."""
