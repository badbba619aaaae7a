"""What the fleet routes answer is what their route table entries declare; an agent that does
not answer for its card is AURORA-5030."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from core.security.permissions import Role
from core.settings import Settings
from gateway.fleet import service
from gateway.fleet.routes import ROUTES
from gateway.keys import HANDOFF, RECORDER
from tests.agents.acp.conftest import SECRET
from tests.conftest import Gateway, make_settings, start_gateway
from tests.gateway.fleet.test_fleet import fleet  # noqa: F401 - fixture
from tests.gateway.system.test_contracts import conforms


async def test_fleet_routes_answer_as_declared(fleet: tuple[Gateway, Any]) -> None:  # noqa: F811
    gateway, _ = fleet
    viewer = await gateway.user(Role.VIEWER)
    tools = "/api/v1/agents/{agent_id}/tools"
    calls = "/api/v1/agents/{agent_id}/tool-calls"
    await conforms(
        ROUTES,
        "GET",
        tools,
        await gateway.client.get(tools.format(agent_id="spec-agent"), headers=viewer),
    )
    await gateway.app[HANDOFF].call("spec-agent", "sleep", {"seconds": 0, "label": "x"})
    await gateway.app[RECORDER].flush()
    page = await conforms(
        ROUTES,
        "GET",
        calls,
        await gateway.client.get(calls.format(agent_id="spec-agent"), headers=viewer),
    )
    assert (page["total"], page["items"][0]["tool"]) == (1, "clock")
    for path in ("/api/v1/inference/status", "/api/v1/mcp/health"):
        body = await conforms(ROUTES, "GET", path, await gateway.client.get(path, headers=viewer))
    assert body["status"] == "down"  # no MCP server runs here


@pytest.fixture
async def silent_agent() -> AsyncIterator[str]:
    """An agent that accepts the connection and never answers."""

    async def ignore(connection: ServerConnection) -> None:
        async for _ in connection:
            pass

    async with serve(ignore, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def test_an_agent_silent_about_its_card_is_503(
    settings: Settings, silent_agent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "CARD_TIMEOUT_SECONDS", 0.3)
    configured = make_settings(
        settings.data_dir,
        settings.effective_database_url,
        jwt_secret=SECRET,
        agent_urls={"silent": [silent_agent]},
    )
    client = await start_gateway(configured)
    try:
        gateway = Gateway(client)
        viewer = await gateway.user(Role.VIEWER)
        response = await asyncio.wait_for(
            client.get("/api/v1/agents/silent/tools", headers=viewer), 10
        )
        body = await response.json()
    finally:
        await client.close()
    assert (response.status, body["error"]["code"]) == (503, "AURORA-5030"), body
    assert body["error"]["detail"]["agent"] == "silent"
