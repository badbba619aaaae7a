"""What the assistant can call, each call made as the user who is chatting.

Every tool names the permission the matching API route needs; a caller without it gets the
tool's refusal, never its result (a viewer cannot dispatch through chat what they cannot
dispatch through the API). Arguments are validated like a request body. Each output carries
the platform objects it read, so that answers cite them, and is shown to the model fenced as
untrusted data (alert titles, log lines and intel records are whatever their sources wrote).

Only ``dispatch_investigation`` changes anything; the others read.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.acp.client import CallOptions, HandoffClient
from agents.acp.protocol import RpcError
from core.db import Database
from core.errors import AuroraError, PermissionDenied
from core.llm.types import Tool
from core.logstore.store import LogStore, SearchRequest
from core.schemas import PageQuery, Severity
from core.security.permissions import Permission
from core.validation import field_error
from gateway.alerts import service as alerts
from gateway.alerts.schemas import AlertListQuery, AlertStatus
from gateway.auth.service import Principal
from gateway.cases import service as cases
from gateway.cases.schemas import CaseListQuery, CaseStatus
from gateway.detections.conversion import SigmaConverter
from gateway.investigations import service as investigations
from gateway.investigations.schemas import InvestigateRequest, Priority
from tools.attack import AttackKB
from tools.ioc import Ioc, extract_iocs, normalise_ioc

MAX_ROWS: Final = 20
TEXT_CHARS: Final = 500
INTEL_AGENT: Final = "threat_intel"
INTEL_METHOD: Final = "analyze_threat"
INTEL_TIMEOUT_SECONDS: Final = 30.0
INDICATOR_TYPES: Final = frozenset({"ip", "domain", "url", "email", "hash"})


@dataclass(frozen=True, slots=True)
class ToolEnv:
    """The platform a tool reaches, and who is calling."""

    database: Database
    logstore: LogStore
    handoff: HandoffClient
    wake_runner: Callable[[], None]
    attack: Callable[[], AttackKB]
    sigma: SigmaConverter
    principal: Principal


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """A tool's result: ``data`` for the model, ``summary`` (Markdown) for a person, and the
    platform objects it read."""

    data: object
    summary: str
    citations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ChatTool:
    name: str
    description: str
    arguments: type[BaseModel]
    permission: Permission | None
    effectful: bool
    run: Callable[[ToolEnv, Any], Awaitable[ToolOutput]]

    @property
    def spec(self) -> Tool:
        """The tool as the model is offered it (built once per tool)."""
        return _spec(self.name, self.description, self.arguments)

    async def call(self, env: ToolEnv, arguments: dict[str, Any]) -> ToolOutput:
        """Run as ``env.principal``: AURORA-4030 without the permission, AURORA-4220 for bad
        arguments (pydantic's ``ValidationError``), or the output."""
        if self.permission is not None and self.permission not in env.principal.permissions:
            raise PermissionDenied(
                {"reason": f"this needs {self.permission.value}", "tool": self.name},
            )
        return await self.run(env, self.arguments.model_validate(arguments))


@functools.cache
def _spec(name: str, description: str, arguments: type[BaseModel]) -> Tool:
    schema = arguments.model_json_schema()
    schema.pop("title", None)
    return Tool(name, description, schema)


def _short(text: object, limit: int = TEXT_CHARS) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- logs -----------------------------------------------------------------------------------


class SearchLogs(_Args):
    query: str = Field(
        min_length=1, max_length=2000, description="SIEM search: words, field:value, AND/OR"
    )
    hours: int = Field(default=24, ge=1, le=24 * 90, description="how far back to search")
    limit: int = Field(default=MAX_ROWS, ge=1, le=100)


_LOG_FIELDS: Final = (
    "id",
    "timestamp",
    "source",
    "host.name",
    "user.name",
    "source.ip",
    "destination.ip",
    "destination.port",
    "event.action",
    "event.outcome",
    "process.command_line",
    "url.full",
    "dns.question.name",
    "message",
)


async def _search_logs(env: ToolEnv, args: SearchLogs) -> ToolOutput:
    end = datetime.now(UTC)
    page = await env.logstore.search(
        SearchRequest(
            start=end - timedelta(hours=args.hours), end=end, query=args.query, limit=args.limit
        )
    )
    events = [
        {key: _short(item[key], 300) for key in _LOG_FIELDS if item.get(key) not in (None, "")}
        for item in page.items
    ]
    lines = [
        f"- `{event.get('id')}` {event.get('timestamp', '')} {event.get('source', '')}: "
        f"{_short(event.get('message') or event.get('event.action') or '', 160)}"
        for event in events
    ]
    summary = f"{len(events)} event(s) for `{_short(args.query, 200)}` in the last {args.hours} h"
    return ToolOutput(
        {"query": args.query, "hours": args.hours, "count": len(events), "events": events},
        "\n".join([summary, *lines]),
        tuple(("log", str(event["id"])) for event in events if "id" in event),
    )


# -- alerts and cases ------------------------------------------------------------------------


class ListAlerts(_Args):
    severity: Severity | None = None
    status: AlertStatus | None = None
    limit: int = Field(default=10, ge=1, le=MAX_ROWS)


class GetAlert(_Args):
    alert_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9-]+$")


def _alert(row: Any, *, full: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row.id,
        "title": _short(row.title, 300),
        "severity": row.severity,
        "status": row.status,
        "source": row.source,
        "case_id": row.case_id,
        "created_at": _when(row.created_at),
    }
    if full:
        item.update(
            description=_short(row.description, 2000),
            rule_id=row.rule_id,
            assignee=row.assignee,
            tags=list(row.tags or []),
            entities=list(row.entities or [])[:50],
            occurrences=row.occurrences,
            first_seen=_when(row.first_seen),
            last_seen=_when(row.last_seen),
        )
    return item


async def _list_alerts(env: ToolEnv, args: ListAlerts) -> ToolOutput:
    query = AlertListQuery(limit=args.limit, severity=args.severity, status=args.status)
    async with env.database.session() as db:
        rows, total = await alerts.list_alerts(db=db, query=query)
    items = [_alert(row) for row in rows]
    lines = [
        f"- **{i['id']}** [{i['severity']}, {i['status']}] {_short(i['title'], 120)}" for i in items
    ]
    return ToolOutput(
        {"total": total, "alerts": items},
        "\n".join([f"{total} alert(s) match; the newest {len(items)}:", *lines]),
        tuple(("alert", i["id"]) for i in items),
    )


async def _get_alert(env: ToolEnv, args: GetAlert) -> ToolOutput:
    async with env.database.session() as db:
        row = await alerts.get_alert(db=db, alert_id=args.alert_id)
        item = _alert(row, full=True)
    summary = (
        f"**{item['id']}** [{item['severity']}, {item['status']}] {_short(item['title'], 200)}"
        f"\n\n{_short(item['description'], 600)}"
    )
    cited: list[tuple[str, str]] = [("alert", item["id"])]
    if item["case_id"]:
        cited.append(("case", item["case_id"]))
    return ToolOutput(item, summary, tuple(cited))


class ListCases(_Args):
    severity: Severity | None = None
    status: CaseStatus | None = None
    limit: int = Field(default=10, ge=1, le=MAX_ROWS)


class GetCase(_Args):
    case_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9-]+$")


def _case(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": _short(row.title, 300),
        "severity": row.severity,
        "status": row.status,
        "assignee": row.assignee,
        "created_at": _when(row.created_at),
    }


async def _list_cases(env: ToolEnv, args: ListCases) -> ToolOutput:
    query = CaseListQuery(limit=args.limit, severity=args.severity, status=args.status)
    async with env.database.session() as db:
        rows, total = await cases.list_cases(db=db, query=query)
    items = [_case(row) for row in rows]
    lines = [
        f"- **{i['id']}** [{i['severity']}, {i['status']}] {_short(i['title'], 120)}" for i in items
    ]
    return ToolOutput(
        {"total": total, "cases": items},
        "\n".join([f"{total} case(s) match; the newest {len(items)}:", *lines]),
        tuple(("case", i["id"]) for i in items),
    )


async def _get_case(env: ToolEnv, args: GetCase) -> ToolOutput:
    async with env.database.session() as db:
        row = await cases.get_case(db=db, case_id=args.case_id)
        item = _case(row) | {"description": _short(row.description, 2000), "tags": row.tags}
        observables, _ = await cases.list_observables(
            db=db, case_id=row.id, query=PageQuery(limit=50)
        )
        item["observables"] = [
            {"type": o.type, "value": _short(o.value, 300), "ioc": o.ioc} for o in observables
        ]
        linked = await cases.linked_alerts(db=db, case_id=row.id)
        item["alerts"] = [str(alert.id) for alert in linked[:50]]
    summary = (
        f"**{item['id']}** [{item['severity']}, {item['status']}] {_short(item['title'], 200)}"
        f"\n\n{_short(item['description'], 600)}\n\n{len(item['observables'])} observable(s), "
        f"{len(item['alerts'])} alert(s)"
    )
    cited = [("case", item["id"]), *(("alert", a) for a in item["alerts"])]
    return ToolOutput(item, summary, tuple(cited))


# -- intel and ATT&CK ------------------------------------------------------------------------


class LookupIndicator(_Args):
    value: str = Field(min_length=1, max_length=2048, description="an IP, domain, URL, hash")
    type: Literal["ip", "domain", "url", "email", "hash"] | None = Field(
        default=None, description="the indicator's type; found from the value when left out"
    )


def indicator_of(value: str, kind: str | None) -> Ioc:
    """The indicator ``value`` names (of type ``kind`` when given); AURORA-4220 when it is not
    one."""
    if kind is not None:
        return normalise_ioc(kind, value)
    found = [ioc for ioc in extract_iocs(value) if ioc.type in INDICATOR_TYPES]
    if len(found) != 1:
        raise field_error(["value"], "not one indicator (IP, domain, URL, hash, email)", "ioc")
    return found[0]


async def _lookup(env: ToolEnv, args: LookupIndicator) -> ToolOutput:
    ioc = indicator_of(args.value, args.type)
    kind = ioc.type
    params = {"iocs": [{"type": kind, "value": ioc.value}], "context": ""}
    try:
        finding = await env.handoff.call(
            INTEL_AGENT,
            INTEL_METHOD,
            params,
            CallOptions(timeout=INTEL_TIMEOUT_SECONDS),
        )
    except RpcError as err:
        raise investigations.as_platform_error(err, INTEL_AGENT, INTEL_METHOD) from err
    data = {
        "indicator": {"type": kind, "value": args.value},
        "severity": finding.get("severity"),
        "confidence": finding.get("confidence"),
        "summary": _short(finding.get("summary"), 1500),
        "mitre_techniques": finding.get("mitre_techniques", [])[:20],
        "evidence": [
            {"kind": e.get("kind"), "summary": _short(e.get("summary"), 400)}
            for e in finding.get("evidence", [])[:10]
            if isinstance(e, dict)
        ],
    }
    summary = (
        f"Threat intel on `{_short(args.value, 200)}` ({kind}): {data['severity']} "
        f"(confidence {data['confidence']}). {data['summary']}"
    )
    return ToolOutput(data, summary)


class MapAttack(_Args):
    text: str = Field(min_length=1, max_length=8000)
    limit: int = Field(default=5, ge=1, le=10)


async def _map_attack(env: ToolEnv, args: MapAttack) -> ToolOutput:
    kb = env.attack()
    matches = kb.map_text(args.text, limit=args.limit)
    items = []
    for match in matches:
        found = kb.get(match.technique_id)
        items.append(
            {
                "technique_id": match.technique_id,
                "name": found.technique.name if found is not None else None,
                "score": round(float(match.score), 3),
            }
        )
    lines = [f"- {i['technique_id']} {i['name']} ({i['score']})" for i in items]
    head = "ATT&CK techniques the text describes:" if items else "No ATT&CK technique matched."
    return ToolOutput({"techniques": items}, "\n".join([head, *lines]))


# -- investigations --------------------------------------------------------------------------


class DispatchInvestigation(_Args):
    alert_id: str | None = Field(default=None, max_length=32, pattern=r"^[A-Za-z0-9-]+$")
    case_id: str | None = Field(default=None, max_length=32, pattern=r"^[A-Za-z0-9-]+$")
    priority: Priority = "normal"


async def _dispatch(env: ToolEnv, args: DispatchInvestigation) -> ToolOutput:
    body = InvestigateRequest.model_validate(
        {"alert_id": args.alert_id, "case_id": args.case_id, "priority": args.priority}
    )
    async with env.database.session() as db:
        investigation = await investigations.enqueue(db=db, actor=env.principal.username, body=body)
    env.wake_runner()
    subject = args.alert_id or args.case_id
    return ToolOutput(
        {"investigation_id": investigation.id, "status": investigation.status},
        f"Investigation **{investigation.id}** of {subject} is queued.",
        (("investigation", investigation.id),),
    )


class GetInvestigation(_Args):
    investigation_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9-]+$")


async def _get_investigation(env: ToolEnv, args: GetInvestigation) -> ToolOutput:
    async with env.database.session() as db:
        row = await investigations.get_investigation(db=db, investigation_id=args.investigation_id)
        receipt = row.receipt if isinstance(row.receipt, dict) else None
        item: dict[str, Any] = {
            "id": row.id,
            "status": row.status,
            "alert_id": row.alert_id,
            "case_id": row.case_id,
            "requested_by": row.requested_by,
            "error": _short(row.error, 500) if row.error else None,
        }
    if receipt is not None:
        item["receipt"] = {
            key: receipt[key]
            for key in (
                "verdict",
                "severity",
                "confidence",
                "summary",
                "mitre_techniques",
                "iocs",
                "actions",
                "agents",
            )
            if key in receipt
        }
    verdict = (receipt or {}).get("verdict") or (receipt or {}).get("severity")
    summary = f"Investigation **{row.id}**: {row.status}" + (
        f", verdict {verdict}" if verdict else ""
    )
    cited: list[tuple[str, str]] = [("investigation", row.id)]
    if item["alert_id"]:
        cited.append(("alert", item["alert_id"]))
    if item["case_id"]:
        cited.append(("case", item["case_id"]))
    return ToolOutput(item, summary, tuple(cited))


# -- detection engineering ---------------------------------------------------------------------


class DraftSigma(_Args):
    rule: str = Field(min_length=1, max_length=64_000, description="a Sigma rule in YAML")


async def _draft_sigma(env: ToolEnv, args: DraftSigma) -> ToolOutput:
    try:
        conversion = await env.sigma.convert(args.rule)
    except AuroraError as err:
        return ToolOutput(
            {"valid": False, "error": err.message, "detail": err.detail},
            f"The draft is not a valid Sigma rule: {_short(err.detail, 400)}",
        )
    data = {
        "valid": True,
        "title": conversion.meta.title,
        "logsource": conversion.meta.logsource,
        "condition_sql": _short(conversion.condition, 4000),
        "warnings": list(conversion.warnings),
        "logsource_error": conversion.logsource_error,
        "rule": args.rule,
    }
    return ToolOutput(
        data,
        f"Sigma rule *{_short(conversion.meta.title, 200)}* converts for the log store"
        + (f" (warning: {conversion.logsource_error})" if conversion.logsource_error else "."),
    )


TOOLS: Final[tuple[ChatTool, ...]] = (
    ChatTool(
        "search_logs",
        "Search the SIEM's stored logs and telemetry (newest first).",
        SearchLogs,
        Permission.SIEM_READ,
        False,
        _search_logs,
    ),
    ChatTool(
        "list_alerts",
        "List alerts, newest first, optionally by severity and status.",
        ListAlerts,
        Permission.ALERTS_READ,
        False,
        _list_alerts,
    ),
    ChatTool("get_alert", "Show one alert.", GetAlert, Permission.ALERTS_READ, False, _get_alert),
    ChatTool(
        "list_cases",
        "List cases, newest first, optionally by severity and status.",
        ListCases,
        Permission.CASES_READ,
        False,
        _list_cases,
    ),
    ChatTool(
        "get_case",
        "Show one case with its observables and alerts.",
        GetCase,
        Permission.CASES_READ,
        False,
        _get_case,
    ),
    ChatTool(
        "lookup_indicator",
        "Look up an indicator (IP, domain, URL, hash, email) in threat intelligence: feed "
        "matches and reputation.",
        LookupIndicator,
        Permission.INVESTIGATIONS_READ,
        False,
        _lookup,
    ),
    ChatTool(
        "map_attack",
        "Map a description of activity to MITRE ATT&CK techniques.",
        MapAttack,
        None,
        False,
        _map_attack,
    ),
    ChatTool(
        "dispatch_investigation",
        "Dispatch an investigation of an alert or a case to the specialist agents.",
        DispatchInvestigation,
        Permission.INVESTIGATIONS_WRITE,
        True,
        _dispatch,
    ),
    ChatTool(
        "get_investigation",
        "Show an investigation's status and receipt (verdict, findings, actions).",
        GetInvestigation,
        Permission.INVESTIGATIONS_READ,
        False,
        _get_investigation,
    ),
    ChatTool(
        "draft_sigma_rule",
        "Check a drafted Sigma rule (YAML): whether it is valid and what it converts to.",
        DraftSigma,
        Permission.SIEM_READ,
        False,
        _draft_sigma,
    ),
)
BY_NAME: Final = {tool.name: tool for tool in TOOLS}


def failure_text(err: BaseException) -> str:
    """What a failed call tells the model and the user, in the platform's words."""
    if isinstance(err, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
            for e in err.errors(include_url=False, include_input=False)[:5]
        )
        return f"invalid arguments: {problems}"
    if isinstance(err, AuroraError):
        detail = err.detail
        reason = detail.get("reason") if isinstance(detail, dict) else None
        return f"{err.message}" + (f": {reason}" if reason else "")
    return "the tool failed"
