"""WebSocket fan-out across gateway replicas: delivery latency of alerts to 1,000 subscribers.

``--gateways`` gateway processes (default 3) on one PostgreSQL database (made fresh on the
server ``--database-url`` names, dropped at the end), each on its own loopback port; ``--
subscribers`` WebSocket clients of ``/api/v1/ws/alerts`` spread over them in turn. Alerts are
created through replica 0 at ``--rate`` per second; each subscriber notes when each alert
reaches it. Reported: deliveries against those expected (a lost one shows), and the latency from
the ``POST`` being sent to the event arriving, p50/p99, for subscribers on the replica that made
the alert (its own bus) and on the others (through PostgreSQL, ``core.bridge``), and whether
every delivery's p99 is under 100 ms.

    bash -c 'source .ci/run; PY=python3; start_postgres; \\
        .venv/bin/python -m benchmarks.ws_fanout --database-url "$AURORA_TEST_POSTGRES_URL"'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, ClientWebSocketResponse, TCPConnector
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

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
)

TARGET_P99_MS = 100  # issue 20: 1,000 subscribers, every delivery's p99 under 100 ms


async def fresh_database(server_url: str) -> tuple[str, str]:
    """A new empty database on the server of ``server_url``: its URL and name."""
    name = f"aurora_fanout_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return url, name


async def drop_database(server_url: str, name: str) -> None:
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


class Arrivals:
    """When each alert reached each subscriber; ``complete`` is set once all expected came."""

    def __init__(self, expected: int) -> None:
        self.by_title: dict[str, list[tuple[int, float]]] = {}
        self.count = 0
        self.expected = expected
        self.complete = asyncio.Event()

    def note(self, title: str, index: int) -> None:
        self.by_title.setdefault(title, []).append((index, time.perf_counter()))
        self.count += 1
        if self.count >= self.expected:
            self.complete.set()


async def subscribe(
    session: ClientSession, url: str, token: str, index: int, arrivals: Arrivals
) -> ClientWebSocketResponse:
    ws = await session.ws_connect(f"{url}/api/v1/ws/alerts?access_token={token}", heartbeat=None)

    async def read() -> None:
        async for message in ws:
            body = json.loads(message.data)
            if body.get("type") == "created":
                arrivals.note(body["alert"]["title"], index)

    asyncio.get_running_loop().create_task(read())
    return ws


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    url, name = await fresh_database(args.database_url)
    processes = []
    try:
        settings = [
            gateway_settings(tmp / f"g{i}", free_port(), database_url=url)
            for i in range(args.gateways)
        ]
        await prepare(settings[0])
        context = multiprocessing.get_context("spawn")
        for i, each in enumerate(settings):
            process = context.Process(
                target=run_gateway, args=(each,), name=f"gateway-{i}", daemon=True
            )
            process.start()
            processes.append(process)
        bases = [f"http://{HOST}:{s.port}" for s in settings]
        arrivals = Arrivals(args.alerts * args.subscribers)
        seen = arrivals.by_title
        sent: dict[str, float] = {}
        connector = TCPConnector(limit=0)
        async with ClientSession(timeout=ClientTimeout(total=60), connector=connector) as session:
            token = ""
            for base, process in zip(bases, processes, strict=True):
                token = await login(session, base, "admin", ADMIN_PASSWORD, process.is_alive)
            sockets = [
                await subscribe(session, bases[i % len(bases)], token, i, arrivals)
                for i in range(args.subscribers)
            ]
            headers = {"Authorization": f"Bearer {token}"}
            for n in range(args.alerts):
                title = f"fanout-{n}"
                sent[title] = time.perf_counter()
                async with session.post(
                    f"{bases[0]}/api/v1/alerts",
                    json={"title": title, "source": "bench"},
                    headers=headers,
                ) as response:
                    if response.status != 201:
                        raise RuntimeError(f"alert refused: {await response.text()}")
                await asyncio.sleep(1 / args.rate)
            with contextlib.suppress(TimeoutError):  # what has not come by then is lost
                await asyncio.wait_for(arrivals.complete.wait(), 30)
            for ws in sockets:
                await ws.close()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(30)
        await drop_database(args.database_url, name)
    local: list[float] = []
    remote: list[float] = []
    for title, times in seen.items():
        for index, at in times:
            (local if index % args.gateways == 0 else remote).append(at - sent[title])
    delivered = sum(len(v) for v in seen.values())

    def describe(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        if not ordered:
            return {"deliveries": 0}
        return {
            "deliveries": len(ordered),
            "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        }

    every = describe(local + remote)

    return {
        "gateways": args.gateways,
        "subscribers": args.subscribers,
        "alerts": args.alerts,
        "expected": args.alerts * args.subscribers,
        "delivered": delivered,
        "same_replica": describe(local),
        "other_replicas": describe(remote),
        "target": f"every delivery p99 < {TARGET_P99_MS} ms",
        "meets_target": delivered == args.alerts * args.subscribers
        and every.get("p99_ms", float("inf")) < TARGET_P99_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL server (asyncpg)")
    parser.add_argument("--gateways", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=30)
    parser.add_argument("--rate", type=float, default=5.0, help="alerts per second")
    args = parser.parse_args()
    if make_url(args.database_url).get_backend_name() != "postgresql":
        parser.error("the replicas share PostgreSQL: give a postgresql+asyncpg:// URL")
    for host in (make_url(args.database_url).host,):
        if host not in {"127.0.0.1", "localhost", "::1"}:
            parser.error("benchmarks only ever target loopback addresses")
    with tempfile.TemporaryDirectory(prefix="aurora-bench-fanout-") as folder:
        result = asyncio.run(run(args, Path(folder)))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
