"""/orchestrator/dispatch against a live agent, and the dispatch history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.security.permissions import Role
from core.settings import Settings
from gateway.keys import RECORDER
from tests.agents.acp.conftest import SECRET, example_server
from tests.conftest import Gateway, make_settings, start_gateway
from tests.ports import free_port


@pytest.fixture
async def orchestrator(settings: Settings) -> AsyncIterator[Gateway]:
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
    )
    client = await start_gateway(configured)
    try:
        yield Gateway(client)
    finally:
        await client.close()
        listener.close()
        await listener.wait_closed()


async def call(gateway: Gateway, headers: dict[str, str], **body: Any) -> Any:
    response = await gateway.client.post(
        "/api/v1/orchestrator/dispatch", json=body, headers=headers
    )
    return response.status, await response.json()


async def test_dispatch_and_history(orchestrator: Gateway) -> None:
    gateway = orchestrator
    analyst = await gateway.user(Role.ANALYST, "ana")
    status, ok = await call(
        gateway,
        analyst,
        agent="spec-agent",
        method="sleep",
        params={"seconds": 0.01, "label": "x"},
        investigation_id="INV-9",
    )
    assert status == 200, ok
    assert ok["status"] == "ok"
    assert ok["result"]["label"] == "x"
    assert ok["result"]["meta"]["investigation_id"] == "INV-9"
    assert ok["result"]["meta"]["sender"] == "gateway"
    assert ok["duration_ms"] > 0

    failures = [
        ({"agent": "nobody", "method": "agent.card"}, 404, "AURORA-4043"),
        ({"agent": "spec-agent", "method": "no_such"}, 404, "AURORA-4040"),
        (
            {"agent": "spec-agent", "method": "subtract", "params": {"minuend": "x"}},
            422,
            "AURORA-4220",
        ),
        (
            {"agent": "spec-agent", "method": "fail", "params": {"kind": "aurora"}},
            404,
            "AURORA-4042",
        ),
        (  # never up: waited for as one starting, until the deadline
            {"agent": "down-agent", "method": "agent.health", "timeout_seconds": 0.5},
            503,
            "AURORA-5030",
        ),
        (
            {
                "agent": "spec-agent",
                "method": "sleep",
                "params": {"seconds": 5},
                "timeout_seconds": 0.2,
            },
            503,
            "AURORA-5030",
        ),
    ]
    for body, code, aurora in failures:
        status, reply = await call(gateway, analyst, **body)
        assert (status, reply["error"]["code"]) == (code, aurora), body
    status, invalid = await call(
        gateway, analyst, agent="spec-agent", method="subtract", params={"minuend": "x"}
    )
    assert ["body", "params", "minuend"] in [d["loc"] for d in invalid["error"]["detail"]]

    page = await (
        await gateway.client.get("/api/v1/orchestrator/history?limit=3", headers=analyst)
    ).json()
    assert page["total"] == 8
    assert len(page["items"]) == 3
    errors = await (
        await gateway.client.get("/api/v1/orchestrator/history?status=error", headers=analyst)
    ).json()
    assert errors["total"] == 7
    assert {e["error"]["code"] for e in errors["items"]} >= {"AURORA-4043", "AURORA-5030"}
    mine = await (
        await gateway.client.get(
            "/api/v1/orchestrator/history?investigation_id=INV-9", headers=analyst
        )
    ).json()
    assert [d["id"] for d in mine["items"]] == [ok["id"]]

    # the agent's tool calls for that dispatch were recorded too
    await gateway.app[RECORDER].flush()
    calls = await (
        await gateway.client.get(
            "/api/v1/agents/spec-agent/tool-calls?investigation_id=INV-9", headers=analyst
        )
    ).json()
    assert calls["total"] == 1

    viewer = await gateway.user(Role.VIEWER)
    status, denied = await call(gateway, viewer, agent="spec-agent", method="agent.health")
    assert (status, denied["error"]["code"]) == (403, "AURORA-4030")
    bad = await gateway.client.get("/api/v1/orchestrator/history?status=maybe", headers=viewer)
    assert bad.status == 422


async def test_agent_thought_stream(orchestrator: Gateway) -> None:
    import asyncio

    gateway = orchestrator
    analyst = await gateway.user(Role.ANALYST, "ana")
    token = analyst["Authorization"].removeprefix("Bearer ")
    async with gateway.client.ws_connect(
        f"/api/v1/ws/agent-thoughts?access_token={token}&investigation_id=INV-2"
    ) as ws:
        # The stream subscribes before it accepts the socket: nothing published from here is missed.
        for investigation in ("INV-1", "INV-2"):
            status, _ = await call(
                gateway,
                analyst,
                agent="spec-agent",
                method="sleep",
                params={"seconds": 0},
                investigation_id=investigation,
            )
            assert status == 200
        thought = await asyncio.wait_for(ws.receive_json(), 5)
    assert (thought["type"], thought["investigation_id"], thought["agent"]) == (
        "thought",
        "INV-2",
        "spec-agent",
    )
    assert thought["step"] == "sleeping"
    refused = await gateway.client.get("/api/v1/ws/agent-thoughts")
    assert refused.status == 401
