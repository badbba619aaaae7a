"""Rule runs: a rule over a window of the logs, on demand (preview, backfill) or on its schedule
(:class:`DetectionScheduler`); alerts raised at most once per event, suppressed matches
counted, every run recorded (its failure too)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.db import Database
from core.db.base import utcnow
from core.db.leases import Lease
from core.errors import AuroraError
from core.logstore.store import LogStore
from core.loops import Periodic
from core.schemas import Severity
from gateway.alerts.api import create_alert
from gateway.alerts.schemas import AlertCreate
from gateway.detections.events import ENTITY_FIELDS, brief, entities, observed_at
from gateway.detections.models import DetectionRule, RuleHit, RuleRun
from gateway.detections.rules import get_rule, rule_rows
from gateway.detections.suppressions import active_suppressions, count_hits, suppressed_by
from tools.sigma import Correlation
from tools.sigma.logsource import scope_sql

log = logging.getLogger("aurora.detections")

MAX_ALERTS_PER_RUN: Final = 1000
"""Matches beyond this in one run are counted, not raised (a rule that floods is a bad rule:
its metrics show it)."""
SAMPLE_SIZE: Final = 20
TICK_SECONDS: Final = 5.0
type Publish = Callable[[str, dict[str, Any]], object]
"""Announces an event on a topic (the event bus's ``publish``)."""
"""How often the scheduler looks for rules that are due."""
DUE_PER_TICK: Final = 20


def scoped_condition(rule: DetectionRule) -> str:
    """The rule's condition within its logsource's scope. Rules converted since conversions
    scope themselves already are (their condition opens with the scope); one saved before, or
    before the scope table last changed, gets the current scope here, so that no stored rule
    ever runs over every event. A correlation's condition is its base rules', each scoped to
    its own logsource at conversion (they may differ), and is left as it is."""
    if rule.correlation:
        return rule.condition
    source = rule.logsource or {}
    scope = scope_sql(source.get("product"), source.get("category"), source.get("service"))
    if rule.condition.startswith(f"({scope}) AND ("):
        return rule.condition
    return f"({scope}) AND ({rule.condition})"


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
    shared = [name for name, _ in ENTITY_FIELDS]
    sql = correlation.query(
        store.table, scoped_condition(rule), window, [n.replace(".", "_") for n in shared]
    )
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
        # The entities every event of the group shares (the source address a spray came from,
        # the host it hit) name the alert's entities, as a single event's columns would.
        common = {
            name: value
            for index, name in enumerate(shared)
            if (value := values.get(f"shared_{index}"))
        }
        events.append(
            {
                **common,
                "id": _digest(key),
                "timestamp": _utc(values["first_seen"]),
                "correlation": {
                    "type": correlation.type,
                    "window_start": str(values["window_start"]),
                    "groups": groups,
                    "value": values.get(correlation.type),
                    "events": values.get("events"),
                    "last_seen": _utc(values["last_seen"]),
                },
                "fields": groups,
            }
        )
    return events


def _utc(moment: Any) -> str:
    """A timestamp the log store gave (naive, in UTC) as ISO 8601 with its zone."""
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
    return str(moment)


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
    publish: Publish | None = None,
) -> RuleRun:
    """Run the rule over ``[start, end)`` and record the run (its failure too); AURORA-4040
    when there is no such rule. ``publish`` announces each alert raised (``alerts.created`` or
    ``alerts.updated``) and each match behind it (``detections.matched``)."""
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
                scoped_condition(rule), {}, start=start, end=end, limit=wanted
            )
        run.matches = total
        run.sample = [brief(e) for e in events[:SAMPLE_SIZE]]
        if kind != "preview":
            await _raise_alerts(database, rule, run, events, dedup_window_seconds, publish)
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


def _alert(rule: DetectionRule, log_id: str, event: dict[str, Any]) -> AlertCreate:
    """The alert ``event`` raises (merged into an open duplicate within the window)."""
    return AlertCreate(
        title=rule.title,
        description=(rule.description or "")[:19_000] or None,
        severity=Severity(rule.severity),
        source="sigma",
        rule_id=rule.id,
        tags=[t.lower() for t in rule.techniques][:50],
        entities=entities(event),
        raw={"log_id": log_id, "rule": rule.id, "event": brief(event)},
        observed_at=observed_at(event),
        on_duplicate="merge",
    )


async def _raise_alerts(
    database: Database,
    rule: DetectionRule,
    run: RuleRun,
    events: list[dict[str, Any]],
    dedup_window_seconds: int,
    publish: Publish | None = None,
) -> None:
    async with database.session() as db:
        suppressions = await active_suppressions(db, rule.id, utcnow())
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
        if (suppression := suppressed_by(event, suppressions)) is not None:
            run.suppressed += 1
            hits[suppression.id] = hits.get(suppression.id, 0) + 1
            continue
        async with database.session() as db:
            alert, merged = await create_alert(
                db=db,
                actor="detections",
                body=_alert(rule, log_id, event),
                dedup_window_seconds=dedup_window_seconds,
            )
            db.add(RuleHit(rule_id=rule.id, log_id=log_id, alert_id=alert.id))
            try:
                await db.commit()
            except IntegrityError:
                await db.rollback()  # a concurrent run raised it first
                run.already_seen += 1
                continue
        run.alerts += 1
        if publish is not None:
            publish("alerts.updated" if merged else "alerts.created", alert.model_dump(mode="json"))
            publish(
                "detections.matched",
                {
                    "rule_id": rule.id,
                    "rule_title": rule.title,
                    "severity": rule.severity,
                    "techniques": list(rule.techniques),
                    "tags": list(rule.tags),
                    "alert_id": alert.id,
                    "log_id": log_id,
                    "run_id": run.id,
                    "event": brief(event),
                },
            )
    if hits:
        async with database.session() as db:
            await count_hits(db, hits)


list_runs = partial(rule_rows, model=RuleRun, sort="-started_at")
"""A page of the rule's runs, newest first (``db=, rule_id=, query=``)."""


class DetectionScheduler(Periodic):
    """Runs every enabled rule whose time has come over its lookback window, one at a time,
    every ``tick_seconds`` from :meth:`start` (or entering it with ``async with``) until
    :meth:`stop`. A rule's next run is set before it runs, so a slow or failing rule never runs
    back to back."""

    def __init__(
        self,
        *,
        database: Database,
        store: LogStore,
        dedup_window: Callable[[], int],
        publish: Publish | None = None,
        tick_seconds: float = TICK_SECONDS,
        lease: Lease | None = None,
    ) -> None:
        super().__init__("detection-scheduler", self.run_due, tick_seconds, log=log, lease=lease)
        self._publish = publish
        self._db = database
        self._store = store
        self._dedup_window = dedup_window

    async def __aenter__(self) -> DetectionScheduler:
        self.start()
        return self

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
                    .limit(DUE_PER_TICK)
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
                publish=self._publish,
            )
        return len(plans)
