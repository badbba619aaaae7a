"""Network attacks: what the detectors found, kept as one record per ongoing activity, listed,
promoted to a case and answered with a response through SOAR.

A detection whose key (detector, source, target) matches an attack last seen within the
configuration's ``dedupe_seconds`` updates that attack (its last sighting, the detections
counted, the widest severity and confidence, the events behind it) instead of opening another:
a scan that goes on for an hour is one attack seen sixty times, not sixty attacks.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import ColumnElement, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.db.lookup import get_or_404
from core.db.pages import fetch_page
from core.db.sequences import next_id
from core.errors import Conflict
from core.logstore.store import LogStore
from core.schemas import SEVERITY_RANK, Severity
from core.validation import validate
from gateway.cases import api as cases
from gateway.cases.schemas import CaseCreate
from gateway.network.configuration import Detector, NetworkConfig
from gateway.network.models import NetworkAttack
from gateway.network.schemas import (
    AttackDetail,
    AttackDispatch,
    AttackDispatched,
    AttackPromote,
    AttackPromoted,
    AttackQuery,
    AttackRead,
)
from gateway.soar.automation import PlaybookStarter

log = logging.getLogger("aurora.network.attacks")

MAX_LISTED: Final = 100
"""The most destination addresses, ports and domains an attack keeps."""
MAX_EVENTS: Final = 50
"""The most event ids an attack keeps (the newest detection's first)."""
DEFAULT_PLAYBOOK: Final = "network-attack-response"
TOPIC: Final = "network.attacks"
"""The bus topic a new or updated attack is published on (automation's ``network.attack``
trigger)."""

COMPROMISE: Final = frozenset(
    {Detector.BEACONING, Detector.EXFILTRATION, Detector.DNS_TUNNELLING, Detector.DGA}
)
"""Detectors whose internal source is itself the compromised host (it calls out)."""


class Detected(Protocol):
    """What a detector reports (:class:`gateway.network.detectors.Candidate`)."""

    @property
    def detector(self) -> Detector: ...
    @property
    def key(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def confidence(self) -> float: ...
    @property
    def techniques(self) -> list[str]: ...
    @property
    def source_ip(self) -> str | None: ...
    @property
    def destination_ips(self) -> list[str]: ...
    @property
    def destination_ports(self) -> list[int]: ...
    @property
    def domains(self) -> list[str]: ...
    @property
    def first_seen(self) -> datetime: ...
    @property
    def last_seen(self) -> datetime: ...
    @property
    def evidence(self) -> dict[str, Any]: ...
    @property
    def event_ids(self) -> list[str]: ...
    @property
    def query(self) -> str: ...


@dataclass(slots=True)
class Recorded:
    """What :func:`record` did: attacks opened and attacks updated."""

    opened: list[NetworkAttack] = field(default_factory=list)
    updated: list[NetworkAttack] = field(default_factory=list)


def _merge[T](first: Iterable[T], second: Iterable[T], limit: int = MAX_LISTED) -> list[T]:
    return list(dict.fromkeys([*first, *second]))[:limit]


def _ongoing(attack: NetworkAttack, *, now: datetime, dedupe: timedelta) -> bool:
    return attack.status != "dismissed" and attack.last_seen >= now - dedupe


async def _ongoing_attack(db: AsyncSession, key: str, *, since: datetime) -> NetworkAttack | None:
    found = await db.scalars(
        select(NetworkAttack)
        .where(
            NetworkAttack.key == key,
            NetworkAttack.last_seen >= since,
            NetworkAttack.status != "dismissed",
        )
        .order_by(NetworkAttack.last_seen.desc())
        .limit(1)
    )
    return found.first()


async def record(db: AsyncSession, detected: Sequence[Detected], *, dedupe: timedelta) -> Recorded:
    """Open an attack for each new activity and update the ongoing ones, in the caller's
    transaction (it commits)."""
    result = Recorded()
    now = utcnow()
    for found in detected:
        since = min(found.first_seen, now) - dedupe
        attack = await _ongoing_attack(db, found.key[:512], since=since)
        if attack is None:
            attack = NetworkAttack(
                id=await next_id(db, "NATK"),
                detector=found.detector.value,
                key=found.key[:512],
                title=found.title[:500],
                severity=Severity(found.severity).value,
                confidence=round(float(found.confidence), 4),
                status="open",
                techniques=list(found.techniques),
                source_ip=found.source_ip,
                destination_ips=found.destination_ips[:MAX_LISTED],
                destination_ports=found.destination_ports[:MAX_LISTED],
                domains=found.domains[:MAX_LISTED],
                first_seen=found.first_seen,
                last_seen=found.last_seen,
                detections=1,
                evidence=found.evidence,
                event_ids=found.event_ids[:MAX_EVENTS],
                query=found.query,
                responses=[],
                created_at=now,
                updated_at=now,
            )
            db.add(attack)
            await db.flush()
            result.opened.append(attack)
            continue
        attack.title = found.title[:500]
        if SEVERITY_RANK[found.severity] > SEVERITY_RANK[attack.severity]:
            attack.severity = Severity(found.severity).value
        attack.confidence = round(max(attack.confidence, float(found.confidence)), 4)
        attack.techniques = _merge(attack.techniques, found.techniques)
        attack.destination_ips = _merge(attack.destination_ips, found.destination_ips)
        attack.destination_ports = _merge(attack.destination_ports, found.destination_ports)
        attack.domains = _merge(attack.domains, found.domains)
        attack.first_seen = min(attack.first_seen, found.first_seen)
        attack.last_seen = max(attack.last_seen, found.last_seen)
        attack.detections += 1
        attack.evidence = found.evidence
        attack.event_ids = _merge(found.event_ids, attack.event_ids, MAX_EVENTS)
        attack.query = found.query
        attack.updated_at = now
        result.updated.append(attack)
    await db.commit()
    return result


def published(attack: NetworkAttack, *, new: bool) -> dict[str, Any]:
    """The bus payload of a new or updated attack (the ``network.attack`` trigger's event)."""
    return {
        "attack_id": attack.id,
        "new": new,
        "detector": attack.detector,
        "title": attack.title,
        "severity": attack.severity,
        "confidence": attack.confidence,
        "status": attack.status,
        "techniques": attack.techniques,
        "source_ip": attack.source_ip,
        "destination_ips": attack.destination_ips,
        "destination_ports": attack.destination_ports,
        "domains": attack.domains,
        "first_seen": attack.first_seen.isoformat(),
        "last_seen": attack.last_seen.isoformat(),
        "detections": attack.detections,
        "case_id": attack.case_id,
    }


# --- reads --------------------------------------------------------------------------------------


def read_attack(attack: NetworkAttack, *, now: datetime, dedupe: timedelta) -> AttackRead:
    return AttackRead.model_validate(attack).model_copy(
        update={"ongoing": _ongoing(attack, now=now, dedupe=dedupe)}
    )


async def list_attacks(
    *, db: AsyncSession, query: AttackQuery, dedupe: timedelta
) -> tuple[list[AttackRead], int]:
    """A page of attacks matching the filters, in the query's order."""
    now = utcnow()
    where: list[ColumnElement[bool]] = []
    if query.detector is not None:
        where.append(NetworkAttack.detector == query.detector.value)
    if query.severity is not None:
        where.append(NetworkAttack.severity.in_(query.severity.and_above()))
    if query.status is not None:
        where.append(NetworkAttack.status == query.status)
    if query.source_ip is not None:
        where.append(NetworkAttack.source_ip == str(query.source_ip))
    if query.technique is not None:
        # JSON lists are text in both databases: the quoted id, or one of its subtechniques.
        text = func.lower(func.cast(NetworkAttack.techniques, String()))
        where.append(text.like(f'%"{query.technique.lower()}%'))
    if query.ongoing is not None:
        recent = (NetworkAttack.last_seen >= now - dedupe) & (NetworkAttack.status != "dismissed")
        where.append(recent if query.ongoing else ~recent)
    if query.since is not None:
        where.append(NetworkAttack.last_seen >= query.since)
    if query.until is not None:
        where.append(NetworkAttack.first_seen < query.until)
    rows, total = await fetch_page(
        db,
        NetworkAttack,
        where=where,
        sort=query.sort,
        limit=query.limit,
        offset=query.offset,
        ranked={"severity": SEVERITY_RANK},
    )
    return [read_attack(row, now=now, dedupe=dedupe) for row in rows], total


async def get_attack(db: AsyncSession, attack_id: str, *, lock: bool = False) -> NetworkAttack:
    return await get_or_404(db, NetworkAttack, attack_id, name="attack_id", for_update=lock)


async def attack_detail(
    *, db: AsyncSession, store: LogStore, attack_id: str, dedupe: timedelta
) -> AttackDetail:
    """The attack with the events behind it that the store still holds."""
    attack = await get_attack(db, attack_id)
    margin = timedelta(seconds=1)
    events = await store.by_ids(
        attack.event_ids, start=attack.first_seen - margin, end=attack.last_seen + margin
    )
    base = read_attack(attack, now=utcnow(), dedupe=dedupe)
    return AttackDetail(
        **base.model_dump(),
        evidence=attack.evidence,
        query=attack.query,
        event_ids=attack.event_ids,
        responses=attack.responses,
        events=events,
    )


# --- promotion and response -------------------------------------------------------------------


def observables(attack: NetworkAttack) -> list[dict[str, Any]]:
    """The attack's entities as case observables: its addresses and domains."""
    found: list[dict[str, Any]] = []
    if attack.source_ip:
        found.append({"type": "ip", "value": attack.source_ip})
    found += [{"type": "ip", "value": ip} for ip in attack.destination_ips]
    found += [{"type": "domain", "value": name} for name in attack.domains]
    return found


def _description(attack: NetworkAttack) -> str:
    lines = [
        f"Network attack {attack.id} ({attack.detector}), seen {attack.detections} time(s) "
        f"from {attack.first_seen.isoformat()} to {attack.last_seen.isoformat()}.",
        f"Techniques: {', '.join(attack.techniques) or 'none'}.",
    ]
    if attack.source_ip:
        lines.append(f"Source: {attack.source_ip}.")
    if attack.destination_ips:
        lines.append(f"Destinations: {', '.join(attack.destination_ips[:20])}.")
    if attack.destination_ports:
        ports = ", ".join(str(p) for p in attack.destination_ports[:20])
        lines.append(f"Ports: {ports}.")
    if attack.domains:
        lines.append(f"Domains: {', '.join(attack.domains[:20])}.")
    return "\n".join(lines)


async def promote(
    *, db: AsyncSession, actor: str, attack_id: str, body: AttackPromote, dedupe: timedelta
) -> AttackPromoted:
    """Open a case from the attack, its addresses and domains carried as observables, in one
    transaction. An attack already on a case is AURORA-4090 naming it."""
    attack = await get_attack(db, attack_id, lock=True)
    if attack.case_id is not None:
        raise Conflict(
            {"attack_id": attack.id, "case_id": attack.case_id, "reason": "already on a case"}
        )
    fields: dict[str, Any] = {
        "title": attack.title,
        "description": _description(attack),
        "severity": attack.severity,
        "tags": ["network-attack", f"detector:{attack.detector}"]
        + [f"attack:{t.lower()}" for t in attack.techniques[:10]],
        **body.model_dump(exclude_none=True, exclude={"tags"}),
    }
    if body.tags:
        fields["tags"] = [*fields["tags"], *body.tags]
    case_body = validate(CaseCreate, fields)
    origin = f"network attack {attack.id}"
    case_ = await cases.open_case(db=db, actor=actor, body=case_body, origin=origin)
    added, skipped = await cases.attach_observables(
        db=db, actor=actor, case_=case_, entities=observables(attack), origin=origin
    )
    attack.case_id = case_.id
    if attack.status == "open":
        attack.status = "promoted"
    attack.updated_at = utcnow()
    case_id = case_.id
    await db.commit()
    return AttackPromoted(
        attack=read_attack(attack, now=utcnow(), dedupe=dedupe),
        case_id=case_id,
        observables_added=added,
        observables_skipped=skipped,
    )


def _home(address: str | None, config: NetworkConfig) -> bool | None:
    if not address:
        return None
    try:
        return config.is_home(ipaddress.ip_address(address))
    except ValueError:
        return None


def default_response(attack: NetworkAttack, config: NetworkConfig) -> tuple[list[str], list[str]]:
    """(addresses to block, hosts to isolate) for the attack: the external party is blocked
    (an outside source, or the outside peers an inside host calls out to); an inside host is
    isolated when the detection says it is compromised (it beacons, exfiltrates, tunnels or
    resolves generated names), or when it attacks other hosts itself (an inside scanner or
    brute-forcer)."""
    block: list[str] = []
    isolate: list[str] = []
    source_home = _home(attack.source_ip, config)
    outside = [ip for ip in attack.destination_ips if _home(ip, config) is False]
    detector = Detector(attack.detector)
    if attack.source_ip and source_home is False:
        block.append(attack.source_ip)
    elif attack.source_ip and source_home:
        if detector in COMPROMISE:
            block += outside[:20]
        isolate.append(attack.source_ip)
    return list(dict.fromkeys(block)), isolate


async def dispatch(
    *,
    db: AsyncSession,
    starter: PlaybookStarter,
    actor: str,
    attack_id: str,
    body: AttackDispatch,
    config: NetworkConfig,
) -> AttackDispatched:
    """Queue the response playbook for the attack (see :class:`AttackDispatch`); the attack
    records it. The playbook's refusals (unknown, disabled, inputs it refuses) come back as
    they are."""
    attack = await get_attack(db, attack_id)
    if body.playbook_id == DEFAULT_PLAYBOOK:
        block, isolate = default_response(attack, config)
        inputs: dict[str, Any] = {
            "attack_id": attack.id,
            "title": attack.title,
            "severity": attack.severity,
            "block": body.block if body.block is not None else block,
            "isolate": body.isolate if body.isolate is not None else isolate,
            "reason": body.reason or f"{attack.detector} detection {attack.id}: {attack.title}",
        }
        if attack.case_id:
            inputs["case_id"] = attack.case_id
    else:
        inputs = {"attack_id": attack.id, **(body.inputs or {})}
    trigger = {"kind": "network.attack", **published(attack, new=False)}
    execution = await starter.enqueue(
        playbook_id=body.playbook_id, inputs=inputs, actor=actor, trigger=trigger
    )
    attack = await get_attack(db, attack_id, lock=True)
    attack.responses = [
        *attack.responses,
        {
            "execution_id": execution.id,
            "playbook_id": body.playbook_id,
            "by": actor,
            "at": utcnow().isoformat(),
        },
    ][-MAX_LISTED:]
    if attack.status in {"open", "promoted"}:
        attack.status = "responded"
    attack.updated_at = utcnow()
    await db.commit()
    return AttackDispatched(
        attack_id=attack.id,
        execution_id=execution.id,
        playbook_id=body.playbook_id,
        mode=execution.mode,
        status=execution.status,
        inputs=dict(execution.inputs),
    )


async def _grouped(db: AsyncSession, column: Any) -> dict[str, int]:
    rows = await db.execute(select(column, func.count()).group_by(column))
    return {str(value): int(count) for value, count in rows}


async def counts(db: AsyncSession, *, dedupe: timedelta) -> dict[str, Any]:
    """Attacks by status and severity, and how many are ongoing."""
    now = utcnow()
    by_status = await _grouped(db, NetworkAttack.status)
    by_severity = await _grouped(db, NetworkAttack.severity)
    ongoing = await db.scalar(
        select(func.count()).where(
            NetworkAttack.last_seen >= now - dedupe, NetworkAttack.status != "dismissed"
        )
    )
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_severity": by_severity,
        "ongoing": int(ongoing or 0),
    }
