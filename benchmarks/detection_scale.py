"""Detection at scale: the whole SigmaHQ Windows corpus on the gateway's scheduler, every
``--interval`` seconds over the same lookback, while events stream in at ``--rate`` per second.

The gateway runs in its own process on loopback, on a fresh data directory (its log store the
embedded chDB, its database SQLite), as ``aurora serve`` runs it; its detection scheduler runs
due rules either as shared scans (``--mode shared``: the rules of one logsource and window
evaluated over one scan of it) or one query per rule (``--mode per-rule``: the path every rule
took before shared scans); ``--mode both`` measures one after the other, each on its own fresh
data directory, so the report shows them side by side.

1. Rules: every ``rules/windows/**.yml`` of the shared SigmaHQ corpus
   (``sigma/sigma_rules_all.tgz``) is uploaded through ``POST /api/v1/detections/rules``, saved
   disabled with ``interval_seconds`` and ``lookback_seconds`` of ``--interval``; then each is
   enabled (``PATCH``) once events flow.
   Reported: accepted (created and enabled) and refused, the refusals grouped by AURORA code and
   reason (conversion errors, logsources the log store does not hold).
2. Ingest: ``POST /api/v1/siem/logs/ingest`` of NDJSON at a steady ``--rate`` (a batch every
   ``--period`` seconds, at most ``--concurrency`` in flight; a batch that cannot be sent on time
   is sent late, so the achieved rate shows whether the gateway kept up) for ``--minutes``. The
   events are the real Windows events of ``logs/evtx_to_mitre_attack`` (Security, Sysmon and
   PowerShell) with current timestamps, 500 hosts and fresh record numbers.
   ``--warmup`` seconds of ingest alone come before the rules are enabled (its CPU is the ingest's
   own cost).
3. Detection: after ingest, the gateway gets up to one more interval to finish the runs that
   were due; then it is stopped and its database read: per cycle (the k-th run of every rule)
   the time from its first run's start to its last run's end, runs failed, matches, alerts; the
   lag of every run (when it finished against when it was due: the rule's enabling, then the
   previous run's scheduling plus the interval), p50 / p99 / max, a run due but not finished by
   the end counted with the time it had waited so far; the gateway's CPU (its process and
   children) during ingest alone and during ingest with detection.
4. Baseline, on the same data once the gateway is stopped (a child process opens its chDB): the
   last complete cycle's window scanned once per logsource with no rule (a plain count), against
   the same window with every rule (the per-rule queries, and the shared scans), detection SQL
   alone, no database writes.

Target: every rule's run finishes within its interval (lag p99 < the interval, no complete cycle
longer than the interval, no run left overdue) while ingest holds ``--rate`` (achieved >= 95 %).

Only loopback addresses are used; the gateway is stopped at the end (also on Ctrl-C) and every
phase ends by itself. The defaults (5 minutes, 5,000 ev/s) take about 20 minutes per mode;
``--interval 60 --minutes 3`` is a quick run.

    .venv/bin/python benchmarks/detection_scale.py [--mode both] [--interval 300] [--rate 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import random
import re
import statistics
import sys
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    ADMIN_PASSWORD,
    HOST,
    free_port,
    gateway_settings,
    login,
    percentile,
    prepare,
    run_gateway,
    wait_message,
)
from benchmarks.siem import CORPUS, Gateway, host_name, load_templates
from benchmarks.sigma_upload import corpus_archive, tree_cpu_seconds
from core.db import create_database
from core.settings import Settings

SOURCE: Final = "bench-detections"
RULES: Final = "/api/v1/detections/rules"
WINDOWS_RULES: Final = "rules/windows/"
KEPT_UP: Final = 0.95
"""Ingest kept up when it achieved at least this share of the target rate."""
UPLOADERS: Final = 8
"""Uploads in flight: the gateway converts two at a time with eight waiting."""
MODES: Final = ("per-rule", "shared")


# -- the gateway --------------------------------------------------------------------------------


def run_gateway_in_mode(settings: Settings, mode: str) -> None:
    """A child process's target: the gateway, its scheduler in ``mode``."""
    from gateway.detections.runs import DetectionScheduler

    # The class default, in this child alone: the gateway builds its scheduler from it.
    DetectionScheduler.shared_scans = mode == "shared"
    run_gateway(settings)


class Api(Gateway):
    """The SIEM benchmark's client of the gateway under test, its events under this benchmark's
    source, and requests whose 503 (conversions queued full) are sent again."""

    def __init__(self, session: ClientSession, base: str, token: str) -> None:
        super().__init__(session, base, token, source=SOURCE)

    async def send(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """The status and JSON answer; a 5030 (conversions queued full) is retried."""
        while True:
            async with self.session.request(
                method, f"{self.base}{path}", json=body, headers=self.headers
            ) as response:
                answer = await response.json()
                if response.status != 503:
                    return response.status, answer
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))


# -- rules --------------------------------------------------------------------------------------


def windows_rules(archive: Path) -> list[tuple[str, str]]:
    """Every Windows rule of the corpus: (path, YAML text)."""
    found = []
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            name = member.name.removeprefix("./")
            if member.isfile() and name.startswith(WINDOWS_RULES) and name.endswith(".yml"):
                handle = tar.extractfile(member)
                if handle is not None:
                    found.append((name, handle.read().decode()))
    return found


def reason(answer: Any) -> str:
    """A refusal's code and reason, without what names one rule (quoted values, numbers)."""
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    detail = error.get("detail")
    text = error.get("message") or ""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        loc = ".".join(str(p) for p in detail[0].get("loc", []))
        text = f"{loc}: {detail[0].get('msg', '')}"
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", str(text))
    text = re.sub(r"\d+", "N", text.splitlines()[0] if text else "")
    return f"{error.get('code', '?')} {text[:110]}"


@dataclass
class Enabled:
    rule_id: str
    due: datetime
    """When its first run was due (its enabling)."""


async def upload(
    api: Api, rules: list[tuple[str, str]], interval: int
) -> tuple[list[str], Counter[str], float]:
    """Create every rule disabled; the created ids, refusals by reason, seconds taken."""
    created: list[str] = []
    refused: Counter[str] = Counter()
    queue = iter(rules)
    started = time.perf_counter()

    async def worker() -> None:
        for _path, text in queue:
            status, answer = await api.send(
                "POST",
                RULES,
                {
                    "sigma": text,
                    "enabled": False,
                    "interval_seconds": interval,
                    "lookback_seconds": interval,
                },
            )
            if status == 201:
                created.append(str(answer["id"]))
            else:
                refused[reason(answer)] += 1

    await asyncio.gather(*(worker() for _ in range(UPLOADERS)))
    return created, refused, time.perf_counter() - started


async def enable(api: Api, ids: list[str]) -> tuple[list[Enabled], Counter[str]]:
    """Enable every rule; those enabled (with when they were due first), refusals by reason."""
    enabled: list[Enabled] = []
    refused: Counter[str] = Counter()
    queue = iter(ids)

    async def worker() -> None:
        for rule_id in queue:
            status, answer = await api.send(
                "PATCH", f"{RULES}/{rule_id}", {"enabled": True, "version": 1}
            )
            if status == 200:
                enabled.append(Enabled(rule_id, parse_time(answer["next_run_at"])))
            else:
                refused[reason(answer)] += 1

    await asyncio.gather(*(worker() for _ in range(UPLOADERS)))
    return enabled, refused


def parse_time(value: str | datetime) -> datetime:
    moment = (
        datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    )
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- ingest -------------------------------------------------------------------------------------


class Events:
    """Batches of NDJSON from the corpus's events, stamped with the current time."""

    def __init__(self, templates: list[dict[str, Any]]) -> None:
        self.templates = templates
        self.rng = random.Random(7)
        self.record = 0

    def batch(self, count: int, period: float) -> bytes:
        now = datetime.now(UTC)
        lines = []
        for n in range(count):
            event = dict(self.rng.choice(self.templates))
            at = now - timedelta(seconds=period * (count - n) / count)
            event["TimeCreated"] = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
            if "UtcTime" in event:
                event["UtcTime"] = at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            event["Computer"] = host_name(min(int(self.rng.expovariate(1 / 80)), 499))
            event["EventRecordID"] = self.record
            self.record += 1
            lines.append(orjson.dumps(event))
        return b"\n".join(lines) + b"\n"


@dataclass
class IngestResult:
    sent: int = 0
    accepted: int = 0
    seconds: float = 0.0
    late_batches: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    per_second: list[float] = field(default_factory=list)
    """Events accepted in each 10-second stretch, per second."""


async def ingest(
    api: Api, events: Events, rate: int, seconds: float, period: float, concurrency: int
) -> IngestResult:
    """``rate`` events per second for ``seconds``, a batch every ``period``."""
    result = IngestResult()
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    per_batch = max(1, round(rate * period))
    buckets: Counter[int] = Counter()
    started = time.monotonic()

    async def send(body: bytes) -> None:
        try:
            accepted = await api.ingest(body)
            result.accepted += accepted
            buckets[int((time.monotonic() - started) // 10)] += accepted
        except Exception as err:
            result.errors[type(err).__name__ + ": " + str(err)[:120]] += 1
        finally:
            slots.release()

    tick = 0
    while (due := started + tick * period) < started + seconds:
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -period:
            result.late_batches += 1
        await slots.acquire()
        body = events.batch(per_batch, period)
        result.sent += per_batch
        task = asyncio.create_task(send(body))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        tick += 1
    await asyncio.gather(*tasks)
    result.seconds = time.monotonic() - started
    full = int(result.seconds // 10)
    result.per_second = [buckets[b] / 10 for b in range(full)]
    return result


# -- what the scheduler did ---------------------------------------------------------------------


@dataclass
class Run:
    rule_id: str
    status: str
    window_start: datetime
    window_end: datetime
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float
    matches: int
    alerts: int
    error: str | None


async def read_runs(settings: Settings) -> tuple[list[Run], dict[str, int]]:
    """Every scheduled run, oldest first; each rule's interval."""
    from gateway.detections.models import DetectionRule, RuleRun

    database = create_database(settings.effective_database_url)
    try:
        async with database.session() as db:
            rows = await db.scalars(
                select(RuleRun).where(RuleRun.kind == "scheduled").order_by(RuleRun.window_end)
            )
            runs = [
                Run(
                    r.rule_id,
                    r.status,
                    parse_time(r.window_start),
                    parse_time(r.window_end),
                    parse_time(r.started_at),
                    parse_time(r.finished_at) if r.finished_at else None,
                    float(r.duration_ms or 0.0),
                    r.matches,
                    r.alerts,
                    r.error,
                )
                for r in rows
            ]
            intervals = dict(
                (
                    await db.execute(
                        select(DetectionRule.id, DetectionRule.interval_seconds).where(
                            DetectionRule.enabled.is_(True)
                        )
                    )
                ).all()
            )
    finally:
        await database.dispose()
    return runs, {str(k): int(v) for k, v in intervals.items()}


async def settled(settings: Settings, until: datetime) -> bool:
    """Whether every run due before ``until`` has finished."""
    from gateway.detections.models import DetectionRule, RuleRun

    database = create_database(settings.effective_database_url)
    try:
        async with database.session() as db:
            running = await db.scalar(
                select(RuleRun.id).where(RuleRun.status == "running").limit(1)
            )
            overdue = await db.scalar(
                select(DetectionRule.id)
                .where(
                    DetectionRule.enabled.is_(True),
                    DetectionRule.next_run_at <= until,
                )
                .limit(1)
            )
    finally:
        await database.dispose()
    return running is None and overdue is None


def cycles(
    runs: list[Run],
    enabled: list[Enabled],
    intervals: dict[str, int],
    *,
    due_before: datetime,
    now: datetime,
) -> dict[str, Any]:
    """Cycles (the k-th run of every rule), run lags, failures, alerts. A run due before
    ``due_before`` and not finished at ``now`` counts as overdue, with the time it waited."""
    by_rule: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_rule[run.rule_id].append(run)
    lags: list[float] = []
    overdue = 0
    per_cycle: dict[int, list[Run]] = defaultdict(list)
    for rule in enabled:
        due: datetime | None = rule.due
        interval = intervals.get(rule.rule_id, 0)
        for k, run in enumerate(by_rule.get(rule.rule_id, [])):
            per_cycle[k].append(run)
            if run.finished_at is None or due is None:
                break
            lags.append((run.finished_at - due).total_seconds())
            due = run.window_end + timedelta(seconds=interval)
            if run is by_rule[rule.rule_id][-1] and due >= due_before:
                due = None  # its next run was not due within the measure
        if due is not None and due < due_before:
            overdue += 1
            lags.append((now - due).total_seconds())
    lags.sort()
    table = []
    for k in sorted(per_cycle):
        members = per_cycle[k]
        finished = [r for r in members if r.finished_at is not None]
        complete = len(finished) == len(enabled)
        span = (
            (
                max(r.finished_at for r in finished if r.finished_at)
                - min(r.started_at for r in members)
            ).total_seconds()
            if finished
            else 0.0
        )
        table.append(
            {
                "cycle": k + 1,
                "runs": len(members),
                "finished": len(finished),
                "complete": complete,
                "span_s": round(span, 1),
                "run_ms_sum_s": round(sum(r.duration_ms for r in finished) / 1000, 1),
                "failed": sum(r.status == "failed" for r in members),
                "matches": sum(r.matches for r in members),
                "alerts": sum(r.alerts for r in members),
                "window_end": max(r.window_end for r in members).isoformat(),
            }
        )
    failures = Counter((r.error or "?")[:100] for r in runs if r.status == "failed")
    return {
        "cycles": table,
        "lag_s": {
            "runs": len(lags),
            "p50": round(statistics.median(lags), 2) if lags else None,
            "p99": round(percentile(lags, 0.99), 2) if lags else None,
            "max": round(lags[-1], 2) if lags else None,
        },
        "overdue_at_end": overdue,
        "runs": len(runs),
        "runs_failed": sum(r.status == "failed" for r in runs),
        "rules_failed": len({r.rule_id for r in runs if r.status == "failed"}),
        "failures": dict(failures.most_common(10)),
        "alerts": sum(r.alerts for r in runs),
        "matches": sum(r.matches for r in runs),
    }


# -- the baseline: the same window with no rule, and with every rule ---------------------------


def run_baseline(conn: Connection, settings: Settings, start: datetime, end: datetime) -> None:
    """A child process's target: open the stopped gateway's chDB and time, over ``[start,
    end)``, one count per logsource (no rule), every rule's own query, and the shared scans."""
    asyncio.run(_baseline(conn, settings, start, end))


async def _baseline(conn: Connection, settings: Settings, start: datetime, end: datetime) -> None:
    from core.logstore.store import LogStore
    from gateway.detections import runs as detection_runs
    from gateway.detections.models import DetectionRule
    from tools.sigma.logsource import scope_sql

    database = create_database(settings.effective_database_url)
    async with database.session() as db:
        rules = list(await db.scalars(select(DetectionRule).where(DetectionRule.enabled.is_(True))))
    await database.dispose()
    plain = [r for r in rules if not r.correlation]
    scopes = {
        scope_sql(
            (r.logsource or {}).get("product"),
            (r.logsource or {}).get("category"),
            (r.logsource or {}).get("service"),
        )
        for r in plain
    }
    store = LogStore.from_settings(settings)
    await store.start()
    window = {"start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None)}
    where = "timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}"
    count = f"SELECT count() FROM {store.table} WHERE {where}"  # noqa: S608
    report: dict[str, Any] = {"window_start": start.isoformat(), "window_end": end.isoformat()}
    await store.query(count, window)  # the first query opens the table's files
    began = time.perf_counter()
    total = await store.query(count, window)
    report["events_in_window"] = int(total.result_rows[0][0])
    report["one_scan_s"] = round(time.perf_counter() - began, 3)
    began = time.perf_counter()
    for scope in scopes:
        await store.query(f"{count} AND ({scope})", window)
    report["logsources"] = len(scopes)
    report["bare_scan_per_logsource_s"] = round(time.perf_counter() - began, 3)
    began = time.perf_counter()
    failed = 0
    for rule in plain:
        try:
            await store.matching(
                detection_runs.scoped_condition(rule), {}, start=start, end=end, limit=0
            )
        except Exception:
            failed += 1
    report["per_rule_sql_s"] = round(time.perf_counter() - began, 3)
    report["per_rule_sql_failed"] = failed
    shared = getattr(detection_runs, "shared_matches", None)
    if shared is not None:
        began = time.perf_counter()
        await shared(store, plain, start=start, end=end, limit=0)
        report["shared_sql_s"] = round(time.perf_counter() - began, 3)
    await store.close()
    conn.send(report)


# -- one mode -----------------------------------------------------------------------------------


async def measure_mode(
    args: argparse.Namespace,
    mode: str,
    data_dir: Path,
    rules: list[tuple[str, str]],
    templates: list[dict[str, Any]],
) -> dict[str, Any]:
    settings = gateway_settings(data_dir, free_port())
    await prepare(settings)
    context = multiprocessing.get_context("spawn")
    # Not daemonic: the gateway starts worker processes of its own.
    process = context.Process(target=run_gateway_in_mode, args=(settings, mode))
    process.start()
    report: dict[str, Any] = {"mode": mode}
    base = f"http://{HOST}:{settings.port}"
    try:
        connector = TCPConnector(limit=64)
        async with ClientSession(
            connector=connector, timeout=ClientTimeout(total=args.timeout)
        ) as session:
            token = await login(
                session, base, settings.admin_username, ADMIN_PASSWORD, process.is_alive
            )
            api = Api(session, base, token)
            pid = process.pid or 0
            print(f"[{mode}] uploading {len(rules)} rules", file=sys.stderr)
            created, refused, upload_s = await upload(api, rules, args.interval)
            report["upload_s"] = round(upload_s, 1)
            events = Events(templates)
            seconds = args.minutes * 60
            print(f"[{mode}] ingest {args.rate} ev/s for {seconds:.0f} s", file=sys.stderr)
            cpu0, wall0 = tree_cpu_seconds(pid), time.monotonic()
            feeding = asyncio.create_task(
                ingest(api, events, args.rate, seconds, args.period, args.concurrency)
            )
            await asyncio.sleep(args.warmup)
            cpu1, wall1 = tree_cpu_seconds(pid), time.monotonic()
            print(f"[{mode}] enabling {len(created)} rules", file=sys.stderr)
            enabled, refused_enabling = await enable(api, created)
            refused.update(refused_enabling)
            fed = await feeding
            cpu2, wall2 = tree_cpu_seconds(pid), time.monotonic()
            ended = datetime.now(UTC)
            print(f"[{mode}] ingest done; waiting for the runs due", file=sys.stderr)
            deadline = time.monotonic() + args.interval
            while time.monotonic() < deadline:
                if await settled(settings, ended):
                    break
                await asyncio.sleep(2)
            stopped = datetime.now(UTC)
    finally:
        process.terminate()
        await asyncio.to_thread(process.join, 60)
        if process.is_alive():
            process.kill()
    runs, intervals = await read_runs(settings)
    report["rules"] = {
        "windows_files": len(rules),
        "accepted": len(enabled),
        "refused": sum(refused.values()),
        "refused_by_reason": dict(refused.most_common()),
    }
    report["ingest"] = {
        "target_eps": args.rate,
        "achieved_eps": round(fed.accepted / fed.seconds),
        "min_10s_eps": round(min(fed.per_second)) if fed.per_second else None,
        "accepted": fed.accepted,
        "sent": fed.sent,
        "late_batches": fed.late_batches,
        "errors": dict(fed.errors),
        "kept_up": fed.accepted / fed.seconds >= KEPT_UP * args.rate,
    }
    report["gateway_cpu_cores"] = {
        "ingest_alone": round((cpu1 - cpu0) / max(wall1 - wall0, 1e-9), 2),
        "ingest_and_detection": round((cpu2 - cpu1) / max(wall2 - wall1, 1e-9), 2),
    }
    report["detection"] = cycles(runs, enabled, intervals, due_before=ended, now=stopped)
    report["settled_after_ingest_s"] = round((stopped - ended).total_seconds(), 1)
    complete = [c for c in report["detection"]["cycles"] if c["complete"]]
    if complete:
        end = parse_time(complete[-1]["window_end"])
        conn, child = context.Pipe()
        baseline = context.Process(
            target=run_baseline,
            args=(child, settings, end - timedelta(seconds=args.interval), end),
        )
        baseline.start()
        try:
            report["baseline"] = await asyncio.to_thread(
                wait_message, conn, baseline, within=args.timeout * 4
            )
        finally:
            await asyncio.to_thread(baseline.join, 60)
            if baseline.is_alive():
                baseline.kill()
    return report


def verdicts(report: dict[str, Any], interval: int) -> list[tuple[bool, str]]:
    detection = report["detection"]
    lag = detection["lag_s"]
    longest = max((c["span_s"] for c in detection["cycles"] if c["complete"]), default=math.inf)
    complete = sum(c["complete"] for c in detection["cycles"])
    return [
        (
            report["ingest"]["kept_up"],
            f"ingest {report['ingest']['achieved_eps']:,} ev/s of"
            f" {report['ingest']['target_eps']:,} (>= {KEPT_UP:.0%})",
        ),
        (
            lag["p99"] is not None and lag["p99"] < interval,
            f"lag p99 {lag['p99']} s < interval {interval} s",
        ),
        (
            complete >= 1 and longest <= interval and detection["overdue_at_end"] == 0,
            f"{complete} complete cycle(s), longest {longest} s <= {interval} s, "
            f"{detection['overdue_at_end']} run(s) overdue at the end",
        ),
    ]


def print_report(report: dict[str, Any], interval: int) -> None:
    for mode in report["modes"]:
        rules = mode["rules"]
        print(f"== {mode['mode']} ==")
        print(
            f"rules: {rules['windows_files']} Windows files, {rules['accepted']} accepted and"
            f" enabled, {rules['refused']} refused (upload {mode['upload_s']} s):"
        )
        for why, count in rules["refused_by_reason"].items():
            print(f"  {count:>5}  {why}")
        ingest_ = mode["ingest"]
        print(
            f"ingest: {ingest_['achieved_eps']:,} ev/s of {ingest_['target_eps']:,} (slowest 10 s:"
            f" {ingest_['min_10s_eps']}), {ingest_['late_batches']} late batches,"
            f" errors {ingest_['errors'] or 'none'}"
        )
        cpu = mode["gateway_cpu_cores"]
        print(
            f"gateway CPU (cores): ingest alone {cpu['ingest_alone']},"
            f" ingest + detection {cpu['ingest_and_detection']}"
        )
        print(
            f"{'cycle':>5}{'runs':>7}{'done':>7}{'span s':>9}{'sum run s':>11}{'failed':>8}"
            f"{'matches':>10}{'alerts':>8}"
        )
        detection = mode["detection"]
        for c in detection["cycles"]:
            mark = "" if c["complete"] else "  (incomplete)"
            print(
                f"{c['cycle']:>5}{c['runs']:>7}{c['finished']:>7}{c['span_s']:>9}"
                f"{c['run_ms_sum_s']:>11}{c['failed']:>8}{c['matches']:>10}{c['alerts']:>8}{mark}"
            )
        lag = detection["lag_s"]
        print(
            f"lag: p50 {lag['p50']} s, p99 {lag['p99']} s, max {lag['max']} s over {lag['runs']}"
            f" runs; {detection['overdue_at_end']} overdue at the end; rules failed"
            f" {detection['rules_failed']} ({detection['runs_failed']} runs); alerts"
            f" {detection['alerts']}"
        )
        for error, count in detection["failures"].items():
            print(f"  {count:>5}  {error}")
        if "baseline" in mode:
            b = mode["baseline"]
            line = (
                f"baseline over the last complete window ({b['events_in_window']:,} events):"
                f" one scan {b['one_scan_s']} s, bare scan per logsource ({b['logsources']})"
                f" {b['bare_scan_per_logsource_s']} s, per-rule SQL {b['per_rule_sql_s']} s"
            )
            if "shared_sql_s" in b:
                line += f", shared-scan SQL {b['shared_sql_s']} s"
            print(line)
        for ok, text in verdicts(mode, interval):
            print(f"{'PASS' if ok else 'FAIL'}  [{mode['mode']}] {text}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    archive = corpus_archive()
    if archive is None:
        raise SystemExit("the SigmaHQ corpus (shared sigma/sigma_rules_all.tgz) is absent")
    rules = windows_rules(archive)[: args.limit or None]
    templates, described = load_templates(CORPUS)
    report: dict[str, Any] = {
        "interval_s": args.interval,
        "rate": args.rate,
        "minutes": args.minutes,
        "events": described,
        "modes": [],
    }
    for mode in MODES if args.mode == "both" else (args.mode,):
        with tempfile.TemporaryDirectory(prefix="aurora-bench-") as tmp:
            report["modes"].append(await measure_mode(args, mode, Path(tmp), rules, templates))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=[*MODES, "both"], default="both")
    parser.add_argument("--interval", type=int, default=300, help="rule interval = lookback, s")
    parser.add_argument("--rate", type=int, default=5000, help="events per second")
    parser.add_argument(
        "--minutes", type=float, help="ingest time (default: warm-up + 2.5 intervals)"
    )
    parser.add_argument("--warmup", type=float, default=30, help="ingest alone first, s")
    parser.add_argument("--period", type=float, default=0.5, help="seconds between batches")
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight")
    parser.add_argument("--limit", type=int, default=0, help="only the first N rules (0: all)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per request")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if args.interval < 60 or args.rate < 1 or args.period <= 0:
        parser.error("--interval is at least 60 (the API's minimum), --rate and --period > 0")
    if args.minutes is None:
        args.minutes = (args.warmup + 2.5 * args.interval) / 60
    with contextlib.suppress(KeyboardInterrupt):
        report = asyncio.run(run(args))
        print_report(report, args.interval)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        passed = all(ok for mode in report["modes"] for ok, _ in verdicts(mode, args.interval))
        return 0 if passed else 1
    return 130


if __name__ == "__main__":
    sys.exit(main())
