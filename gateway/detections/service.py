"""Detection engineering over the log store: Sigma rules converted once and run on a schedule or
on demand (preview and backfill), alerts raised at most once per event, suppressions, analyst
feedback that yields a precision per rule, metrics; hunts (saved searches) and their runs; and a
rule drafted from one event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

import yaml
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.db.base import utcnow
from core.db.commit import commit_versioned
from core.db.pages import fetch_page
from core.db.sequences import next_id
from core.errors import AuroraError, Conflict, NotFound, ValidationFailed
from core.logstore.query import compile_query
from core.logstore.store import LogStore
from core.validation import EARLIEST
from gateway.alerts.schemas import AlertCreate, Entity
from gateway.alerts.service import create_alert, normalise_entities
from gateway.detections.conversion import SigmaConverter
from gateway.detections.models import (
    DetectionRule,
    Feedback,
    Hunt,
    HuntRun,
    RuleHit,
    RuleRun,
    Suppression,
)
from gateway.detections.schemas import (
    FeedbackCreate,
    HuntCreate,
    HuntUpdate,
    PromoteRequest,
    RuleCreate,
    RuleQuery,
    RuleUpdate,
    SuppressionCreate,
)
from tools.sigma import Conversion, Correlation

log = logging.getLogger("aurora.detections")

SEVERITY_OF_LEVEL: Final = {
    "informational": "informational",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}
MAX_ALERTS_PER_RUN: Final = 1000
"""Matches beyond this in one run are counted, not raised (a rule that floods is a bad rule:
its metrics show it)."""
SAMPLE_SIZE: Final = 20
HUNT_RESULTS_KEPT: Final = 500
ENTITY_FIELDS: Final = (
    ("host.name", "host"),
    ("user.name", "user"),
    ("source.ip", "ip"),
    ("destination.ip", "ip"),
    ("dns.question.name", "domain"),
    ("url.full", "url"),
    ("file.hash.sha256", "hash"),
    ("process.hash.sha256", "hash"),
    ("process.name", "process"),
)


# -- rules ------------------------------------------------------------------------------------


def _apply(rule: DetectionRule, conversion: Conversion, text: str) -> None:
    meta = conversion.meta
    rule.sigma = text
    rule.sigma_id = meta.id
    rule.title = meta.title[:500]
    rule.description = meta.description
    rule.level = meta.level
    rule.severity = SEVERITY_OF_LEVEL.get(meta.level or "", "medium")
    rule.status = meta.status
    rule.condition = conversion.condition
    rule.correlation = (
        dataclasses.asdict(conversion.correlation) if conversion.correlation else None
    )
    rule.techniques = list(meta.techniques)
    rule.tags = list(meta.tags)
    rule.logsource = {"product": meta.product, "category": meta.category, "service": meta.service}
    rule.warnings = list(conversion.warnings)


async def create_rule(
    *, db: AsyncSession, converter: SigmaConverter, actor: str, body: RuleCreate
) -> DetectionRule:
    """Validate and convert the rule (AURORA-4222 with pySigma's messages, or naming the limit
    it is past), then save it."""
    conversion = await converter.convert(body.sigma)
    now = utcnow()
    rule = DetectionRule(
        id=await next_id(db, "RULE"),
        enabled=body.enabled,
        interval_seconds=body.interval_seconds,
        lookback_seconds=body.lookback_seconds or body.interval_seconds + 60,
        next_run_at=now if body.enabled else None,
        created_by=actor,
    )
    _apply(rule, conversion, body.sigma)
    db.add(rule)
    await db.commit()
    return rule


async def get_rule(*, db: AsyncSession, rule_id: str) -> DetectionRule:
    rule = await db.get(DetectionRule, rule_id)
    if rule is None:
        raise NotFound({"rule_id": rule_id})
    return rule


async def update_rule(
    *, db: AsyncSession, converter: SigmaConverter, rule_id: str, body: RuleUpdate
) -> DetectionRule:
    """Apply the changes; AURORA-4090 when ``body.version`` is stale or another writer changed
    the rule first."""
    rule = await get_rule(db=db, rule_id=rule_id)
    if body.version is not None and body.version != rule.version:
        raise Conflict({"rule_id": rule_id, "version": rule.version})
    if body.sigma is not None:
        _apply(rule, await converter.convert(body.sigma), body.sigma)
    if body.interval_seconds is not None:
        rule.interval_seconds = body.interval_seconds
    if body.lookback_seconds is not None:
        rule.lookback_seconds = body.lookback_seconds
    if body.enabled is not None and body.enabled != rule.enabled:
        rule.enabled = body.enabled
        rule.next_run_at = utcnow() if body.enabled else None
    rule.updated_at = utcnow()
    await commit_versioned(db, kind="rule", ident=rule_id)
    return rule


async def list_rules(*, db: AsyncSession, query: RuleQuery) -> tuple[list[DetectionRule], int]:
    where: list[Any] = []
    if query.enabled is not None:
        where.append(DetectionRule.enabled == query.enabled)
    if query.level is not None:
        where.append(DetectionRule.level == query.level)
    if query.q:
        where.append(DetectionRule.title.ilike(f"%{_like(query.q)}%", escape="\\"))
    if not query.technique:
        return await fetch_page(
            db,
            DetectionRule,
            where=where,
            sort="-created_at",
            limit=query.limit,
            offset=query.offset,
        )
    # Techniques are a JSON list: filtered here (a rule set is thousands, not millions).
    wanted = query.technique.upper()
    rows = [
        r
        for r in await db.scalars(
            select(DetectionRule).where(*where).order_by(DetectionRule.created_at.desc())
        )
        if any(t == wanted or t.startswith(wanted + ".") for t in r.techniques)
    ]
    return rows[query.offset : query.offset + query.limit], len(rows)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- runs -------------------------------------------------------------------------------------


def _value(event: dict[str, Any], name: str) -> str | None:
    if name in event:
        return str(event[name])
    fields = event.get("fields") or {}
    found = fields.get(name)
    return None if found is None else str(found)


def _suppressed_by(event: dict[str, Any], suppressions: list[Suppression]) -> Suppression | None:
    for suppression in suppressions:
        if all(
            (_value(event, name) or "").lower() == value.lower()
            for name, value in suppression.match.items()
        ):
            return suppression
    return None


def _entities(event: dict[str, Any]) -> list[Entity]:
    """The event's key entities that are valid as such; a value an attacker shaped (a DNS name
    that is no domain) is left out rather than costing the alert."""
    entities = []
    for name, kind in ENTITY_FIELDS:
        value = event.get(name)
        if value:
            entity = Entity(type=kind, value=str(value)[:2048])
            with contextlib.suppress(ValidationFailed):
                normalise_entities([entity])
                entities.append(entity)
    return entities


def _correlation(rule: DetectionRule) -> Correlation | None:
    if not rule.correlation:
        return None
    data = dict(rule.correlation)
    data["group_by"] = tuple(tuple(pair) for pair in data.get("group_by", ()))
    return Correlation(**data)


async def _correlated(
    store: LogStore, rule: DetectionRule, correlation: Correlation, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The windows and groups whose aggregate meets the correlation, as pseudo-events."""
    window = "timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}"
    sql = correlation.query(store.table, rule.condition, window)
    result = await store.query(
        sql,
        {"start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None)},
    )
    events = []
    for row in result.result_rows[:MAX_ALERTS_PER_RUN]:
        values = dict(zip(result.column_names, row, strict=True))
        groups = {
            name: str(values.get(f"group_{index}"))
            for index, (name, _) in enumerate(correlation.group_by)
        }
        key = "|".join([str(values["window_start"]), *groups.values()])
        events.append(
            {
                "id": _digest(key),
                "timestamp": str(values["first_seen"]),
                "correlation": {
                    "type": correlation.type,
                    "window_start": str(values["window_start"]),
                    "groups": groups,
                    "value": values.get(correlation.type),
                    "events": values.get("events"),
                    "last_seen": str(values["last_seen"]),
                },
                "fields": groups,
            }
        )
    return events


def _digest(text: str) -> str:
    """A stable id for a correlation result (its window and groups), as long as a log id."""
    return "corr-" + hashlib.sha256(text.encode()).hexdigest()[:31]


async def run_rule(
    *,
    database: Database,
    store: LogStore,
    rule_id: str,
    start: datetime,
    end: datetime,
    kind: str,
    actor: str,
    dedup_window_seconds: int,
) -> RuleRun:
    """Run the rule over ``[start, end)`` and record the run (its failure too)."""
    async with database.session() as db:
        rule = await get_rule(db=db, rule_id=rule_id)
        run = RuleRun(
            rule_id=rule.id,
            kind=kind,
            window_start=start,
            window_end=end,
            status="running",
            requested_by=actor,
            sample=[],
        )
        db.add(run)
        await db.commit()
        await db.refresh(run)
        db.expunge(rule)
    started = time.perf_counter()
    try:
        correlation = _correlation(rule)
        if correlation is not None:
            events = await _correlated(store, rule, correlation, start, end)
            total = len(events)
        else:
            # A preview shows a sample; only runs that raise alerts need every match's event.
            wanted = SAMPLE_SIZE if kind == "preview" else MAX_ALERTS_PER_RUN
            total, events = await store.matching(
                rule.condition, {}, start=start, end=end, limit=wanted
            )
        run.matches = total
        run.sample = [_brief(e) for e in events[:SAMPLE_SIZE]]
        if kind != "preview":
            await _raise_alerts(database, rule, run, events, dedup_window_seconds)
        run.status = "succeeded"
    except Exception as err:
        run.status = "failed"
        run.error = (err.message if isinstance(err, AuroraError) else type(err).__name__)[:2000]
        if not isinstance(err, AuroraError):
            log.exception("rule %s failed", rule_id)
    run.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    run.finished_at = utcnow()
    async with database.session() as db:
        await db.merge(run)
        await db.commit()
    return run


BRIEF_VALUE_CHARS = 4096
"""Longest text value an alert keeps of the event that raised it (the log keeps it whole):
some 40 columns of it always fit an alert's ``raw``."""


def _brief(event: dict[str, Any]) -> dict[str, Any]:
    """The event's normalised columns for an alert's ``raw``, long texts cut short."""
    brief = {}
    for key, value in event.items():
        if key in {"raw", "fields"}:
            continue
        if isinstance(value, str) and len(value) > BRIEF_VALUE_CHARS:
            value = f"{value[:BRIEF_VALUE_CHARS]}... ({len(value)} characters in the log)"
        brief[key] = value
    return brief


async def _raise_alerts(
    database: Database,
    rule: DetectionRule,
    run: RuleRun,
    events: list[dict[str, Any]],
    dedup_window_seconds: int,
) -> None:
    now = utcnow()
    async with database.session() as db:
        suppressions = list(
            await db.scalars(
                select(Suppression).where(
                    Suppression.rule_id == rule.id, Suppression.expires_at > now
                )
            )
        )
        seen = set(
            await db.scalars(
                select(RuleHit.log_id).where(
                    RuleHit.rule_id == rule.id,
                    RuleHit.log_id.in_([str(e["id"]) for e in events]),
                )
            )
        )
    hits: dict[str, int] = {}
    for event in events:
        log_id = str(event["id"])
        if log_id in seen:
            run.already_seen += 1
            continue
        if (suppression := _suppressed_by(event, suppressions)) is not None:
            run.suppressed += 1
            hits[suppression.id] = hits.get(suppression.id, 0) + 1
            continue
        body = AlertCreate(
            title=rule.title,
            description=(rule.description or "")[:19_000] or None,
            severity=rule.severity,
            source="sigma",
            rule_id=rule.id,
            tags=[t.lower() for t in rule.techniques][:50],
            entities=_entities(event),
            raw={"log_id": log_id, "rule": rule.id, "event": _brief(event)},
            observed_at=_observed(event),
            on_duplicate="merge",
        )
        async with database.session() as db:
            alert, _ = await create_alert(
                db=db, actor="detections", body=body, dedup_window_seconds=dedup_window_seconds
            )
            db.add(RuleHit(rule_id=rule.id, log_id=log_id, alert_id=alert.id))
            try:
                await db.commit()
            except IntegrityError:
                await db.rollback()  # a concurrent run raised it first
                run.already_seen += 1
                continue
        run.alerts += 1
    if hits:
        async with database.session() as db:
            for suppression_id, count in hits.items():
                await db.execute(
                    update(Suppression)
                    .where(Suppression.id == suppression_id)
                    .values(hits=Suppression.hits + count)
                )
            await db.commit()


def _observed(event: dict[str, Any]) -> datetime | None:
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        return None
    with contextlib.suppress(ValueError):
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            return parsed
    return None


async def list_runs(
    *, db: AsyncSession, rule_id: str, limit: int, offset: int
) -> tuple[list[RuleRun], int]:
    await get_rule(db=db, rule_id=rule_id)
    return await fetch_page(
        db,
        RuleRun,
        where=[RuleRun.rule_id == rule_id],
        sort="-started_at",
        limit=limit,
        offset=offset,
    )


class DetectionScheduler:
    """Runs every enabled rule whose time has come over its lookback window, one at a time;
    a rule's next run is set before it runs, so a slow or failing rule never runs back to back."""

    def __init__(
        self,
        *,
        database: Database,
        store: LogStore,
        dedup_window: Callable[[], int],
        tick_seconds: float = 5.0,
    ) -> None:
        self._db = database
        self._store = store
        self._dedup_window = dedup_window
        self._tick = tick_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="detection-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:
                log.exception("detection scheduler tick failed")
            await asyncio.sleep(self._tick)

    async def run_due(self) -> int:
        """Run the rules that are due now; how many ran."""
        now = utcnow()
        async with self._db.session() as db:
            due = (
                await db.execute(
                    select(
                        DetectionRule.id,
                        DetectionRule.lookback_seconds,
                        DetectionRule.interval_seconds,
                    )
                    .where(DetectionRule.enabled.is_(True), DetectionRule.next_run_at <= now)
                    .order_by(DetectionRule.next_run_at)
                    .limit(20)
                )
            ).all()
            plans = []
            for rule_id, lookback, interval in due:
                plans.append((rule_id, lookback))
                # A statement, not the ORM row: scheduling is no edit, so the rule's version
                # stays and an analyst's edit in between neither conflicts nor is undone.
                await db.execute(
                    update(DetectionRule)
                    .where(DetectionRule.id == rule_id)
                    .values(last_run_at=now, next_run_at=now + timedelta(seconds=interval))
                )
            await db.commit()
        for rule_id, lookback in plans:
            await run_rule(
                database=self._db,
                store=self._store,
                rule_id=rule_id,
                start=now - timedelta(seconds=lookback),
                end=now,
                kind="scheduled",
                actor="scheduler",
                dedup_window_seconds=self._dedup_window(),
            )
        return len(plans)


# -- suppressions and feedback ----------------------------------------------------------------


async def create_suppression(
    *, db: AsyncSession, rule_id: str, actor: str, body: SuppressionCreate
) -> Suppression:
    await get_rule(db=db, rule_id=rule_id)
    expires = body.until or utcnow() + timedelta(seconds=body.duration_seconds or 0)
    if expires <= utcnow():
        raise ValidationFailed(
            [{"loc": ["body", "until"], "msg": "must be in the future", "type": "value_error"}]
        )
    suppression = Suppression(
        rule_id=rule_id, match=body.match, reason=body.reason, expires_at=expires, created_by=actor
    )
    db.add(suppression)
    await db.commit()
    return suppression


async def list_suppressions(
    *, db: AsyncSession, rule_id: str, limit: int, offset: int
) -> tuple[list[Suppression], int]:
    await get_rule(db=db, rule_id=rule_id)
    return await fetch_page(
        db,
        Suppression,
        where=[Suppression.rule_id == rule_id],
        sort="-created_at",
        limit=limit,
        offset=offset,
    )


async def create_feedback(
    *, db: AsyncSession, rule_id: str, actor: str, body: FeedbackCreate
) -> Feedback:
    await get_rule(db=db, rule_id=rule_id)
    feedback = Feedback(rule_id=rule_id, created_by=actor, **body.model_dump())
    db.add(feedback)
    await db.commit()
    return feedback


async def list_feedback(
    *, db: AsyncSession, rule_id: str, limit: int, offset: int
) -> tuple[list[Feedback], int]:
    await get_rule(db=db, rule_id=rule_id)
    return await fetch_page(
        db,
        Feedback,
        where=[Feedback.rule_id == rule_id],
        sort="-created_at",
        limit=limit,
        offset=offset,
    )


async def metrics(*, db: AsyncSession) -> dict[str, Any]:
    """Per rule: runs, matches, alerts, precision from feedback, mean duration, last error;
    and the ATT&CK techniques the enabled rules cover."""
    rules = list(await db.scalars(select(DetectionRule).order_by(DetectionRule.created_at)))
    runs = {
        rule_id: (count, matches, alerts, suppressed, mean, failed)
        for rule_id, count, matches, alerts, suppressed, mean, failed in (
            await db.execute(
                select(
                    RuleRun.rule_id,
                    func.count(),
                    func.coalesce(func.sum(RuleRun.matches), 0),
                    func.coalesce(func.sum(RuleRun.alerts), 0),
                    func.coalesce(func.sum(RuleRun.suppressed), 0),
                    func.avg(RuleRun.duration_ms),
                    func.sum(case((RuleRun.status == "failed", 1), else_=0)),
                ).group_by(RuleRun.rule_id)
            )
        ).all()
    }
    verdicts: dict[str, dict[str, int]] = {}
    for rule_id, verdict, count in (
        await db.execute(
            select(Feedback.rule_id, Feedback.verdict, func.count()).group_by(
                Feedback.rule_id, Feedback.verdict
            )
        )
    ).all():
        verdicts.setdefault(rule_id, {})[verdict] = int(count)
    failures = await db.execute(
        select(RuleRun.rule_id, RuleRun.error)
        .where(RuleRun.status == "failed")
        .order_by(RuleRun.started_at)
    )
    last_errors: dict[str, str | None] = {}
    for rule_id, error in failures.all():
        last_errors[rule_id] = error  # the newest failure wins
    items = []
    for rule in rules:
        count, matches, alerts, suppressed, mean, failed = runs.get(rule.id, (0, 0, 0, 0, None, 0))
        given = verdicts.get(rule.id, {})
        tp, fp = given.get("true_positive", 0), given.get("false_positive", 0)
        items.append(
            {
                "rule_id": rule.id,
                "title": rule.title,
                "enabled": rule.enabled,
                "runs": int(count),
                "failed_runs": int(failed or 0),
                "matches": int(matches),
                "alerts": int(alerts),
                "suppressed": int(suppressed),
                "feedback": {
                    "true_positive": tp,
                    "false_positive": fp,
                    "benign": given.get("benign", 0),
                },
                "precision": round(tp / (tp + fp), 4) if tp + fp else None,
                "mean_duration_ms": round(float(mean), 3) if mean is not None else None,
                "last_error": last_errors.get(rule.id),
                "last_run_at": rule.last_run_at,
                "techniques": rule.techniques,
            }
        )
    covered = sorted({t for r in rules if r.enabled for t in r.techniques})
    return {
        "rules": items,
        "totals": {
            "rules": len(rules),
            "enabled": sum(1 for r in rules if r.enabled),
            "runs": sum(i["runs"] for i in items),
            "alerts": sum(i["alerts"] for i in items),
        },
        "attack_coverage": {"techniques": covered, "count": len(covered)},
    }


# -- hunts ------------------------------------------------------------------------------------


async def _hunt_condition(kind: str, query: str, converter: SigmaConverter) -> str | None:
    if kind == "sigma":
        return (await converter.convert(query)).condition
    compile_query(query)  # AURORA-4220 now rather than at the first run
    return None


async def create_hunt(
    *, db: AsyncSession, converter: SigmaConverter, actor: str, body: HuntCreate
) -> Hunt:
    condition = await _hunt_condition(body.kind, body.query, converter)
    hunt = Hunt(
        id=await next_id(db, "HUNT"),
        name=body.name,
        description=body.description,
        kind=body.kind,
        query=body.query,
        condition=condition,
        lookback_seconds=body.lookback_seconds,
        created_by=actor,
    )
    db.add(hunt)
    await db.commit()
    return hunt


async def get_hunt(*, db: AsyncSession, hunt_id: str) -> Hunt:
    hunt = await db.get(Hunt, hunt_id)
    if hunt is None:
        raise NotFound({"hunt_id": hunt_id})
    return hunt


async def update_hunt(
    *, db: AsyncSession, converter: SigmaConverter, hunt_id: str, body: HuntUpdate
) -> Hunt:
    """Apply the changes; AURORA-4090 when ``body.version`` is stale or another writer changed
    the hunt first."""
    hunt = await get_hunt(db=db, hunt_id=hunt_id)
    if body.version is not None and body.version != hunt.version:
        raise Conflict({"hunt_id": hunt_id, "version": hunt.version})
    kind = body.kind or hunt.kind
    query = body.query or hunt.query
    if body.kind is not None or body.query is not None:
        hunt.condition = await _hunt_condition(kind, query, converter)
        hunt.kind, hunt.query = kind, query
    for name in ("name", "description", "lookback_seconds"):
        value = getattr(body, name)
        if value is not None:
            setattr(hunt, name, value)
    hunt.updated_at = utcnow()
    await commit_versioned(db, kind="hunt", ident=hunt_id)
    return hunt


async def list_hunts(*, db: AsyncSession, limit: int, offset: int) -> tuple[list[Hunt], int]:
    return await fetch_page(db, Hunt, where=[], sort="-created_at", limit=limit, offset=offset)


async def run_hunt(
    *,
    database: Database,
    store: LogStore,
    hunt_id: str,
    start: datetime | None,
    end: datetime | None,
    actor: str,
) -> HuntRun:
    """Run the hunt over its window and keep the results of the run."""
    async with database.session() as db:
        hunt = await get_hunt(db=db, hunt_id=hunt_id)
        end = end or utcnow()
        # A lookback from an early end stops where the store's timestamps begin.
        start = start or max(EARLIEST, end - timedelta(seconds=hunt.lookback_seconds))
        if end <= start:
            raise ValidationFailed(
                [{"loc": ["body", "end"], "msg": "end must be after start", "type": "value_error"}]
            )
        kind, query, condition = hunt.kind, hunt.query, hunt.condition
    started = time.perf_counter()
    run = HuntRun(
        hunt_id=hunt_id, window_start=start, window_end=end, requested_by=actor, results=[]
    )
    try:
        if kind == "sigma":
            sql, parameters = condition or "0", {}
        else:
            compiled = compile_query(query)
            sql, parameters = compiled.sql, compiled.parameters
        total, events = await store.matching(
            sql, parameters, start=start, end=end, limit=HUNT_RESULTS_KEPT
        )
        run.matches, run.results, run.status = total, events, "succeeded"
    except AuroraError as err:
        run.status, run.error = "failed", err.message
    run.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    run.finished_at = utcnow()
    async with database.session() as db:
        db.add(run)
        await db.commit()
        await db.refresh(run)
    return run


async def last_hunt_runs(db: AsyncSession, hunt_ids: list[str]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    rows = await db.scalars(
        select(HuntRun).where(HuntRun.hunt_id.in_(hunt_ids)).order_by(HuntRun.started_at)
    )
    for run in rows:
        latest[run.hunt_id] = {
            "id": run.id,
            "status": run.status,
            "matches": run.matches,
            "started_at": run.started_at.isoformat(),
        }
    return latest


# -- promote ----------------------------------------------------------------------------------

_SIGMA_LOGSOURCE: Final = {
    "windows": {"product": "windows"},
    "zeek": {"product": "zeek"},
    "suricata": {"product": "suricata"},
    "syslog": {"product": "linux"},
    "cef": {"category": "firewall"},
    "json": {"product": "aurora", "service": "json"},
}
_WINDOWS_CATEGORY: Final = {
    "1": "process_creation",
    "3": "network_connection",
    "11": "file_event",
    "13": "registry_set",
    "22": "dns_query",
    "4688": "process_creation",
}


def draft_rule(event: dict[str, Any], body: PromoteRequest) -> str:
    """A Sigma rule (YAML) matching ``body.fields`` of ``event`` exactly; AURORA-4220 when the
    event lacks one of them."""
    selection: dict[str, str] = {}
    missing = []
    for name in body.fields:
        value = _value(event, name) if name not in {"raw", "fields", "id"} else None
        if value is None or value == "":
            missing.append(name)
        else:
            selection[name] = value
    if missing:
        raise ValidationFailed(
            [
                {
                    "loc": ["body", "fields", name],
                    "msg": "the event has no such field",
                    "type": "missing",
                }
                for name in missing
            ]
        )
    logsource = dict(_SIGMA_LOGSOURCE.get(str(event.get("format")), {"product": "aurora"}))
    if event.get("format") == "windows" and (
        category := _WINDOWS_CATEGORY.get(str(event.get("event.code", "")))
    ):
        logsource["category"] = category
    title = body.title or "Drafted from " + ", ".join(f"{k}={v[:40]}" for k, v in selection.items())
    rule = {
        "title": title[:500],
        "status": "experimental",
        "description": body.description
        or f"Drafted from log event {event.get('id')} ({event.get('source')}).",
        "references": [f"aurora:log/{event.get('id')}"],
        "logsource": logsource,
        "detection": {"selection": selection, "condition": "selection"},
        "level": body.level,
    }
    return yaml.safe_dump(rule, sort_keys=False, allow_unicode=True)
