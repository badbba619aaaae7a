"""Capacity: the platform scaled out under a SOC's mixed load, against a model built from the
cost of each operation measured alone in the same run (docs/scaling.md).

The platform, on loopback: ``--gateways`` gateway processes (default 2) on one PostgreSQL
database (made fresh on the server ``--database-url`` names, dropped at the end); gateway 0 owns
the embedded log store and the others leave it to it (``AURORA_LOG_STORE_OWNER=false``), so this
script sends it the log routes as the proxy would, and spreads the rest over the gateways in
turn. The specialists run as ``aurora agent run`` processes: threat_intel once (it keeps an intel
store), the others ``--agent-replicas`` times each (default 2), called round-robin.

1. Calibration: each operation alone for ``--calibrate`` seconds, with the WebSocket
   subscribers connected: an alert created (and fanned out to every subscriber), a batch of
   ``--batch`` log events ingested, a search, an analyst's read (the alert queue's first page
   and one alert), an investigation (queued, run by the specialists, ended). Its cost is the
   CPU time the gateways, the agents and PostgreSQL used, divided by the operations done, the
   tiers' idle use over the same time taken off (after a warm-up: what the first of each
   loads is nobody's cost).
2. The model: for the load's rates, the CPU each tier needs is the sum of rate x cost.
3. The load: ``--duration`` seconds of a scripted stream at once: alerts, log ingest, analysts
   who each read the queue and search the logs every ``--think`` seconds, investigations
   dispatched at a steady rate, and ``--subscribers`` streams of ``/api/v1/ws/alerts``. Each
   stream is open-loop (sent on schedule, whatever the answers), with a bound on what is in
   flight. Reported: the CPU each tier used against the model's prediction, the operations'
   latencies (p50/p99), the alerts' delivery to every subscriber, investigations ended and
   errors.

The model holds when the measured CPU of each tier is within 30% of the prediction. The same
costs size a deployment (``--size``): cores per tier for a SOC of a given size, at 50% target
utilisation, and the replicas that gives.

    bash -c 'source .ci/run; PY=python3; start_postgres; \\
        .venv/bin/python -m benchmarks.capacity --database-url "$AURORA_TEST_POSTGRES_URL"'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from aiohttp import ClientSession, ClientTimeout, TCPConnector, WSMsgType
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    ADMIN_PASSWORD,
    HOST,
    cpu_seconds,
    free_port,
    gateway_settings,
    login,
    percentile,
    prepare,
    run_gateway,
)
from benchmarks.investigate import agent_environment, agent_pids, subject
from benchmarks.siem import DAYS, NDJSON, QUERIES, Corpus, child_pids, synthetic_templates
from benchmarks.ws_fanout import drop_database, fresh_database
from gateway.supervisor import AgentSupervisor, agent_command

SINGLE: Final = ("threat_intel",)
STATELESS: Final = ("malware", "network", "endpoint", "responder", "hunter")
TIERS: Final = ("gateways", "agents", "postgres")
OPERATIONS: Final = ("alert", "ingest", "search", "read", "investigation")
TOLERANCE: Final = 0.30
TARGET_UTILISATION: Final = 0.5
"""Sizing leaves half of each core free: bursts, a replica down, the machine's own work."""
CORES_PER_GATEWAY: Final = 2
CORES_PER_AGENT: Final = 1
TERMINAL: Final = {"completed", "failed", "cancelled"}

SOC_SIZES: Final[dict[str, dict[str, float]]] = {
    # per second: alerts, log events, analysts' reads and searches; investigations per minute;
    # open streams (consoles, integrations).
    "small": {"alert": 0.05, "eps": 1_000, "analysts": 5, "investigations": 2, "streams": 20},
    "medium": {"alert": 0.5, "eps": 10_000, "analysts": 25, "investigations": 15, "streams": 100},
    "large": {"alert": 3.0, "eps": 50_000, "analysts": 100, "investigations": 60, "streams": 500},
}
"""SOCs of three sizes (the docs' table). An analyst reads the queue and searches the logs about
every 20 s while working."""
ANALYST_THINK_SECONDS: Final = 20.0


# -- the platform -------------------------------------------------------------------------------


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (the benchmark's own server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in {"postgres", "postmaster"}:
                    found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (a gateway's ingest workers sit under a fork server)."""
    found = []
    pending = child_pids(pid)
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(child_pids(child))
    return found


@dataclass(slots=True)
class Meter:
    """CPU seconds each tier used between two readings (a gateway with its ingest workers)."""

    gateways: list[int]
    agents: list[int]

    def read(self) -> dict[str, float]:
        def total(pids: list[int]) -> float:
            return sum(cpu_seconds(pid) or 0.0 for pid in pids)

        return {
            "gateways": total([p for g in self.gateways for p in (g, *descendants(g))]),
            "agents": total(self.agents),
            "postgres": total(postgres_pids()),
        }

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {tier: after[tier] - before[tier] for tier in TIERS}


# -- the client ---------------------------------------------------------------------------------


@dataclass
class Client:
    session: ClientSession
    bases: list[str]
    """Gateway 0 first: the store owner."""
    token: str
    corpus: Corpus
    turn: itertools.count[int] = field(default_factory=itertools.count)
    batches: itertools.count[int] = field(default_factory=itertools.count)
    numbers: itertools.count[int] = field(default_factory=itertools.count)
    alerts: list[str] = field(default_factory=list)
    sent: dict[str, float] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def any(self) -> str:
        return self.bases[next(self.turn) % len(self.bases)]

    async def _call(self, method: str, url: str, status: int, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        async with self.session.request(method, url, headers=headers, **kwargs) as response:
            body = await response.read()
            if response.status != status:
                raise RuntimeError(f"{method} {url} answered {response.status}: {body[:300]!r}")
            return json.loads(body)

    async def alert(self) -> None:
        title = f"capacity-{next(self.numbers)}"
        self.sent[title] = time.perf_counter()
        made = await self._call(
            "POST",
            f"{self.any()}/api/v1/alerts",
            201,
            json={"title": title, "source": "capacity", "severity": "medium"},
        )
        self.alerts.append(made["id"])

    async def ingest(self) -> None:
        body, _ = self.corpus.make(next(self.batches) % self.corpus.batches)
        await self._call(
            "POST",
            f"{self.bases[0]}/api/v1/siem/logs/ingest",
            200,
            data=body,
            params={"source": "capacity"},
            headers={"Content-Type": NDJSON},
        )

    async def search(self) -> None:
        """One of the SIEM benchmark's analyst searches, in turn."""
        n = next(self.numbers)
        make = list(QUERIES.values())[n % len(QUERIES)]
        params = make(random.Random(n), self.corpus)
        await self._call("GET", f"{self.bases[0]}/api/v1/siem/logs", 200, params=params)

    async def read(self) -> None:
        base = self.any()
        page = await self._call("GET", f"{base}/api/v1/alerts", 200, params={"limit": "50"})
        if page["items"]:
            await self._call("GET", f"{base}/api/v1/alerts/{page['items'][0]['id']}", 200)

    async def investigation(self) -> None:
        base = self.any()
        accepted = await self._call(
            "POST",
            f"{base}/api/v1/agents/investigate",
            202,
            json=subject(10_000 + next(self.numbers)),
        )
        while True:
            await asyncio.sleep(0.25)
            found = await self._call("GET", f"{base}/api/v1/investigations/{accepted['id']}", 200)
            if found["status"] in TERMINAL:
                if found["status"] != "completed":
                    raise RuntimeError(f"investigation {accepted['id']} {found['status']}")
                return


@dataclass(slots=True)
class Stream:
    """One open-loop stream of an operation: started every ``1 / rate`` seconds, at most
    ``in_flight`` at once (a start that finds them all busy is counted as shed)."""

    name: str
    rate: float
    run: Callable[[], Awaitable[None]]
    in_flight: int = 16
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    shed: int = 0

    async def drive(self, seconds: float) -> None:
        if self.rate <= 0:
            return
        slots = asyncio.Semaphore(self.in_flight)
        tasks: set[asyncio.Task[None]] = set()

        async def one() -> None:
            started = time.perf_counter()
            try:
                await self.run()
                self.latencies.append(time.perf_counter() - started)
            except Exception as err:
                self.errors.append(str(err)[:300])
            finally:
                slots.release()

        begin = time.perf_counter()
        for n in itertools.count():
            at = begin + n / self.rate
            if at - begin >= seconds:
                break
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            if slots.locked():
                self.shed += 1
                continue
            await slots.acquire()
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=120)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "done": len(ordered),
            "errors": len(self.errors),
            "shed": self.shed,
            "p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else -1,
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 1),
            **({"first_error": self.errors[0]} if self.errors else {}),
        }


class Subscribers:
    """``count`` streams of ``/api/v1/ws/alerts`` spread over the gateways; each notes when each
    alert created arrives."""

    def __init__(self, client: Client, count: int) -> None:
        self.client = client
        self.count = count
        self.delays: list[float] = []
        self.recording = False
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        ready = asyncio.Event()
        opened = 0

        async def listen(base: str) -> None:
            nonlocal opened
            url = base.replace("http://", "ws://") + "/api/v1/ws/alerts"
            async with self.client.session.ws_connect(
                url, params={"access_token": self.client.token}, heartbeat=None
            ) as ws:
                opened += 1
                if opened == self.count:
                    ready.set()
                async for message in ws:
                    if message.type != WSMsgType.TEXT:
                        break
                    event = json.loads(message.data)
                    if self.recording and event.get("type") == "created":
                        at = self.client.sent.get(event["alert"]["title"])
                        if at is not None:
                            self.delays.append(time.perf_counter() - at)

        for _ in range(self.count):
            self._tasks.append(asyncio.create_task(listen(self.client.any())))
        await asyncio.wait_for(ready.wait(), 120)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# -- measuring ----------------------------------------------------------------------------------


def streams(client: Client, rates: dict[str, float]) -> list[Stream]:
    return [
        Stream("alert", rates["alert"], client.alert),
        Stream("ingest", rates["ingest"], client.ingest),
        Stream("search", rates["search"], client.search),
        Stream("read", rates["read"], client.read),
        Stream("investigation", rates["investigation"], client.investigation, in_flight=32),
    ]


SETTLE_SECONDS: Final = 1.0
"""After an operation's calibration, for what it set off (fan-out, receipts) to end."""


async def warm_up(client: Client) -> None:
    """Each operation a few times, untimed: what the first of each loads (the ATT&CK
    knowledge base, the parsers, the store's marks, connections) is not anyone's cost."""
    for stream in streams(client, dict.fromkeys(OPERATIONS, 2.0)):
        await stream.drive(2.0)
        if stream.errors:
            raise RuntimeError(f"warming up {stream.name}: {stream.errors[0]}")


async def calibrate(
    client: Client,
    meter: Meter,
    seconds: float,
    rates: dict[str, float],
    baseline: dict[str, float],
) -> dict[str, dict[str, float]]:
    """The CPU cost of one of each operation, per tier, in milliseconds: each alone, the
    tiers' idle use over the same time taken off."""
    costs: dict[str, dict[str, float]] = {}
    for stream in streams(client, rates):
        before = meter.read()
        started = time.perf_counter()
        await stream.drive(seconds)
        await asyncio.sleep(SETTLE_SECONDS)
        spent = Meter.spent(before, meter.read())
        took = time.perf_counter() - started
        done = max(1, len(stream.latencies))
        if stream.errors:
            raise RuntimeError(f"calibrating {stream.name}: {stream.errors[0]}")
        costs[stream.name] = {
            tier: round(max(0.0, spent[tier] - baseline[tier] * took) / done * 1000, 3)
            for tier in TIERS
        }
        costs[stream.name]["count"] = done
    return costs


async def idle(meter: Meter, seconds: float) -> dict[str, float]:
    """CPU per second each tier uses with nothing to do (its loops, health checks, leases)."""
    before = meter.read()
    await asyncio.sleep(seconds)
    return {tier: v / seconds for tier, v in Meter.spent(before, meter.read()).items()}


def predict(
    costs: dict[str, dict[str, float]], rates: dict[str, float], baseline: dict[str, float]
) -> dict[str, float]:
    """Cores each tier needs for ``rates`` (per second): idle use plus rate x cost."""
    return {
        tier: baseline[tier] + sum(rates[op] * costs[op][tier] / 1000 for op in OPERATIONS)
        for tier in TIERS
    }


def size(
    costs: dict[str, dict[str, float]], baseline: dict[str, float], batch: int
) -> dict[str, dict[str, Any]]:
    """Cores and replicas per tier for each of :data:`SOC_SIZES`, its logs sent ``batch``
    events a request."""
    table: dict[str, dict[str, Any]] = {}
    for name, soc in SOC_SIZES.items():
        rates = {
            "alert": soc["alert"],
            "ingest": soc["eps"] / batch,
            "search": soc["analysts"] / ANALYST_THINK_SECONDS,
            "read": soc["analysts"] / ANALYST_THINK_SECONDS,
            "investigation": soc["investigations"] / 60,
        }
        # Fan-out grows with the streams open: the alert's cost was measured with the run's.
        cores = predict(costs, rates, baseline)
        needed = {tier: cores[tier] / TARGET_UTILISATION for tier in TIERS}
        table[name] = {
            **soc,
            "gateway_cores": round(needed["gateways"], 2),
            "gateway_replicas": max(2, math.ceil(needed["gateways"] / CORES_PER_GATEWAY)),
            "agent_cores": round(needed["agents"], 2),
            "agent_replicas_each": max(
                2, math.ceil(needed["agents"] / CORES_PER_AGENT / len(STATELESS))
            ),
            "postgres_cores": round(needed["postgres"], 2),
        }
    return table


async def measure(args: argparse.Namespace, client: Client, meter: Meter) -> dict[str, Any]:
    subscribers = Subscribers(client, args.subscribers)
    await subscribers.open()
    try:
        await warm_up(client)
        baseline = await idle(meter, 5.0)
        calibration_rates = {
            "alert": 10.0,
            "ingest": 4.0,
            "search": 8.0,
            "read": 10.0,
            "investigation": 2.0,
        }
        costs = await calibrate(client, meter, args.calibrate, calibration_rates, baseline)
        rates = {
            "alert": args.alert_rate,
            "ingest": args.eps / args.batch,
            "search": args.analysts / args.think,
            "read": args.analysts / args.think,
            "investigation": args.investigations_per_minute / 60,
        }
        predicted = predict(costs, rates, baseline)
        load = streams(client, rates)
        subscribers.delays.clear()
        subscribers.recording = True
        before = meter.read()
        started = time.perf_counter()
        await asyncio.gather(*(s.drive(args.duration) for s in load))
        elapsed = time.perf_counter() - started
        spent = Meter.spent(before, meter.read())
        await asyncio.sleep(2.0)  # the last alerts' deliveries
        subscribers.recording = False
    finally:
        await subscribers.close()
    measured = {tier: spent[tier] / elapsed for tier in TIERS}
    ratios = {
        tier: round(measured[tier] / predicted[tier], 3) if predicted[tier] else -1
        for tier in TIERS
    }
    alerts = len(load[0].latencies)
    delays = sorted(subscribers.delays)
    return {
        "gateways": args.gateways,
        "agent_replicas": args.agent_replicas,
        "cores": os.cpu_count(),
        "batch": args.batch,
        "rates_per_second": {k: round(v, 3) for k, v in rates.items()},
        "idle_cores": {k: round(v, 3) for k, v in baseline.items()},
        "cost_cpu_ms": costs,
        "per_core_per_second": {
            op: {
                tier: round(1000 / costs[op][tier], 1) if costs[op][tier] > 0 else None
                for tier in TIERS
            }
            for op in OPERATIONS
        },
        "load_seconds": round(elapsed, 1),
        "predicted_cores": {k: round(v, 3) for k, v in predicted.items()},
        "measured_cores": {k: round(v, 3) for k, v in measured.items()},
        "measured_over_predicted": ratios,
        "model_holds": all(abs(r - 1) <= TOLERANCE for r in ratios.values() if r > 0),
        "operations": {s.name: s.summary() for s in load},
        "ws": {
            "subscribers": args.subscribers,
            "expected": alerts * args.subscribers,
            "delivered": len(delays),
            "p50_ms": round(statistics.median(delays) * 1000, 1) if delays else -1,
            "p99_ms": round(percentile(delays, 0.99) * 1000, 1),
        },
        "sizing": size(costs, baseline, args.batch),
    }


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    url, name = await fresh_database(args.database_url)
    agent_environment(tmp / "agents")
    children = {name: (*agent_command(name), "--port", "0") for name in SINGLE}
    for agent in STATELESS:
        for replica in range(args.agent_replicas):
            children[f"{agent}-{replica}"] = (*agent_command(agent), "--port", "0")
    supervisor = AgentSupervisor(children, start_timeout=180)
    processes: list[multiprocessing.process.BaseProcess] = []
    try:
        started = await supervisor.start()
        if missing := [n for n, u in started.items() if u is None]:
            raise RuntimeError(f"agents that did not start: {', '.join(missing)}")
        agent_urls: dict[str, list[str]] = {}
        for child, address in started.items():
            agent_urls.setdefault(child.rsplit("-", 1)[0], []).append(str(address))
        settings = [
            gateway_settings(
                tmp / f"g{i}",
                free_port(),
                database_url=url,
                log_store_owner=i == 0,
                agent_host=HOST,
                agent_urls=agent_urls,
            )
            for i in range(args.gateways)
        ]
        await prepare(settings[0])
        context = multiprocessing.get_context("spawn")
        for i, each in enumerate(settings):
            # Not daemonic: a gateway starts its own ingest workers.
            process = context.Process(target=run_gateway, args=(each,), name=f"gateway-{i}")
            process.start()
            processes.append(process)
        bases = [f"http://{HOST}:{s.port}" for s in settings]
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        corpus = Corpus(synthetic_templates(), 10_000_000, args.batch, end - timedelta(days=DAYS))
        connector = TCPConnector(limit=0)
        async with ClientSession(timeout=ClientTimeout(total=120), connector=connector) as session:
            token = ""
            for base, gateway in zip(bases, processes, strict=True):
                token = await login(session, base, "admin", ADMIN_PASSWORD, gateway.is_alive)
            client = Client(session, bases, token, corpus)
            meter = Meter(
                gateways=[p.pid for p in processes if p.pid is not None],
                agents=agent_pids(),
            )
            return await measure(args, client, meter)
    finally:
        for running in processes:
            running.terminate()
        for running in processes:
            await asyncio.to_thread(running.join, 30)
        await supervisor.stop()
        await drop_database(args.database_url, name)


def print_report(report: dict[str, Any]) -> None:
    print(json.dumps(report, indent=2))
    print()
    print(f"{'tier':<10} {'predicted cores':>16} {'measured cores':>15} {'measured/predicted':>19}")
    for tier in TIERS:
        print(
            f"{tier:<10} {report['predicted_cores'][tier]:>16.3f} "
            f"{report['measured_cores'][tier]:>15.3f} "
            f"{report['measured_over_predicted'][tier]:>19.3f}"
        )
    verdict = "holds" if report["model_holds"] else "does NOT hold"
    print(f"\nthe model {verdict} (each tier within {TOLERANCE:.0%} of its prediction)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL server (asyncpg)")
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--agent-replicas", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--alert-rate", type=float, default=5.0, help="alerts per second")
    parser.add_argument("--eps", type=float, default=2_000, help="log events per second")
    parser.add_argument("--batch", type=int, default=1_000, help="log events per ingest request")
    parser.add_argument("--analysts", type=int, default=20)
    parser.add_argument(
        "--think", type=float, default=5.0, help="seconds between an analyst's looks"
    )
    parser.add_argument("--investigations-per-minute", type=float, default=60)
    parser.add_argument("--calibrate", type=float, default=10.0, help="seconds per operation")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of mixed load")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    if make_url(args.database_url).get_backend_name() != "postgresql":
        parser.error("the replicas share PostgreSQL: give a postgresql+asyncpg:// URL")
    if make_url(args.database_url).host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("benchmarks only ever target loopback addresses")
    if min(args.gateways, args.agent_replicas, args.subscribers) < 1:
        parser.error("--gateways, --agent-replicas and --subscribers must be at least 1")
    if args.duration > 600 or args.calibrate > 120:
        parser.error("the run is bounded: --duration at most 600 s, --calibrate at most 120 s")
    with tempfile.TemporaryDirectory(prefix="aurora-bench-capacity-") as folder:
        report = asyncio.run(run(args, Path(folder)))
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["model_holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
