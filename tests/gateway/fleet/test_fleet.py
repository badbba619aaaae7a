"""Agent fleet routes against a live agent: tools, recorded tool calls, the live stream,
inference status, unknown and unreachable agents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.acp.client import CallOptions
from core.security.permissions import Role
from core.settings import Settings
from gateway.keys import BUS, HANDOFF, RECORDER
from tests.agents.acp.conftest import SECRET, example_server
from tests.conftest import Gateway, make_settings, start_gateway
from tests.fakes.openai_server import ScriptedOpenAI
from tests.ports import free_port
from tests.waiting import eventually


@pytest.fixture
async def fleet(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[Gateway, Any]]:
    agent = example_server()
    listener = await agent.start("127.0.0.1", 0)
    port = next(iter(listener.sockets)).getsockname()[1]
    configured = make_settings(
        settings.data_dir,
        settings.effective_database_url,
        jwt_secret=SECRET,
        agent_urls={
            "spec-agent": [f"ws://127.0.0.1:{port}"],
            "down-agent": [f"ws://127.0.0.1:{free_port()}"],
        },
        acp_call_timeout_seconds=5,
    )
    client = await start_gateway(configured)
    try:
        yield Gateway(client), agent
    finally:
        await client.close()
        listener.close()
        await listener.wait_closed()


async def test_agent_tools_from_its_card(fleet: tuple[Gateway, Any]) -> None:
    gateway, _ = fleet
    viewer = await gateway.user(Role.VIEWER)
    response = await gateway.client.get("/api/v1/agents/spec-agent/tools", headers=viewer)
    body = await response.json()
    assert response.status == 200, body
    assert (body["agent"], body["version"]) == ("spec-agent", "1.0.0")
    tools = {t["name"]: t for t in body["tools"]}
    assert tools["subtract"]["params_schema"]["required"] == ["minuend", "subtrahend"]
    assert body["backend"] == {"kind": "builtin"}


async def test_unknown_and_unreachable_agents(fleet: tuple[Gateway, Any]) -> None:
    gateway, _ = fleet
    viewer = await gateway.user(Role.VIEWER)
    for path in (
        "/api/v1/agents/nobody/tools",
        "/api/v1/agents/nobody/tool-calls",
        "/api/v1/ws/agents/nobody/tool-calls",
    ):
        response = await gateway.client.get(path, headers=viewer)
        body = await response.json()
        assert (response.status, body["error"]["code"]) == (404, "AURORA-4043"), path
    down = await gateway.client.get("/api/v1/agents/down-agent/tools", headers=viewer)
    body = await down.json()
    assert (down.status, body["error"]["code"]) == (503, "AURORA-5030")
    assert body["error"]["detail"]["agent"] == "down-agent"


async def test_tool_calls_are_recorded_paginated_and_streamed(
    fleet: tuple[Gateway, Any],
) -> None:
    gateway, _ = fleet
    viewer = await gateway.user(Role.VIEWER)
    token = viewer["Authorization"].removeprefix("Bearer ")
    handoff = gateway.app[HANDOFF]
    async with gateway.client.ws_connect(
        f"/api/v1/ws/agents/spec-agent/tool-calls?access_token={token}&investigation_id=INV-1"
    ) as ws:
        for n, investigation in enumerate(["INV-1", "INV-2", "INV-1"]):
            await handoff.call(
                "spec-agent",
                "sleep",
                {"seconds": 0.001 * n, "label": str(n)},
                CallOptions(investigation_id=investigation),
            )
        streamed = [await asyncio.wait_for(ws.receive_json(), 5) for _ in range(2)]
    assert [e["investigation_id"] for e in streamed] == ["INV-1", "INV-1"]
    assert streamed[0]["type"] == "tool_call"
    assert streamed[0]["tool"] == "clock"
    assert streamed[0]["agent"] == "spec-agent"

    await gateway.app[RECORDER].flush()
    await eventually(lambda: gateway.app[RECORDER].written >= 3, what="3 tool calls written")
    page = await (
        await gateway.client.get("/api/v1/agents/spec-agent/tool-calls?limit=2", headers=viewer)
    ).json()
    assert page["total"] == 3
    assert len(page["items"]) == 2
    newest = page["items"][0]
    assert (newest["tool"], newest["arguments"], newest["result_summary"]) == (
        "clock",
        {"seconds": 0.002},
        "slept",
    )
    only = await (
        await gateway.client.get(
            "/api/v1/agents/spec-agent/tool-calls?investigation_id=INV-2", headers=viewer
        )
    ).json()
    assert [i["investigation_id"] for i in only["items"]] == ["INV-2"]
    bad = await gateway.client.get(
        "/api/v1/agents/spec-agent/tool-calls?limit=9999", headers=viewer
    )
    assert (await bad.json())["error"]["code"] == "AURORA-4220"


async def test_slow_stream_client_gets_a_gap_notice(fleet: tuple[Gateway, Any]) -> None:
    gateway, _ = fleet
    viewer = await gateway.user(Role.VIEWER)
    async with gateway.client.ws_connect(
        "/api/v1/ws/agents/spec-agent/tool-calls", headers=viewer
    ) as ws:
        # The stream subscribes before it accepts the socket: nothing published from here is missed.
        for n in range(600):  # the per-client queue holds 256; the publisher never waits
            gateway.app[BUS].publish("agents.tool_call", {"agent": "spec-agent", "n": n})
        first = await asyncio.wait_for(ws.receive_json(), 5)
        rest = [await asyncio.wait_for(ws.receive_json(), 5) for _ in range(256)]
    assert first == {"type": "gap", "dropped": 600 - 256}
    assert [e["n"] for e in rest] == list(range(600 - 256, 600))


async def test_inference_status(tmp_path: Path, settings: Settings) -> None:
    client = await start_gateway(settings)
    try:
        gateway = Gateway(client)
        viewer = await gateway.user(Role.VIEWER)
        body = await (await client.get("/api/v1/inference/status", headers=viewer)).json()
        assert (body["backend"], body["reachable"], body["model"]) == ("none", False, None)
    finally:
        await client.close()
    async with ScriptedOpenAI(models=("qwen-test",)) as fake:
        with_llm = make_settings(
            settings.data_dir,
            settings.effective_database_url,
            llm_base_url=fake.base_url,
            llm_model="qwen-test",
            llm_api_key="sk-secret-123",
        )
        client = await start_gateway(with_llm)
        try:
            gateway = Gateway(client)
            viewer = await gateway.user(Role.VIEWER, "viewer-2")
            response = await client.get("/api/v1/inference/status", headers=viewer)
            body = await response.json()
        finally:
            await client.close()
    assert response.status == 200
    assert (body["backend"], body["reachable"], body["model"], body["model_served"]) == (
        "openai-compatible",
        True,
        "qwen-test",
        True,
    )
    assert body["latency_ms"] >= 0
    assert "sk-secret-123" not in str(body)


async def test_mcp_health(settings: Settings) -> None:
    from tools.mcp_server import run_mcp_server

    port = free_port()
    configured = make_settings(settings.data_dir, settings.effective_database_url, mcp_port=port)
    client = await start_gateway(configured)
    stop = asyncio.Event()
    urls: list[str] = []
    server = asyncio.create_task(run_mcp_server(configured, ready=urls.append, stop=stop))
    try:
        gateway = Gateway(client)
        viewer = await gateway.user(Role.VIEWER)
        await eventually(lambda: urls, what="the MCP server is ready")
        up = await (await client.get("/api/v1/mcp/health", headers=viewer)).json()
        assert (up["status"], up["server_name"], up["url"]) == (
            "ok",
            "aurorasoc-tools",
            f"http://127.0.0.1:{port}/mcp",
        )
        assert "extract_indicators" in up["tools"]
        assert up["latency_ms"] > 0
        stop.set()
        await asyncio.wait_for(server, 10)
        down = await (await client.get("/api/v1/mcp/health", headers=viewer)).json()
        assert down["status"] == "down"
        assert down["tools"] == []
    finally:
        stop.set()
        await client.close()
