"""Investigations end to end: the durable queue, the graph over real specialists, receipts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import update

from core.db import create_database
from core.security.permissions import Role
from core.settings import Settings
from gateway.investigations.models import Investigation
from gateway.keys import RUNNER, SETTINGS
from orchestrator.receipt import verify_receipt_chain
from tests.agents.acp.conftest import SECRET
from tests.conftest import Gateway, make_settings, start_gateway
from tests.orchestrator.test_graph import SUBJECT, attack, fleet  # noqa: F401 - fixtures
from tests.ports import free_port
from tests.waiting import eventually


def configured(settings: Settings, fleet: dict[str, Any]) -> Settings:  # noqa: F811
    return configured_with(settings, fleet)


def configured_with(settings: Settings, fleet: dict[str, Any], **overrides: Any) -> Settings:  # noqa: F811
    return make_settings(
        settings.data_dir,
        settings.effective_database_url,
        jwt_secret=SECRET,
        agent_urls={name: [url] for name, (_, _, url) in fleet.items()},
        acp_call_timeout_seconds=20,
        **overrides,
    )


@pytest.fixture
async def platform(settings: Settings, fleet: dict[str, Any]) -> AsyncIterator[Gateway]:  # noqa: F811
    client = await start_gateway(configured(settings, fleet))
    try:
        yield Gateway(client)
    finally:
        await client.close()


async def wait_done(gateway: Gateway, headers: dict[str, str], investigation_id: str) -> Any:
    async def finished() -> Any:
        body = await (
            await gateway.client.get(f"/api/v1/investigations/{investigation_id}", headers=headers)
        ).json()
        return body if body["status"] in {"completed", "failed", "cancelled"} else None

    return await eventually(finished, within=20, interval=0.05, what=f"{investigation_id} ended")


async def test_investigate_indicators_and_text(platform: Gateway) -> None:
    analyst = await platform.user(Role.ANALYST, "ana")
    token = analyst["Authorization"].removeprefix("Bearer ")
    async with (
        platform.client.ws_connect(f"/api/v1/ws/investigation-receipts?access_token={token}") as ws,
        platform.client.ws_connect(f"/api/v1/ws/agent-thoughts?access_token={token}") as thoughts,
    ):
        response = await platform.client.post(
            "/api/v1/agents/investigate",
            headers=analyst,
            json={**{k: SUBJECT[k] for k in ("iocs", "text", "command_lines")}, "priority": "high"},
        )
        accepted = await response.json()
        assert response.status == 202, accepted
        assert accepted["status"] in {"queued", "running"}  # running: a free slot took it
        assert response.headers["Location"] == f"/api/v1/investigations/{accepted['id']}"
        done = await wait_done(platform, analyst, accepted["id"])
        pushed = await asyncio.wait_for(ws.receive_json(), 10)
        watched: list[Any] = []
        specialists = {"threat_intel", "malware", "network"}
        async with asyncio.timeout(10):  # pushed while it ran: waiting on the socket
            while not specialists <= {
                t["agent"] for t in watched if t.get("investigation_id") == accepted["id"]
            }:
                watched.append(await thoughts.receive_json())
    assert done["status"] == "completed", done
    receipt = done["receipt"]
    assert receipt["verdict"] == "malicious"
    assert receipt["severity"] == "high"
    assert {"threat_intel", "malware", "network"} <= {f["agent"] for f in receipt["findings"]}
    assert "T1059.001" in {t["id"] for t in receipt["techniques"]}
    powershell = next(t for t in receipt["techniques"] if t["id"] == "T1059.001")
    assert "malware" in powershell["agents"]
    assert all(s["summary"] and s["evidence"] for s in powershell["support"])
    assert receipt["tool_call_chain"] == receipt["tool_calls"][-1]["chain"]
    assert verify_receipt_chain(receipt)
    assert receipt["latency_ms"] > 0
    assert receipt["tokens"] == 0  # built-in analysis spends none
    assert receipt["planner"] == {"kind": "builtin"}
    assert receipt["timeline"][0]["event"] == "intake"
    assert {a["status"] for a in receipt["actions"]} <= {"recorded", "denied"}  # dry_run
    assert (pushed["type"], pushed["investigation_id"], pushed["status"]) == (
        "receipt",
        accepted["id"],
        "completed",
    )
    # the thought stream showed each specialist reasoning about this investigation
    mine = [t for t in watched if t.get("investigation_id") == accepted["id"]]
    assert {"threat_intel", "malware", "network"} <= {t["agent"] for t in mine}

    # the receipt's tool calls are exactly those the agents reported to the gateway
    async def recorded_calls() -> list[tuple[str, str, str]] | None:
        recorded: list[tuple[str, str, str]] = []
        for agent in ("threat_intel", "malware", "network", "responder"):
            page = await (
                await platform.client.get(
                    f"/api/v1/agents/{agent}/tool-calls?investigation_id={accepted['id']}"
                    "&limit=500",
                    headers=analyst,
                )
            ).json()
            recorded += [(agent, c["tool"], c["result_summary"]) for c in page["items"]]
        return recorded if len(recorded) >= len(receipt["tool_calls"]) else None

    recorded = await eventually(recorded_calls, interval=0.05, what="the tool calls recorded")
    in_receipt = [(c["agent"], c["tool"], c["summary"]) for c in receipt["tool_calls"]]
    assert sorted(recorded) == sorted(in_receipt)


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


async def requested(client: Any, text: str) -> tuple[Gateway, dict[str, str], Any]:
    """An analyst's investigation of ``text`` asked of ``client``'s gateway: the gateway, the
    analyst's headers and the ``202``'s body."""
    gateway = Gateway(client)
    analyst = await gateway.user(Role.ANALYST, "ana")
    accepted = await (
        await client.post("/api/v1/agents/investigate", headers=analyst, json={"text": text})
    ).json()
    return gateway, analyst, accepted


async def investigated(client: Any) -> tuple[Gateway, dict[str, str], Any]:
    """:func:`requested`, run to its end (the investigation as it ended)."""
    gateway, analyst, accepted = await requested(client, "ping 45.33.32.156")
    return gateway, analyst, await wait_done(gateway, analyst, accepted["id"])


async def test_a_restarted_gateway_resumes_what_was_running(
    settings: Settings,
    fleet: dict[str, Any],  # noqa: F811
) -> None:
    first = await start_gateway(configured(settings, fleet))
    gateway, _, accepted = await requested(first, "beacon to 45.33.32.156")
    await asyncio.sleep(0)  # it may or may not have started: stop the gateway either way
    await first.close()
    database = create_database(gateway.app[SETTINGS].effective_database_url)
    try:
        async with database.session() as db:
            # as a crash would leave it
            await db.execute(
                update(Investigation)
                .where(Investigation.id == accepted["id"])
                .values(status="running", receipt=None, finished_at=None)
            )
            await db.commit()
    finally:
        await database.dispose()
    second = await start_gateway(configured(settings, fleet))
    try:
        again = Gateway(second)
        headers = await again.login("ana")
        done = await wait_done(again, headers, accepted["id"])
    finally:
        await second.close()
    assert done["status"] == "completed"
    assert done["attempts"] >= 1


async def test_the_retention_job_deletes_finished_checkpoints(
    settings: Settings,
    fleet: dict[str, Any],  # noqa: F811
) -> None:
    # Segmented as a model-backed run is (a model that refuses connections): the response
    # plan's checkpoint stays after the run.
    configured = configured_with(
        settings,
        fleet,
        checkpoint_retention_hours=0,
        llm_base_url=f"http://127.0.0.1:{free_port()}/v1",
        llm_model="m",
    )
    client = await start_gateway(configured)
    try:
        gateway, analyst, done = await investigated(client)
        runner = gateway.app[RUNNER]
        graph = runner._graph  # the checkpoints themselves
        config = {"configurable": {"thread_id": done["id"]}}
        assert (await graph.aget_state(config)).values["response"]
        assert await runner.prune_checkpoints() == 1
        assert (await graph.aget_state(config)).values == {}
        assert await runner.prune_checkpoints() == 0  # once only
        again = await (
            await client.get(f"/api/v1/investigations/{done['id']}", headers=analyst)
        ).json()
    finally:
        await client.close()
    assert done["status"] == "completed"
    assert again["receipt"] == done["receipt"]  # the receipt outlives its checkpoints


@pytest.mark.parametrize("model", [False, True], ids=["built-in", "model-backed"])
async def test_the_response_plan_is_checkpointed_when_the_specialists_use_a_model(
    settings: Settings,
    fleet: dict[str, Any],  # noqa: F811
    model: bool,
) -> None:
    # A model that refuses connections: the rules plan (the receipt says so), and the run is
    # segmented as a model-backed one is.
    overrides = (
        {"llm_base_url": f"http://127.0.0.1:{free_port()}/v1", "llm_model": "m"} if model else {}
    )
    client = await start_gateway(configured_with(settings, fleet, **overrides))
    try:
        gateway, _, done = await investigated(client)
        graph = gateway.app[RUNNER]._graph
        config = {"configurable": {"thread_id": done["id"]}}
        pending = [s.next async for s in graph.aget_state_history(config)]
    finally:
        await client.close()
    assert done["status"] == "completed"
    assert done["receipt"]["planner"]["kind"] == "builtin"
    # The plan made, before the gate (model-backed only); never the end: the receipt is the
    # finished run's record, and nothing resumes it.
    assert pending == ([("gate",)] if model else [])


async def test_when_every_specialist_fails_the_investigation_says_so(
    platform: Gateway,
    fleet: dict[str, Any],  # noqa: F811
) -> None:
    for _, listener, _ in fleet.values():
        listener.close()
        await listener.wait_closed()
    analyst = await platform.user(Role.ANALYST, "ana")
    accepted = await (
        await platform.client.post(
            "/api/v1/agents/investigate",
            headers=analyst,
            json={k: SUBJECT[k] for k in ("iocs", "text", "command_lines")},
        )
    ).json()
    done = await wait_done(platform, analyst, accepted["id"])
    assert done["status"] == "failed"
    assert done["error"].startswith("every specialist dispatched failed (")
    receipt = done["receipt"]  # kept: it says what failed
    assert receipt["verdict"] == "inconclusive"
    assert receipt["degraded"] is True
    assert receipt["findings"] == []
    assert {f["agent"] for f in receipt["failures"]} == {"threat_intel", "malware", "network"}
