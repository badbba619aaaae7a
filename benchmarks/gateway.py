"""Gateway overhead: authenticated ``GET /api/v1/users/me`` against a bare aiohttp handler.

Both servers run in their own process on loopback, in the same run, and are loaded by the same
client at a fixed concurrency for a fixed time, in alternating rounds, once each answers. The
report gives requests/s, p50 and p99 latency, the throughput ratio gateway/bare (target: at
least 0.5) and the server CPU per request of the gateway against the bare handler's (target: at
most 1.25 times).

    .venv/bin/python benchmarks/gateway.py [--seconds 5] [--rounds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from aiohttp import ClientSession, TCPConnector, web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    HOST,
    cpu_seconds,
    free_port,
    gateway_settings,
    run_gateway,
    wait_serving,
)
from core import eventloop
from core.db import create_database
from core.db.migrate import upgrade
from core.security.passwords import PasswordHasher
from core.security.permissions import Role
from core.security.tokens import TokenService
from core.settings import Settings
from gateway.users import service as users

FIELDS = ("rps", "p50_ms", "p99_ms", "server_cpu_us")


async def prepare(settings: Settings) -> str:
    """Migrate, create a user, and return a token for it."""
    database = create_database(settings.effective_database_url)
    try:
        await upgrade(database)
        async with database.session() as db:
            user = await users.create_user(
                db=db,
                hasher=PasswordHasher.from_settings(settings),
                username="bench-analyst",
                password="benchmark password 1",
                role=Role.ANALYST,
            )
    finally:
        await database.dispose()
    return TokenService.from_settings(settings).issue(user.id, ttl_seconds=3600).token


def run_bare(port: int) -> None:
    profile = {
        "id": "00000000-0000-4000-8000-000000000000",
        "username": "bench-analyst",
        "email": None,
        "full_name": None,
        "role": "analyst",
        "is_active": True,
        "created_at": "2026-01-01T00:00:00Z",
        "last_login_at": None,
        "permissions": ["alerts:read"],
        "auth_method": "token",
    }

    async def me(_request: web.Request) -> web.Response:
        return web.json_response(profile)

    app = web.Application()
    app.router.add_get("/api/v1/users/me", me)
    # On the loop the gateway serves on (core.eventloop), so the ratio compares the handlers.
    factory = eventloop.loop_factory()
    loop = factory() if factory is not None else None
    web.run_app(app, host=HOST, port=port, access_log=None, print=None, loop=loop)


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    server_cpu_us: float
    """Server CPU time (user + system) per request, in microseconds; -1 where unknown."""


async def load(
    name: str, url: str, headers: dict[str, str], seconds: float, concurrency: int, pid: int
) -> Result:
    latencies: list[float] = []
    errors = 0
    async with ClientSession(connector=TCPConnector(limit=concurrency)) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        cpu_before = cpu_seconds(pid)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu_after = cpu_seconds(pid)
        elapsed = time.perf_counter() - started
    latencies.sort()
    cpu_us = -1.0
    if cpu_before is not None and cpu_after is not None and latencies:
        cpu_us = round((cpu_after - cpu_before) / len(latencies) * 1e6, 1)
    return Result(
        name=name,
        requests=len(latencies),
        errors=errors,
        seconds=round(elapsed, 3),
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=round(latencies[len(latencies) // 2] * 1000, 3),
        p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
        server_cpu_us=cpu_us,
    )


async def measure(
    args: argparse.Namespace,
    token: str,
    gateway: tuple[int, int],
    bare: tuple[int, int],
    alive: Callable[[], bool],
) -> dict[str, object]:
    """Alternate bare and gateway runs; ``gateway`` and ``bare`` are (port, pid), ``alive``
    says whether both servers still run."""
    (gateway_port, gateway_pid), (bare_port, bare_pid) = gateway, bare
    auth = {"Authorization": f"Bearer {token}"}
    gateway_url = f"http://{HOST}:{gateway_port}/api/v1/users/me"
    bare_url = f"http://{HOST}:{bare_port}/api/v1/users/me"
    async with ClientSession() as session:
        for url in (gateway_url, bare_url):
            await wait_serving(session, url, alive, headers=auth)
    # Warm both servers (and the gateway's caches) before measuring.
    await load("warmup", bare_url, auth, 1.0, args.concurrency, bare_pid)
    await load("warmup", gateway_url, auth, 1.0, args.concurrency, gateway_pid)
    rounds: list[dict[str, Result]] = []
    for _ in range(args.rounds):
        rounds.append(
            {
                "bare": await load(
                    "bare", bare_url, auth, args.seconds, args.concurrency, bare_pid
                ),
                "gateway": await load(
                    "gateway", gateway_url, auth, args.seconds, args.concurrency, gateway_pid
                ),
            }
        )
    ratios = [r["gateway"].rps / r["bare"].rps for r in rounds]
    cpu_ratios = [
        r["bare"].server_cpu_us / r["gateway"].server_cpu_us
        for r in rounds
        if r["bare"].server_cpu_us > 0 and r["gateway"].server_cpu_us > 0
    ]

    def median(name: str, field: str) -> float:
        return round(float(statistics.median(getattr(r[name], field) for r in rounds)), 3)

    return {
        "concurrency": args.concurrency,
        "seconds_per_run": args.seconds,
        "rounds": [{k: asdict(v) for k, v in r.items()} for r in rounds],
        "bare": {f: median("bare", f) for f in FIELDS},
        "gateway": {f: median("gateway", f) for f in FIELDS},
        "errors": sum(r["gateway"].errors + r["bare"].errors for r in rounds),
        "ratio_median": round(statistics.median(ratios), 3),
        "cpu_ratio_median": round(statistics.median(cpu_ratios), 3) if cpu_ratios else None,
        "cpu_overhead_median": round(1 / statistics.median(cpu_ratios), 3) if cpu_ratios else None,
        "target_ratio": 0.5,
        "target_cpu_overhead": 1.25,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="aurora-bench-") as tmp:
        settings = gateway_settings(Path(tmp), free_port())
        token = asyncio.run(prepare(settings))
        bare_port = free_port()
        context = multiprocessing.get_context("spawn")
        servers = [
            context.Process(target=run_gateway, args=(settings,), daemon=True),
            context.Process(target=run_bare, args=(bare_port,), daemon=True),
        ]
        for server in servers:
            server.start()
        try:
            pids = [server.pid or 0 for server in servers]
            report = asyncio.run(
                measure(
                    args,
                    token,
                    (settings.port, pids[0]),
                    (bare_port, pids[1]),
                    lambda: all(server.is_alive() for server in servers),
                )
            )
        finally:
            for server in servers:
                server.terminate()
                server.join(10)
    bare, gateway = report["bare"], report["gateway"]
    assert isinstance(bare, dict)
    assert isinstance(gateway, dict)
    print(f"concurrency {args.concurrency}, {args.rounds} rounds of {args.seconds:g}s each")
    print(f"{'':10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'server CPU us/req':>20}")
    for name, row in (("bare", bare), ("gateway", gateway)):
        print(
            f"{name:10}{row['rps']:>10.0f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            f"{row['server_cpu_us']:>20.1f}"
        )
    print(
        f"throughput ratio gateway/bare (median of rounds): {report['ratio_median']:.3f} "
        f"(target >= {report['target_ratio']})"
    )
    print(
        f"server CPU ratio bare/gateway per request (capacity when CPU-bound): "
        f"{report['cpu_ratio_median']}; errors: {report['errors']}"
    )
    print(
        f"server CPU per request gateway/bare (median of rounds): "
        f"{report['cpu_overhead_median']}x (target <= {report['target_cpu_overhead']}x)"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
