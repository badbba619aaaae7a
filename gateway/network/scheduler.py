"""The network detectors' schedule: every ``schedule.interval_seconds`` of the configuration,
each enabled detector runs over its window ending now; what they find becomes attacks
(:func:`gateway.network.attacks.record`), announced on the bus (``network.attacks``, the
automation trigger ``network.attack``), and each detector's state (last run, duration, error,
counters) is kept for ``GET /network-security/status``.

Telemetry that arrives late (a sensor that was cut off and sends its backlog, a capture
replayed from disk) is detected too: each cycle asks the store which hours received telemetry
since the last cycle, beyond the detectors' own windows, and runs them over those hours as
well (at most :data:`BACKFILL_HOURS` a cycle, oldest first; the rest in the next cycles).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select

from core.db import Database
from core.db.base import utcnow
from core.db.leases import Lease
from core.logstore.schema import time_bounds
from core.logstore.store import LogStore
from core.loops import Periodic
from core.metrics import Metrics
from core.validation import EARLIEST
from gateway.network import attacks
from gateway.network.config import load_config
from gateway.network.configuration import Detector, NetworkConfig
from gateway.network.detectors import run_all
from gateway.network.models import NetworkDetectorState

log = logging.getLogger("aurora.network.scheduler")

TICK_SECONDS: Final = 5.0
"""How often the scheduler looks whether a cycle is due."""
BACKFILL_HOURS: Final = 6
"""The most hours of late telemetry detected in one cycle."""
RESUME_LIMIT: Final = timedelta(days=7)
"""How far back a restarted scheduler looks for telemetry that arrived while it was down."""
TELEMETRY_FORMATS: Final = ("suricata", "zeek", "netflow")

type Publish = Callable[[str, dict[str, Any]], object]


@dataclass(slots=True)
class Cycle:
    """What one cycle did."""

    end: datetime
    windows: list[datetime] = field(default_factory=list)
    """The ends of the windows detected (now, and each late hour's end)."""
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    duration_ms: float = 0.0


class NetworkScheduler(Periodic):
    """Runs the detectors on the configuration's schedule (see the module docstring)."""

    def __init__(
        self,
        *,
        database: Database,
        store: LogStore,
        publish: Publish | None = None,
        metrics: Metrics | None = None,
        tick_seconds: float = TICK_SECONDS,
        lease: Lease | None = None,
    ) -> None:
        super().__init__(
            "network-detectors", self.tick, tick_seconds, log=log, first_wait=True, lease=lease
        )
        self._db = database
        self._store = store
        self._publish = publish
        self._metrics = metrics
        self._next: datetime | None = None
        self._seen_ingest: datetime | None = None
        """Telemetry ingested up to this moment has been looked at for late hours."""
        self._late_from: datetime | None = None
        """Where the next look for late hours goes on (a backlog longer than one cycle's)."""
        self.last_cycle: Cycle | None = None
        self._last_run: dict[Detector, datetime] = {}

    async def __aenter__(self) -> NetworkScheduler:
        self.start()
        return self

    @property
    def state(self) -> dict[str, Any]:
        last = self.last_cycle
        return {
            "running": self.running,
            "next_cycle_at": self._next.isoformat() if self._next else None,
            "last_cycle_at": last.end.isoformat() if last else None,
            "last_cycle_ms": last.duration_ms if last else None,
            "last_cycle_windows": len(last.windows) if last else 0,
        }

    async def tick(self) -> Cycle | None:
        """Run a cycle when one is due (and the schedule is on)."""
        config = await load_config(self._db)
        now = utcnow()
        if not config.schedule.enabled or (self._next is not None and now < self._next):
            return None
        self._next = now + timedelta(seconds=config.schedule.interval_seconds)
        return await self.run_cycle(config=config, end=now)

    async def _late_hours(self, config: NetworkConfig, *, now: datetime) -> list[datetime]:
        """Hours (their starts) before the detectors' own windows that received telemetry since
        the last look, oldest first, at most :data:`BACKFILL_HOURS`; when there are more, the
        next cycle goes on after the last one returned (from the same ingest moment)."""
        margin = timedelta(seconds=config.schedule.interval_seconds * 2)
        since = self._seen_ingest or await self._last_cycle_started(now) - margin
        after = self._late_from
        horizon = now - timedelta(seconds=max_window(config))
        # [after, horizon), on the sorting key's hour too (time_bounds); the table's name and
        # the bounds' conditions are written in, every value is bound
        bounds, parameters = time_bounds(after or EARLIEST, horizon)
        found = await self._store.query(
            "SELECT toStartOfHour(timestamp) AS hour "  # noqa: S608
            f"FROM {self._store.table} "
            f"WHERE ingested_at > {{since:DateTime64(3)}} AND {' AND '.join(bounds)} "
            "AND format IN {formats:Array(String)} "
            "GROUP BY hour ORDER BY hour LIMIT {most:UInt32}",
            {
                **parameters,
                "since": since,
                "formats": list(TELEMETRY_FORMATS),
                "most": BACKFILL_HOURS + 1,
            },
        )
        hours = [_aware(row[0]) for row in found.result_rows]
        if len(hours) > BACKFILL_HOURS:
            hours = hours[:BACKFILL_HOURS]
            self._late_from = hours[-1] + timedelta(hours=1)
        else:
            self._seen_ingest, self._late_from = now, None
        return hours

    async def run_cycle(
        self,
        *,
        config: NetworkConfig | None = None,
        end: datetime | None = None,
        backfill: bool = True,
    ) -> Cycle:
        """Run every enabled detector over its window ending ``end`` (now by default), and
        over the late hours; record and announce what they find."""
        config = config or await load_config(self._db)
        end = end or utcnow()
        started = time.perf_counter()
        cycle = Cycle(end=end)
        windows: list[tuple[datetime | None, datetime]] = [(None, end)]
        if backfill:
            late = await self._late_hours(config, now=end)
            windows = [(hour, hour + timedelta(hours=1)) for hour in late] + windows
        dedupe = timedelta(seconds=config.schedule.dedupe_seconds)
        for window_start, window_end in windows:
            cycle.windows.append(window_end)
            due = self._due(config, now=end) if window_start is None else None
            results = await run_all(
                self._store, config, start=window_start, end=window_end, detectors=due
            )
            found = [c for r in results.values() for c in r.candidates]
            async with self._db.session() as db:
                recorded = await attacks.record(db, found, dedupe=dedupe)
                payloads = [attacks.published(a, new=True) for a in recorded.opened] + [
                    attacks.published(a, new=False) for a in recorded.updated
                ]
                cycle.opened += [a.id for a in recorded.opened]
                cycle.updated += [a.id for a in recorded.updated]
                await self._save_state(db, results, recorded, started_at=utcnow(), end=window_end)
            for detector, result in results.items():
                if result.error:
                    cycle.failed[detector.value] = result.error
            self._count(results, recorded)
            if self._publish is not None:
                for payload in payloads:
                    self._publish(attacks.TOPIC, payload)
        cycle.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        self.last_cycle = cycle
        return cycle

    async def _last_cycle_started(self, now: datetime) -> datetime:
        """When a cycle last ran (before a restart: the detectors' saved state), at most
        :data:`RESUME_LIMIT` ago; now when none ever ran."""
        async with self._db.session() as db:
            last = await db.scalar(select(func.max(NetworkDetectorState.last_started_at)))
        if last is None:
            return now
        return max(_aware(last), now - RESUME_LIMIT)

    def _count(self, results: dict[Detector, Any], recorded: attacks.Recorded) -> None:
        if self._metrics is None:
            return
        for detector, result in results.items():
            outcome = "failed" if result.error else "succeeded"
            self._metrics.network_detector_runs.labels(detector.value, outcome).inc()
            self._metrics.network_detector_duration.labels(detector.value).observe(
                result.duration_ms / 1000
            )
        for change, found in (("opened", recorded.opened), ("updated", recorded.updated)):
            for attack in found:
                self._metrics.network_attacks.labels(attack.detector, change).inc()

    def _due(self, config: NetworkConfig, *, now: datetime) -> list[Detector]:
        """The enabled detectors whose cadence has come: every cycle, or every ``every_seconds``
        for those that have one (beaconing reads hours of flows and need not run each cycle)."""
        due = []
        for detector in config.thresholds.enabled():
            every = getattr(getattr(config.thresholds, detector.value), "every_seconds", None)
            last = self._last_run.get(detector)
            if every and last is not None and now - last < timedelta(seconds=int(every)):
                continue
            self._last_run[detector] = now
            due.append(detector)
        return due

    async def _save_state(
        self,
        db: Any,
        results: dict[Detector, Any],
        recorded: attacks.Recorded,
        *,
        started_at: datetime,
        end: datetime,
    ) -> None:
        opened: dict[str, int] = {}
        updated: dict[str, int] = {}
        for attack in recorded.opened:
            opened[attack.detector] = opened.get(attack.detector, 0) + 1
        for attack in recorded.updated:
            updated[attack.detector] = updated.get(attack.detector, 0) + 1
        states = {
            s.detector: s
            for s in await db.scalars(
                select(NetworkDetectorState).where(
                    NetworkDetectorState.detector.in_([d.value for d in results])
                )
            )
        }
        for detector, result in results.items():
            state = states.get(detector.value)
            if state is None:
                state = NetworkDetectorState(
                    detector=detector.value,
                    runs=0,
                    failures=0,
                    attacks_opened=0,
                    attacks_updated=0,
                    last_candidates=0,
                )
                db.add(state)
            state.last_started_at = started_at
            state.last_window_end = end
            state.last_duration_ms = result.duration_ms
            state.last_status = "failed" if result.error else "succeeded"
            state.last_error = result.error
            state.last_candidates = len(result.candidates)
            state.runs += 1
            state.failures += 1 if result.error else 0
            state.attacks_opened += opened.get(detector.value, 0)
            state.attacks_updated += updated.get(detector.value, 0)
        await db.commit()


def max_window(config: NetworkConfig) -> int:
    """The longest window of the enabled detectors, in seconds."""
    thresholds = config.thresholds
    windows = [3600]
    for detector in thresholds.enabled():
        rule = getattr(thresholds, detector.value)
        windows.append(int(getattr(rule, "lookback_seconds", 0) or rule.window_seconds))
    return max(windows)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
