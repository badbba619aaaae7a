"""ACP overhead: HandoffClient round trips against a bare WebSocket echo, in the same run.

Both servers run in their own process on loopback, on the same WebSocket library
(``websockets``); measuring starts once each says it listens (however long its imports take).
The echo baseline is a minimal client multiplexing frames by id over one connection; the ACP
side is the real HandoffClient calling a real AgentServer method (params validated, ``_meta``
with deadline, idempotency key and trace context, the result a pydantic model serialised). Each is
measured with 1 and with 64 requests in flight, in alternating rounds. (Both write one frame
a system call; ACP straight to the transport, the echo through ``Connection.send``.)
Target: at 64 in flight, at least 80% of the echo throughput, and p99 under 3 ms. Each side's
CPU a call is reported too: at 64 in flight the echo is bound by its client, ACP by its server.

It also times one dispatch through jsonrpcserver 5 against AgentServer's own dispatcher, to
show why jsonrpcserver stays out of the hot path.

    .venv/bin/python benchmarks/acp.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.acp.client import HandoffClient
from agents.acp.registry import AgentRegistry
from agents.acp.server import AcpLimits, AgentServer, CallContext
from benchmarks.common import HOST, SECRET, cpu_seconds, free_port, wait_started
from core import eventloop
from core.security.tokens import TokenService
from core.settings import JwtAlgorithm

TARGET_RATIO = 0.8
"""ACP throughput over the echo's, at 64 in flight."""
TARGET_P99_MS = 3.0
"""ACP's 99th-percentile round trip at 64 in flight."""

PAYLOAD = {"alert_id": "ALRT-2026-05821", "iocs": [{"type": "ip", "value": "45.33.32.156"}]}


class Ioc(BaseModel):
    type: str
    value: str


class EchoParams(BaseModel):
    alert_id: str
    iocs: list[Ioc]


def tokens() -> TokenService:
    return TokenService(
        algorithm=JwtAlgorithm.HS256,
        signing_key=SECRET,
        verifying_key=SECRET,
        issuer="aurorasoc",
        audience="aurorasoc-api",
        default_ttl=3600,
    )


def run_echo(port: int, ready: Event) -> None:
    async def echo(connection: ServerConnection) -> None:
        async for frame in connection:
            await connection.send(frame)

    async def main() -> None:
        async with serve(echo, HOST, port, compression=None, max_queue=1024):
            ready.set()
            await asyncio.Future()

    eventloop.run(main())


def run_agent(port: int, ready: Event) -> None:
    server = AgentServer(
        name="bench",
        version="1",
        description="benchmark agent",
        tokens=tokens(),
        limits=AcpLimits(max_in_flight=1024),
    )

    async def echo(params: EchoParams, _ctx: CallContext) -> EchoParams:
        return params

    server.add_method("echo", echo, params=EchoParams, result=EchoParams)

    async def main() -> None:
        await server.start(HOST, port)
        gc.freeze()  # as agent processes do after start-up
        ready.set()
        await asyncio.Future()

    eventloop.run(main())


async def measure(
    call: Callable[[], Awaitable[Any]],
    in_flight: int,
    seconds: float,
    server_pid: int | None = None,
) -> dict[str, float]:
    """Round trips a second and their p50 and p99; with ``server_pid``, the CPU a call of this
    (client) process and of the server's (whichever is busy all the time bounds the rate)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    client_before = time.process_time()
    server_before = cpu_seconds(server_pid) if server_pid is not None else None

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_before
    server_after = cpu_seconds(server_pid) if server_pid is not None else None
    latencies.sort()
    report = {
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "client_cpu_us": round(client_cpu / len(latencies) * 1e6, 1),
    }
    if server_before is not None and server_after is not None:
        report["server_cpu_us"] = round((server_after - server_before) / len(latencies) * 1e6, 1)
    return report


class EchoClient:
    """The baseline: frames multiplexed by id over one connection, nothing else."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ids = itertools.count()
        self.pending: dict[int, asyncio.Future[Any]] = {}

    async def start(self) -> None:
        self.socket = await connect(self.url, compression=None, max_queue=1024)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.socket:
            message = json.loads(frame)
            self.pending.pop(message["id"]).set_result(message)

    async def call(self) -> Any:
        request_id = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        frame = {"jsonrpc": "2.0", "method": "echo", "params": PAYLOAD, "id": request_id}
        await self.socket.send(json.dumps(frame))
        return await future

    async def close(self) -> None:
        await self.socket.close()
        self.reader.cancel()


async def dispatch_costs(samples: int = 3000) -> dict[str, float]:
    """Microseconds per call: AgentServer.dispatch against jsonrpcserver's async_dispatch."""
    server = AgentServer(name="bench", version="1", description="", tokens=None)

    async def echo(params: EchoParams, _ctx: CallContext) -> EchoParams:
        return params

    server.add_method("echo", echo, params=EchoParams)
    frame = json.dumps({"jsonrpc": "2.0", "method": "echo", "params": PAYLOAD, "id": 1})
    started = time.perf_counter()
    for _ in range(samples):
        await server.dispatch(frame)
    ours = (time.perf_counter() - started) / samples * 1e6
    result = {"agent_server_dispatch_us": round(ours, 1)}
    try:
        from jsonrpcserver import Result, Success, async_dispatch, method
    except ImportError:
        return result

    @method(name="echo")
    async def _echo(alert_id: str, iocs: list[dict[str, str]]) -> Result:
        return Success(EchoParams.model_validate({"alert_id": alert_id, "iocs": iocs}).model_dump())

    started = time.perf_counter()
    for _ in range(samples):
        await async_dispatch(frame)
    theirs = (time.perf_counter() - started) / samples * 1e6
    result["jsonrpcserver_async_dispatch_us"] = round(theirs, 1)
    return result


async def run(
    args: argparse.Namespace, echo_port: int, agent_port: int, pids: tuple[int, int]
) -> dict[str, Any]:
    echo = EchoClient(f"ws://{HOST}:{echo_port}")
    handoff = HandoffClient(
        registry=AgentRegistry({"bench": (f"ws://{HOST}:{agent_port}",)}),
        sender="benchmark",
        token=lambda: tokens().issue("benchmark", token_type="agent").token,
        max_in_flight=1024,
    )
    await echo.start()
    await handoff.call("bench", "agent.health")

    async def acp_call() -> Any:
        return await handoff.call("bench", "echo", PAYLOAD)

    gc.freeze()  # as the gateway does after start-up
    await measure(echo.call, 64, 1.0)  # warm up
    await measure(acp_call, 64, 1.0)
    report: dict[str, Any] = {"seconds_per_run": args.seconds, "rounds": args.rounds}
    for in_flight in (1, 64):
        rounds = []
        for _ in range(args.rounds):
            rounds.append(
                {
                    "echo": await measure(echo.call, in_flight, args.seconds, pids[0]),
                    "acp": await measure(acp_call, in_flight, args.seconds, pids[1]),
                }
            )
        report[f"in_flight_{in_flight}"] = {
            "echo": {k: statistics.median(r["echo"][k] for r in rounds) for k in rounds[0]["echo"]},
            "acp": {k: statistics.median(r["acp"][k] for r in rounds) for k in rounds[0]["acp"]},
            "ratio_median": round(
                statistics.median(r["acp"]["rps"] / r["echo"]["rps"] for r in rounds), 3
            ),
            "rounds": rounds,
        }
    await echo.close()
    await handoff.close()
    report["dispatch"] = await dispatch_costs()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    echo_port, agent_port = free_port(), free_port()
    context = multiprocessing.get_context("spawn")
    ready = [context.Event(), context.Event()]
    servers = [
        context.Process(target=run_echo, args=(echo_port, ready[0]), name="echo", daemon=True),
        context.Process(target=run_agent, args=(agent_port, ready[1]), name="agent", daemon=True),
    ]
    for server in servers:
        server.start()
    try:
        for server, started in zip(servers, ready, strict=True):
            wait_started(server, started)
        echo_pid, agent_pid = servers[0].pid, servers[1].pid
        assert echo_pid is not None  # started, so it has one
        assert agent_pid is not None
        report = asyncio.run(run(args, echo_port, agent_port, (echo_pid, agent_pid)))
    finally:
        for server in servers:
            server.terminate()
            server.join(10)
    print(f"{args.rounds} rounds of {args.seconds:g}s; medians")
    print(
        f"{'in flight':>10}{'':>6}{'rt/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
        f"{'client CPU us':>15}{'server CPU us':>15}"
    )
    for in_flight in (1, 64):
        row = report[f"in_flight_{in_flight}"]
        for name in ("echo", "acp"):
            r = row[name]
            print(
                f"{in_flight:>10}{name:>6}{r['rps']:>10.0f}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}"
                f"{r['client_cpu_us']:>15.1f}{r.get('server_cpu_us', -1):>15.1f}"
            )
        print(f"{'':>10}ratio acp/echo: {row['ratio_median']:.3f}")
    top = report["in_flight_64"]
    met = top["ratio_median"] >= TARGET_RATIO and top["acp"]["p99_ms"] < TARGET_P99_MS
    print(
        f"target at 64 in flight: ratio >= {TARGET_RATIO} (got {top['ratio_median']:.3f}), "
        f"p99 < {TARGET_P99_MS:g} ms (got {top['acp']['p99_ms']:.3f}): "
        f"{'pass' if met else 'FAIL'}"
    )
    print("dispatch cost per call (us):", report["dispatch"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
