"""Rule runs: a rule over a window of the logs, on demand (preview, backfill) or on its schedule
(:class:`DetectionScheduler`); alerts raised at most once per event, suppressed matches
counted, every run recorded (its failure too).

The scheduler runs the rules that are due together as shared scans (:func:`shared_matches`):
the rules of one logsource and window are evaluated over one scan of it, a few hundred per
query, instead of one query (and one read of the same events) per rule; each rule's matches
are then raised and its run recorded as a run of its own would be. A correlation runs alone."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from core.db import Database
from core.db.base import utcnow
from core.db.leases import Lease
from core.errors import AuroraError, ChangedConcurrently
from core.logstore.schema import time_bounds
from core.logstore.store import LogStore
from core.loops import Periodic
from core.schemas import Severity
from gateway.alerts.api import stage_alerts
from gateway.alerts.schemas import AlertCreate, AlertRead
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
ALERTS_PER_COMMIT: Final = 50
"""How many of a run's alerts are committed together: one transaction's overhead (and on
PostgreSQL its flush to disk) for many, while the database's write lock is held for tens of
milliseconds, not seconds."""
SAMPLE_SIZE: Final = 20
TICK_SECONDS: Final = 5.0
"""How often the scheduler looks for rules that are due."""
type Publish = Callable[[str, dict[str, Any]], object]
"""Announces an event on a topic (the event bus's ``publish``)."""
DUE_PER_TICK: Final = 20
"""Rules run one by one per tick (the scheduler without shared scans)."""
SHARED_DUE_PER_TICK: Final = 10_000
"""Rules taken per tick for shared scans: a whole corpus, due at once, in one step."""
SCAN_RULES: Final = 100
"""Most rules one shared scan evaluates."""
SCAN_CHARS: Final = 256 * 1024
"""Most characters of conditions in one shared scan (a rule longer than this is scanned
alone): well within the store's query size and ClickHouse's limits on a query's syntax tree."""


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


def _scope(rule: DetectionRule) -> str:
    source = rule.logsource or {}
    return scope_sql(source.get("product"), source.get("category"), source.get("service"))


def _detection(rule: DetectionRule) -> str:
    """The rule's condition without its logsource's scope (:func:`scoped_condition` is
    ``(scope) AND (detection)``), for a shared scan whose window holds the scope."""
    prefix = f"({_scope(rule)}) AND ("
    if rule.condition.startswith(prefix) and rule.condition.endswith(")"):
        return rule.condition[len(prefix) : -1]
    return rule.condition


@dataclass(slots=True)
class Matched:
    """A rule's result in a shared scan: how many events matched, the first of them (oldest
    first), how long its query took, or the error that failed it."""

    total: int = 0
    events: list[dict[str, Any]] | None = None
    seconds: float = 0.0
    error: Exception | None = None


def _chunks(rules: Sequence[DetectionRule]) -> list[list[DetectionRule]]:
    """``rules`` (of one logsource) in shared scans of at most :data:`SCAN_RULES` rules and
    :data:`SCAN_CHARS` characters of conditions."""
    chunks: list[list[DetectionRule]] = []
    size = 0
    for rule in rules:
        length = len(rule.condition)
        if not chunks or len(chunks[-1]) >= SCAN_RULES or size + length > SCAN_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(rule)
        size += length
    return chunks


async def shared_matches(
    store: LogStore,
    rules: Sequence[DetectionRule],
    *,
    start: datetime,
    end: datetime,
    limit: int,
) -> dict[str, Matched]:
    """Each rule's matches in ``[start, end)`` (how many, and the first ``limit`` events, as
    :meth:`LogStore.matching` gives them), by rule id, from shared scans: the rules of one
    logsource together (:func:`_chunks`), one query each. A scan whose query fails is run again
    rule by rule, so that only a rule that fails alone fails (its error in its place).
    Correlation rules are not taken (they are aggregations of their own)."""
    by_scope: dict[str, list[DetectionRule]] = defaultdict(list)
    for rule in rules:
        if rule.correlation:
            raise ValueError(f"{rule.id} is a correlation: it runs alone")
        by_scope[_scope(rule)].append(rule)
    results: dict[str, Matched] = {}
    for scope, members in by_scope.items():
        for chunk in _chunks(members):
            started = time.perf_counter()
            try:
                each = await store.matching_each(
                    [_detection(r) for r in chunk], scope=scope, start=start, end=end, limit=limit
                )
            except Exception as err:
                log.info("a shared scan of %d rules failed (%s); rule by rule", len(chunk), err)
                for rule in chunk:
                    results[rule.id] = await _alone(store, rule, start, end, limit)
                continue
            seconds = time.perf_counter() - started
            for rule, (total, events) in zip(chunk, each, strict=True):
                results[rule.id] = Matched(total, events, seconds)
    return results


async def _alone(
    store: LogStore, rule: DetectionRule, start: datetime, end: datetime, limit: int
) -> Matched:
    """The rule's own query, as :func:`run_rule` runs it."""
    started = time.perf_counter()
    try:
        total, events = await store.matching(
            scoped_condition(rule), {}, start=start, end=end, limit=limit
        )
    except Exception as err:
        return Matched(seconds=time.perf_counter() - started, error=err)
    return Matched(total, events, time.perf_counter() - started)


def _failed(run: RuleRun, rule_id: str, err: Exception) -> None:
    """Record ``err`` on the run as :func:`run_rule` does."""
    run.status = "failed"
    run.error = (err.message if isinstance(err, AuroraError) else type(err).__name__)[:2000]
    if not isinstance(err, AuroraError):
        log.error("rule %s failed", rule_id, exc_info=err)


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
    conditions, bounds = time_bounds(start, end)
    shared = [name for name, _ in ENTITY_FIELDS]
    sql = correlation.query(
        store.table,
        scoped_condition(rule),
        " AND ".join(conditions),
        [n.replace(".", "_") for n in shared],
    )
    result = await store.query(sql, bounds)
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
        _failed(run, rule_id, err)
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
    """Raise an alert (or merge into its open duplicate) for each event the rule has not hit
    before and no suppression covers, with the rule's hit on it, :data:`ALERTS_PER_COMMIT` to a
    transaction; announce each once committed."""
    if not events:
        return
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
    fresh: list[tuple[str, dict[str, Any]]] = []
    for event in events:
        log_id = str(event["id"])
        if log_id in seen:
            run.already_seen += 1
        elif (suppression := suppressed_by(event, suppressions)) is not None:
            run.suppressed += 1
            hits[suppression.id] = hits.get(suppression.id, 0) + 1
        else:
            fresh.append((log_id, event))
    for first in range(0, len(fresh), ALERTS_PER_COMMIT):
        batch = fresh[first : first + ALERTS_PER_COMMIT]
        try:
            raised = await _commit_alerts(database, rule, batch, dedup_window_seconds)
        except (IntegrityError, StaleDataError):
            # A concurrent run of the rule hit some of these first, or an analyst changed an
            # alert they merge into: one at a time, so that only the hits are left out.
            raised = []
            for one in batch:
                try:
                    raised += await _commit_alerts(database, rule, [one], dedup_window_seconds)
                except IntegrityError:
                    run.already_seen += 1
                except StaleDataError as err:  # changed again: the run fails, as a write would
                    raise ChangedConcurrently(
                        {"rule_id": rule.id, "reason": "an alert it merges into changed meanwhile"}
                    ) from err
        run.alerts += len(raised)
        if publish is None:
            continue
        for log_id, event, alert, merged in raised:
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


async def _commit_alerts(
    database: Database,
    rule: DetectionRule,
    batch: list[tuple[str, dict[str, Any]]],
    dedup_window_seconds: int,
) -> list[tuple[str, dict[str, Any], AlertRead, bool]]:
    """Raise the alerts of ``batch`` (log id, event) and the rule's hits on them in one
    transaction: for each event, its alert as committed and whether the event was merged into
    it. Rolled back on IntegrityError (the rule already hit one of the events) and on
    StaleDataError (an alert it merges into changed meanwhile)."""
    async with database.session() as db:
        staged = await stage_alerts(
            db=db,
            actor="detections",
            bodies=[_alert(rule, log_id, event) for log_id, event in batch],
            dedup_window_seconds=dedup_window_seconds,
        )
        db.add_all(
            RuleHit(rule_id=rule.id, log_id=log_id, alert_id=alert.id)
            for (log_id, _), (alert, _) in zip(batch, staged, strict=True)
        )
        await db.flush()
        reads = {alert.id: AlertRead.model_validate(alert) for alert, _ in staged}
        await db.commit()
    return [
        (log_id, event, reads[alert.id], merged)
        for (log_id, event), (alert, merged) in zip(batch, staged, strict=True)
    ]


list_runs = partial(rule_rows, model=RuleRun, sort="-started_at")
"""A page of the rule's runs, newest first (``db=, rule_id=, query=``)."""


class DetectionScheduler(Periodic):
    """Runs every enabled rule whose time has come over its lookback window every
    ``tick_seconds`` from :meth:`start` (or entering it with ``async with``) until :meth:`stop`:
    the rules due together as shared scans (:func:`shared_matches`), a correlation alone. A
    rule's next run is set before it runs, so a slow or failing rule never runs back to back."""

    shared_scans: bool = True
    """Whether due rules run as shared scans; without, one at a time, :data:`DUE_PER_TICK` per
    tick, each with its own query (how every rule ran before shared scans; a benchmark's
    baseline)."""

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
        if not self.shared_scans:
            return await self._run_due_one_by_one()
        now = utcnow()
        async with self._db.session() as db:
            due = list(
                await db.scalars(
                    select(DetectionRule)
                    .where(DetectionRule.enabled.is_(True), DetectionRule.next_run_at <= now)
                    .order_by(DetectionRule.next_run_at)
                    .limit(SHARED_DUE_PER_TICK)
                )
            )
            by_interval: dict[int, list[str]] = defaultdict(list)
            for rule in due:
                by_interval[rule.interval_seconds].append(rule.id)
            for interval, ids in by_interval.items():
                # A statement, not the ORM rows: scheduling is no edit, so the rule's version
                # stays and an analyst's edit in between neither conflicts nor is undone.
                await db.execute(
                    update(DetectionRule)
                    .where(DetectionRule.id.in_(ids))
                    .values(last_run_at=now, next_run_at=now + timedelta(seconds=interval))
                    .execution_options(synchronize_session=False)
                )
            await db.commit()
            db.expunge_all()
        by_window: dict[int, list[DetectionRule]] = defaultdict(list)
        for rule in due:
            if rule.correlation:
                await self._run_one(rule.id, now - timedelta(seconds=rule.lookback_seconds), now)
            else:
                by_window[rule.lookback_seconds].append(rule)
        for lookback, rules in by_window.items():
            await self._run_shared(rules, now - timedelta(seconds=lookback), now)
        return len(due)

    async def _run_one(self, rule_id: str, start: datetime, end: datetime) -> None:
        await run_rule(
            database=self._db,
            store=self._store,
            rule_id=rule_id,
            start=start,
            end=end,
            kind="scheduled",
            actor="scheduler",
            dedup_window_seconds=self._dedup_window(),
            publish=self._publish,
        )

    async def _run_shared(self, rules: list[DetectionRule], start: datetime, end: datetime) -> None:
        """Run ``rules`` (of one window) as shared scans and record a run for each, as
        :func:`run_rule` would: the runs written together, before and after."""
        runs = {
            rule.id: RuleRun(
                rule_id=rule.id,
                kind="scheduled",
                window_start=start,
                window_end=end,
                status="running",
                requested_by="scheduler",
                sample=[],
            )
            for rule in rules
        }
        async with self._db.session() as db:
            db.add_all(runs.values())
            await db.commit()
            db.expunge_all()
        try:
            results = await shared_matches(
                self._store, rules, start=start, end=end, limit=MAX_ALERTS_PER_RUN
            )
        except Exception as err:  # no rule's own doing: each records it
            results = {rule.id: Matched(error=err) for rule in rules}
        dedup = self._dedup_window()
        for rule in rules:
            run, found = runs[rule.id], results[rule.id]
            started = time.perf_counter()
            try:
                if found.error is not None:
                    raise found.error
                events = found.events or []
                run.matches = found.total
                run.sample = [brief(e) for e in events[:SAMPLE_SIZE]]
                await _raise_alerts(self._db, rule, run, events, dedup, self._publish)
                run.status = "succeeded"
            except Exception as err:
                _failed(run, rule.id, err)
            # Its share of the scan (the whole query: the rule's result waited for it) and
            # its own alerts.
            run.duration_ms = round((found.seconds + time.perf_counter() - started) * 1000, 3)
            run.finished_at = utcnow()
        async with self._db.session() as db:
            db.add_all(runs.values())
            await db.commit()

    async def _run_due_one_by_one(self) -> int:
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
                await db.execute(
                    update(DetectionRule)
                    .where(DetectionRule.id == rule_id)
                    .values(last_run_at=now, next_run_at=now + timedelta(seconds=interval))
                )
            await db.commit()
        for rule_id, lookback in plans:
            await self._run_one(rule_id, now - timedelta(seconds=lookback), now)
        return len(plans)
