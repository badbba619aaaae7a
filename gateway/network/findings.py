"""Network findings: the network specialist's analysis of a window of stored telemetry, of an
attack's events, or of records given inline, kept and listed.

Stored events are handed to the specialist in its own wire shapes: Suricata events as the EVE
objects they were ingested as; Zeek DNS, HTTP and TLS records as the EVE ``dns``/``http``/
``tls`` events that say the same (the name, the answer code, the host, the SNI); every other
record with two addresses (Zeek conn and the other Zeek logs, NetFlow/IPFIX) as a flow record
with its byte counts. The specialist does the analysis (beaconing, scans, exfiltration, DNS
abuse, IDS alert triage); this module chooses what it sees and keeps what it says.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from sqlalchemy import ColumnElement, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agents.acp.client import CallOptions, HandoffClient
from agents.acp.protocol import INVALID_PARAMS, RpcError
from core.db import Database
from core.db.base import utcnow
from core.db.pages import fetch_page
from core.db.sequences import next_id
from core.errors import AuroraError, NotFound, ServiceUnavailable
from core.logstore.query import compile_query
from core.logstore.store import LogStore
from core.schemas import SEVERITY_RANK
from core.validation import field_error
from gateway.network.configuration import NetworkConfig
from gateway.network.models import NetworkAttack, NetworkFinding
from gateway.network.schemas import AnalyzeRequest, FindingQuery, FindingRead

log = logging.getLogger("aurora.network.findings")

AGENT: Final = "network"
METHOD: Final = "analyze_network"
TELEMETRY_FORMATS: Final = ("suricata", "zeek", "netflow")
DEFAULT_WINDOW: Final = timedelta(hours=1)
ANALYZE_TIMEOUT_SECONDS: Final = 120.0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _address(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value))) if value not in (None, "") else None
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def as_telemetry(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stored events as the specialist's ``flows`` and ``alerts`` (EVE events); events with
    nothing it reads (no two addresses, no name) are left out."""
    flows: list[dict[str, Any]] = []
    eve: list[dict[str, Any]] = []
    for event in events:
        fmt = event.get("format")
        if fmt == "suricata":
            try:
                original = orjson.loads(event.get("raw") or "{}")
            except orjson.JSONDecodeError:
                continue
            if isinstance(original, dict) and _text(original.get("event_type")):
                eve.append(original)
            continue
        src, dst = _address(event.get("source.ip")), _address(event.get("destination.ip"))
        if src is None or dst is None:
            continue
        when = event.get("timestamp")
        code = event.get("event.code")
        fields = event.get("fields") or {}
        base = {
            "timestamp": when,
            "src_ip": src,
            "dest_ip": dst,
            "src_port": _int(event.get("source.port")),
            "dest_port": _int(event.get("destination.port")),
            "proto": (_text(event.get("network.transport")) or "").upper() or None,
        }
        if code == "dns" and (name := _text(event.get("dns.question.name"))):
            dns = {"type": "query", "rrname": name}
            if rrtype := _text(fields.get("qtype_name")):
                dns["rrtype"] = rrtype
            if rcode := _text(fields.get("rcode_name")):
                dns["rcode"] = rcode
            eve.append({**base, "event_type": "dns", "dns": dns})
            continue
        if code == "http" and (host := _text(fields.get("host"))):
            eve.append({**base, "event_type": "http", "http": {"hostname": host}})
            continue
        if code == "ssl" and (sni := _text(fields.get("server_name"))):
            eve.append({**base, "event_type": "tls", "tls": {"sni": sni}})
            continue
        duration = _int(event.get("event.duration"))
        flows.append(
            {
                "ts": when,
                "src_ip": src,
                "dst_ip": dst,
                "src_port": base["src_port"],
                "dst_port": base["dest_port"],
                "proto": base["proto"] or "TCP",
                "bytes_out": _int(event.get("source.bytes")),
                "bytes_in": _int(event.get("destination.bytes")),
                "duration": duration / 1e9 if duration is not None else None,
            }
        )
    return flows, eve


def _sensor_condition(sensor: str) -> tuple[str, dict[str, Any]]:
    return (
        "(observer_name = {sensor:String} OR source = {sensor:String})",
        {"sensor": sensor},
    )


async def _stored(
    store: LogStore, body: AnalyzeRequest, *, start: datetime, end: datetime
) -> tuple[int, list[dict[str, Any]]]:
    conditions = ["format IN ('suricata', 'zeek', 'netflow')"]
    parameters: dict[str, Any] = {}
    if body.query:
        compiled = compile_query(body.query)
        conditions.append(f"({compiled.sql})")
        parameters.update(compiled.parameters)
    if body.sensor:
        sql, bound = _sensor_condition(body.sensor)
        conditions.append(sql)
        parameters.update(bound)
    return await store.matching(
        " AND ".join(conditions), parameters, start=start, end=end, limit=body.limit
    )


async def analyze(
    *,
    database: Database,
    store: LogStore,
    handoff: HandoffClient,
    config: NetworkConfig,
    actor: str,
    body: AnalyzeRequest,
) -> FindingRead:
    """Run the network specialist on what ``body`` names and keep its finding (a failed run is
    kept too, with its error, and its AURORA error is raised)."""
    inline = body.flows is not None or body.eve is not None
    if inline and (body.start or body.end or body.query or body.sensor or body.attack_id):
        raise field_error(
            ["body"], "give records (flows, eve) or a window of stored telemetry, not both"
        )
    window_start: datetime | None = None
    window_end: datetime | None = None
    scope: dict[str, Any]
    attack_id = body.attack_id
    if inline:
        flows, eve = list(body.flows or []), list(body.eve or [])
        scope = {"kind": "records", "flows": len(flows), "eve": len(eve)}
    else:
        if attack_id is not None:
            async with database.session() as db:
                attack = await db.get(NetworkAttack, attack_id)
                if attack is None:
                    raise NotFound({"attack_id": attack_id})
                event_ids, first, last = attack.event_ids, attack.first_seen, attack.last_seen
            margin = timedelta(seconds=1)
            window_start, window_end = first - margin, last + margin
            events = await store.by_ids(event_ids, start=window_start, end=window_end)
            matched = len(events)
        else:
            window_end = body.end or datetime.now(UTC)
            window_start = body.start or window_end - DEFAULT_WINDOW
            if window_end <= window_start:
                raise field_error(["body", "end"], "end must be after start")
            matched, events = await _stored(store, body, start=window_start, end=window_end)
        flows, eve = as_telemetry(events)
        scope = {
            "kind": "attack" if attack_id else "window",
            "query": body.query,
            "sensor": body.sensor,
            "events_matched": matched,
            "events_read": len(events),
            "flows": len(flows),
            "eve": len(eve),
            "truncated": matched > len(events),
        }
    params: dict[str, Any] = {
        "flows": flows,
        "alerts": eve,
        "iocs": list(body.iocs or []),
        "home_networks": [str(n) for n in config.home_networks][:256],
    }
    if not (flows or eve or params["iocs"]):
        raise field_error(["body"], "no network telemetry to analyse in what was named", "empty")
    started = time.perf_counter()
    finding: dict[str, Any] = {}
    error: AuroraError | None = None
    try:
        result = await handoff.call(
            AGENT,
            METHOD,
            params,
            CallOptions(timeout=ANALYZE_TIMEOUT_SECONDS, investigation_id=attack_id),
        )
        finding = result if isinstance(result, dict) else {"result": result}
    except RpcError as err:
        if err.code == INVALID_PARAMS:  # records the specialist refuses: nothing is kept
            why = err.data if isinstance(err.data, str) else orjson.dumps(err.data).decode()
            raise field_error(
                ["body", "flows" if flows else "eve"], f"{err.message}: {why}"[:2000], "refused"
            ) from err
        error = ServiceUnavailable({"agent": AGENT, "reason": err.message[:200]})
    except AuroraError as err:
        error = err
    duration = round((time.perf_counter() - started) * 1000, 3)
    severity = str(finding.get("severity") or "informational")
    if severity not in SEVERITY_RANK:
        severity = "informational"
    async with database.session() as db:
        row = NetworkFinding(
            id=await next_id(db, "NFND"),
            status="failed" if error is not None else "succeeded",
            requested_by=actor,
            created_at=utcnow(),
            window_start=window_start,
            window_end=window_end,
            scope=scope,
            attack_id=attack_id,
            severity=severity,
            confidence=float(finding.get("confidence") or 0.0),
            summary=str(finding.get("summary") or (error.message if error else ""))[:10_000],
            techniques=[str(t) for t in finding.get("mitre_techniques") or []][:100],
            finding=finding,
            error=error.message if error is not None else None,
            duration_ms=duration,
        )
        db.add(row)
        await db.commit()
        read = FindingRead.model_validate(row)
    if error is not None:
        raise error
    return read


async def list_findings(
    *, db: AsyncSession, query: FindingQuery
) -> tuple[list[NetworkFinding], int]:
    where: list[ColumnElement[bool]] = []
    if query.severity is not None:
        where.append(NetworkFinding.severity.in_(query.severity.and_above()))
    if query.status is not None:
        where.append(NetworkFinding.status == query.status)
    if query.technique is not None:
        text = func.lower(func.cast(NetworkFinding.techniques, String()))
        where.append(text.like(f'%"{query.technique.lower()}%'))
    if query.attack_id is not None:
        where.append(NetworkFinding.attack_id == query.attack_id)
    if query.since is not None:
        where.append(NetworkFinding.created_at >= query.since)
    if query.until is not None:
        where.append(NetworkFinding.created_at < query.until)
    return await fetch_page(
        db,
        NetworkFinding,
        where=where,
        sort=query.sort,
        limit=query.limit,
        offset=query.offset,
        ranked={"severity": SEVERITY_RANK},
    )


async def finding_counts(db: AsyncSession) -> dict[str, Any]:
    rows = await db.execute(
        select(NetworkFinding.status, func.count(), func.max(NetworkFinding.created_at)).group_by(
            NetworkFinding.status
        )
    )
    by_status: dict[str, int] = {}
    last: datetime | None = None
    for status, count, newest in rows:
        by_status[str(status)] = int(count)
        if newest is not None and (last is None or newest > last):
            last = newest
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "last_at": last.isoformat() if last else None,
    }
