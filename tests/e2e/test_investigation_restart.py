"""Investigations through real processes: ``aurora up`` killed with SIGKILL in the middle of an
investigation and started again (it resumes from its checkpoint, and no action runs twice), and
a specialist killed before an investigation (it completes degraded)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from core.security.permissions import Role
from core.settings import Settings
from tests.agents.threat_intel.test_threat_intel import FEED
from tests.conftest import Gateway, make_settings, start_gateway
from tests.e2e.test_agents import AgentProcess
from tests.e2e.test_cli import Platform, env, http, platforms, start, stop  # noqa: F401
from tests.orchestrator.test_graph import SUBJECT
from tests.ports import free_port

PASSWORD = "e2e-restart-admin-password-0123"
REQUEST = {k: SUBJECT[k] for k in ("iocs", "text", "command_lines")}


def wait_status(url: str, token: str, investigation_id: str, wanted: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body = http("GET", f"{url}/api/v1/investigations/{investigation_id}", token=token)
        assert status == 200, body
        if body["status"] in wanted:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{investigation_id} stayed {body['status']}")


def login(url: str) -> str:
    status, body = http(
        "POST", f"{url}/api/v1/auth/token", {"username": "admin", "password": PASSWORD}
    )
    assert status == 200, body
    return str(body["access_token"])


async def approve(url: str, token: str, approval_id: str) -> dict[str, Any]:
    ws_url = url.replace("http://", "ws://") + f"/api/v1/ws/approvals?access_token={token}"
    async with connect(ws_url) as ws:
        pending = json.loads(await ws.recv())
        assert approval_id in [a["approval_id"] for a in pending["approvals"]]
        decision = {"type": "decide", "approval_id": approval_id, "decision": "approve"}
        await ws.send(json.dumps(decision))
        while True:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if reply["type"] in {"decided", "error"}:
                return dict(reply)


async def test_sigkill_during_an_investigation_then_restart(
    env: dict[str, str],  # noqa: F811
    platforms: list[Platform],  # noqa: F811
    tmp_path: Path,
) -> None:
    policy = tmp_path / "guardrails.yaml"
    policy.write_text("actions:\n  block_ip:\n    decision: require_approval\n")
    # the feed lists the address: the URL on it is contained without a human
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps(FEED))
    env = {
        **env,
        "AURORA_ADMIN_PASSWORD": PASSWORD,
        "AURORA_GUARDRAILS_FILE": str(policy),
        "AURORA_INTEL_FEEDS": json.dumps([str(feed)]),
    }
    first = start(env, "up")
    platforms.append(first)
    token = login(first.url)
    status, _ = http("PATCH", f"{first.url}/api/v1/settings/runtime", {"mode": "active"}, token)
    assert status == 200
    status, accepted = http("POST", f"{first.url}/api/v1/agents/investigate", REQUEST, token)
    assert status == 202, accepted
    investigation_id = accepted["id"]
    paused = wait_status(first.url, token, investigation_id, {"awaiting_approval", "failed"})
    assert paused["status"] == "awaiting_approval"
    assert stop(first, signal.SIGKILL) == -signal.SIGKILL  # no clean shutdown at all
    killed_at = time.time()

    second = start(env, "up")
    platforms.append(second)
    token = login(second.url)
    decided = await approve(second.url, token, f"{investigation_id}/A1")
    assert decided["type"] == "decided", decided
    done = wait_status(second.url, token, investigation_id, {"completed", "failed"})
    assert stop(second) == 0
    assert done["status"] == "completed", done
    assert done["attempts"] == 2
    receipt = done["receipt"]
    findings = [e for e in receipt["timeline"] if e["event"] == "finding"]
    assert findings
    assert all(e["at"] < killed_at for e in findings)  # from the checkpoint, not run again
    statuses = {a["action"]: a["status"] for a in receipt["actions"]}
    assert statuses == {"block_ip": "executed", "block_url": "executed"}
    with contextlib.closing(sqlite3.connect(Path(env["AURORA_DATA_DIR"]) / "aurora.db")) as db:
        rows = db.execute(
            "SELECT key, status FROM response_actions WHERE investigation_id = ?",
            (investigation_id,),
        ).fetchall()
    assert sorted(rows) == [
        (f"{investigation_id}/A1", "executed"),
        (f"{investigation_id}/A2", "executed"),
    ]


SECRET = "e2e-degraded-secret-e2e-degraded-secret-0123456789"


@pytest.fixture
async def fleet_processes(
    env: dict[str, str],  # noqa: F811
) -> AsyncIterator[dict[str, AgentProcess]]:
    running = {
        name: AgentProcess({**env, "AURORA_JWT_SECRET": SECRET}, name, free_port())
        for name in ("threat_intel", "malware", "network", "responder")
    }
    try:
        await asyncio.gather(*(asyncio.to_thread(agent.start) for agent in running.values()))
        yield running
    finally:
        for agent in running.values():
            if agent.process is not None and agent.process.poll() is None:
                agent.stop(signal.SIGKILL)


async def test_a_killed_specialist_leaves_the_investigation_degraded(
    settings: Settings, fleet_processes: dict[str, AgentProcess]
) -> None:
    configured = make_settings(
        settings.data_dir,
        settings.effective_database_url,
        jwt_secret=SECRET,
        agent_urls={name: [agent.url] for name, agent in fleet_processes.items()},
        acp_call_timeout_seconds=10,
    )
    assert fleet_processes["malware"].stop(signal.SIGKILL) == -signal.SIGKILL
    client = await start_gateway(configured)
    try:
        gateway = Gateway(client)
        analyst = await gateway.user(Role.ANALYST, "ana")
        response = await client.post("/api/v1/agents/investigate", headers=analyst, json=REQUEST)
        investigation_id = (await response.json())["id"]
        for _ in range(300):
            body = await (
                await client.get(f"/api/v1/investigations/{investigation_id}", headers=analyst)
            ).json()
            if body["status"] in {"completed", "failed"}:
                break
            await asyncio.sleep(0.1)
    finally:
        await client.close()
    assert body["status"] == "completed", body
    receipt = body["receipt"]
    assert receipt["degraded"] is True
    assert [f["agent"] for f in receipt["failures"]] == ["malware"]
    assert receipt["failures"][0]["reason"]
    assert {"threat_intel", "network"} <= {f["agent"] for f in receipt["findings"]}
