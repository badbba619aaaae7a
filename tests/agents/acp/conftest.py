"""A live ACP server on a loopback port, and a raw WebSocket client to talk to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel, RootModel
from websockets.asyncio.client import ClientConnection, connect

from agents.acp.server import AcpLimits, AgentServer, CallContext
from core.errors import AlertNotFound, LLMUnavailable
from core.security.tokens import TokenService
from core.settings import JwtAlgorithm

SECRET = "acp-test-secret-acp-test-secret-0123456789"


def token_service() -> TokenService:
    return TokenService(
        algorithm=JwtAlgorithm.HS256,
        signing_key=SECRET,
        verifying_key=SECRET,
        issuer="aurorasoc",
        audience="aurorasoc-api",
        default_ttl=900,
    )


def agent_token(subject: str = "orchestrator") -> str:
    return token_service().issue(subject, token_type="agent").token


class Subtract(BaseModel):
    minuend: int
    subtrahend: int


class Numbers(RootModel[list[int]]):
    pass


class Hello(BaseModel):
    n: int


class Sleep(BaseModel):
    seconds: float
    label: str = ""


class Fail(BaseModel):
    kind: str


def example_server(limits: AcpLimits | None = None) -> AgentServer:
    """An agent serving the JSON-RPC 2.0 specification's section 7 methods and a few probes."""
    server = AgentServer(
        name="spec-agent",
        version="1.0.0",
        description="JSON-RPC 2.0 specification examples",
        tokens=token_service(),
        limits=limits,
    )
    server.runs = []  # type: ignore[attr-defined]
    server.cancelled = []  # type: ignore[attr-defined]
    hellos: list[int] = []

    async def subtract(p: Subtract, _ctx: CallContext) -> int:
        return p.minuend - p.subtrahend

    async def total(p: Numbers, _ctx: CallContext) -> int:
        return sum(p.root)

    async def update(p: Numbers, _ctx: CallContext) -> None:
        return None

    async def notify_hello(p: Hello, _ctx: CallContext) -> None:
        hellos.append(p.n)

    async def get_data(_p: None, _ctx: CallContext) -> list[Any]:
        return ["hello", 5]

    async def sleep(p: Sleep, ctx: CallContext) -> dict[str, Any]:
        server.runs.append(p.label)  # type: ignore[attr-defined]
        await ctx.thought("sleeping", f"for {p.seconds}s")
        try:
            await asyncio.sleep(p.seconds)  # the work a caller waits on, cancels or times out
        except asyncio.CancelledError:
            server.cancelled.append(p.label)  # type: ignore[attr-defined]
            raise
        await ctx.tool_call("clock", {"seconds": p.seconds}, "slept", p.seconds * 1000)
        return {"slept": p.seconds, "label": p.label, "meta": ctx.meta.model_dump(mode="json")}

    async def fail(p: Fail, _ctx: CallContext) -> None:
        if p.kind == "aurora":
            raise AlertNotFound({"alert_id": "ALRT-1"})
        if p.kind == "llm":
            raise LLMUnavailable("backend down")
        raise RuntimeError("/etc/secret-path exploded with password=hunter2")

    server.add_method("subtract", subtract, params=Subtract)
    server.add_method("sum", total, params=Numbers)
    server.add_method("update", update, params=Numbers)
    server.add_method("notify_hello", notify_hello, params=Hello)
    server.add_method("notify_sum", total, params=Numbers)
    server.add_method("get_data", get_data)
    server.add_method("sleep", sleep, params=Sleep)
    server.add_method("fail", fail, params=Fail)
    server.hellos = hellos  # type: ignore[attr-defined]
    return server


class Live:
    def __init__(self, server: AgentServer, url: str) -> None:
        self.server = server
        self.url = url

    def connect(self, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token or agent_token()}"}
        return connect(self.url, additional_headers=headers, compression=None, **kwargs)


async def exchange(ws: ClientConnection, payload: Any, *, raw: bool = False) -> Any:
    """Send one frame and return the next frame that is not a notification."""
    await ws.send(payload if raw else json.dumps(payload))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if isinstance(reply, dict) and "id" not in reply and "method" in reply:
            continue
        return reply


async def silence(ws: ClientConnection, seconds: float = 0.2) -> bool:
    """True when nothing arrives within ``seconds``."""
    try:
        await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return True
    return False


LIMITS = AcpLimits(max_frame_bytes=65_536, max_in_flight=4, hop_limit=3)


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    server = example_server(LIMITS)
    listener = await server.start("127.0.0.1", 0)
    port = next(iter(listener.sockets)).getsockname()[1]
    try:
        yield Live(server, f"ws://127.0.0.1:{port}")
    finally:
        listener.close()
        await listener.wait_closed()
