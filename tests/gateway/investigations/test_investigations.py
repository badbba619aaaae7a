"""Investigations end to end: the durable queue, the graph over real specialists, receipts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import update

from core.security.permissions import Role
from core.settings import Settings
from gateway.investigations.models import Investigation
from gateway.keys import DATABASE
from tests.agents.acp.conftest import SECRET
from tests.conftest import Gateway, make_settings, start_gateway
from tests.orchestrator.test_graph import SUBJECT, attack, fleet  # noqa: F401 - fixtures


def configured(settings: Settings, fleet: dict[str, Any]) -> Settings:  # noqa: F811
    return make_settings(
        settings.data_dir,
        settings.effective_database_url,
        jwt_secret=SECRET,
        agent_urls={name: [url] for name, (_, _, url) in fleet.items()},
        acp_call_timeout_seconds=20,
    )


@pytest.fixture
async def platform(settings: Settings, fleet: dict[str, Any]) -> AsyncIterator[Gateway]:  # noqa: F811
    client = await start_gateway(configured(settings, fleet))
    try:
        yield Gateway(client)
    finally:
        await client.close()


async def wait_done(gateway: Gateway, headers: dict[str, str], investigation_id: str) -> Any:
    for _ in range(200):
        body = await (
            await gateway.client.get(f"/api/v1/investigations/{investigation_id}", headers=headers)
        ).json()
        if body["status"] in {"completed", "failed", "cancelled"}:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{investigation_id} did not finish: {body['status']}")


async def test_investigate_indicators_and_text(platform: Gateway) -> None:
    analyst = await platform.user(Role.ANALYST, "ana")
    token = analyst["Authorization"].removeprefix("Bearer ")
    async with platform.client.ws_connect(
        f"/api/v1/ws/investigation-receipts?access_token={token}"
    ) as ws:
        response = await platform.client.post(
            "/api/v1/agents/investigate",
            headers=analyst,
            json={**{k: SUBJECT[k] for k in ("iocs", "text", "command_lines")}, "priority": "high"},
        )
        accepted = await response.json()
        assert response.status == 202, accepted
        assert accepted["status"] == "queued"
        assert response.headers["Location"] == f"/api/v1/investigations/{accepted['id']}"
        done = await wait_done(platform, analyst, accepted["id"])
        pushed = await asyncio.wait_for(ws.receive_json(), 10)
    assert done["status"] == "completed", done
    receipt = done["receipt"]
    assert receipt["verdict"] == "malicious"
    assert receipt["severity"] == "high"
    assert {"threat_intel", "malware", "network"} <= {f["agent"] for f in receipt["findings"]}
    assert "T1059.001" in {t["id"] for t in receipt["techniques"]}
    assert receipt["tool_call_chain"] == receipt["tool_calls"][-1]["chain"]
    assert receipt["latency_ms"] > 0
    assert receipt["timeline"][0]["event"] == "intake"
    assert (pushed["type"], pushed["investigation_id"], pushed["status"]) == (
        "receipt",
        accepted["id"],
        "completed",
    )


async def test_investigate_an_alert_and_list(platform: Gateway) -> None:
    analyst = await platform.user(Role.ANALYST, "ana")
    alert = await (
        await platform.client.post(
            "/api/v1/alerts",
            headers=analyst,
            json={
                "title": "Spearphishing attachment opened",
                "source": "edr",
                "severity": "high",
                "description": "Word spawned PowerShell",
                "entities": [{"type": "ip", "value": "45.33.32.156"}],
            },
        )
    ).json()
    accepted = await (
        await platform.client.post(
            "/api/v1/agents/investigate", headers=analyst, json={"alert_id": alert["id"]}
        )
    ).json()
    done = await wait_done(platform, analyst, accepted["id"])
    assert done["alert_id"] == alert["id"]
    assert done["subject"]["title"] == "Spearphishing attachment opened"
    assert done["subject"]["iocs"] == [{"type": "ip", "value": "45.33.32.156"}]
    assert done["status"] == "completed"
    listed = await (
        await platform.client.get(f"/api/v1/investigations?alert_id={alert['id']}", headers=analyst)
    ).json()
    assert [i["id"] for i in listed["items"]] == [accepted["id"]]
    for body, status, code in (
        ({"alert_id": "ALRT-1999-00001"}, 404, "AURORA-4042"),
        ({"case_id": "CASE-1999-00001"}, 404, "AURORA-4041"),
        ({}, 422, "AURORA-4220"),
        ({"text": "x", "priority": "whenever"}, 422, "AURORA-4220"),
    ):
        response = await platform.client.post(
            "/api/v1/agents/investigate", headers=analyst, json=body
        )
        reply = await response.json()
        assert (response.status, reply["error"]["code"]) == (status, code), body
    total = (await (await platform.client.get("/api/v1/investigations", headers=analyst)).json())[
        "total"
    ]
    assert total == 1
    unknown = await platform.client.get("/api/v1/investigations/INV-1999-00001", headers=analyst)
    assert (await unknown.json())["error"]["code"] == "AURORA-4040"


async def test_a_restarted_gateway_resumes_what_was_running(
    settings: Settings,
    fleet: dict[str, Any],  # noqa: F811
) -> None:
    first = await start_gateway(configured(settings, fleet))
    gateway = Gateway(first)
    analyst = await gateway.user(Role.ANALYST, "ana")
    accepted = await (
        await first.post(
            "/api/v1/agents/investigate", headers=analyst, json={"text": "beacon to 45.33.32.156"}
        )
    ).json()
    await asyncio.sleep(0)  # it may or may not have started: stop the gateway either way
    await first.close()
    async with gateway.app[DATABASE].session() as db:
        # as a crash would leave it
        await db.execute(
            update(Investigation)
            .where(Investigation.id == accepted["id"])
            .values(status="running", receipt=None, finished_at=None)
        )
        await db.commit()
    second = await start_gateway(configured(settings, fleet))
    try:
        again = Gateway(second)
        headers = await again.login("ana")
        done = await wait_done(again, headers, accepted["id"])
    finally:
        await second.close()
    assert done["status"] == "completed"
    assert done["attempts"] >= 1
