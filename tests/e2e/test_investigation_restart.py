"""Investigations and playbooks through real processes: ``aurora up`` killed with SIGKILL in the
middle of an investigation and of a playbook execution, and started again (both resume, from
their checkpoint and their step log, and no action runs twice; its agents did not outlive it,
the admin is kept, and Ctrl-C stops the second), and a specialist killed before an
investigation (it completes degraded)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import time
import urllib.request
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from agents.catalog import SPECIALISTS
from core.security.permissions import Role
from core.settings import Settings
from tests.agents.threat_intel.test_threat_intel import FEED
from tests.conftest import Gateway, make_settings, start_gateway
from tests.e2e.aurora import Platform, http, login, no_agent_left
from tests.e2e.test_agents import AgentProcess
from tests.orchestrator.test_graph import SUBJECT
from tests.ports import free_port
from tests.waiting import until

HOST = "ws-e2e-17.corp.example"
PLAYBOOK = {
    "id": "e2e-contain",
    "name": "Tag, isolate behind a human, notify",
    "inputs": {"alert_id": {"type": "string", "required": True}},
    "steps": [
        {"id": "alert", "uses": "alert.get", "with": {"alert_id": "${{ inputs.alert_id }}"}},
        {
            "id": "tag",
            "uses": "alert.tag",
            "with": {"alert_id": "${{ inputs.alert_id }}", "tags": ["contained"]},
        },
        {
            "id": "isolate",
            "uses": "edr.isolate",
            "foreach": "steps.alert.output.entities[?type=='host'].value",
            "with": {"host": "${{ item }}", "reason": "e2e"},
        },
        {"id": "notify", "uses": "notify", "with": {"message": "${{ steps.isolate.status }}"}},
    ],
}
ADMIN = "chief"
PASSWORD = "e2e-restart-admin-password-0123"
REQUEST = {k: SUBJECT[k] for k in ("iocs", "text", "command_lines")}


def wait_status(url: str, token: str, investigation_id: str, wanted: set[str]) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status, body = http("GET", f"{url}/api/v1/investigations/{investigation_id}", token=token)
        assert status == 200, body
        return body if body["status"] in wanted else None

    found = until(reached, within=120, interval=0.2, what=f"{investigation_id} in {wanted}")
    assert found is not None
    return found


def ingest(url: str, token: str, events: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v1/siem/logs/ingest?source=e2e",
        data="\n".join(json.dumps(e) for e in events).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["accepted"] == len(events)


def log_host(url: str, token: str) -> None:
    """An event of :data:`HOST`, which the endpoint inventory picks up at its next refresh."""
    event = {"@timestamp": time.time(), "host": {"name": HOST}, "message": "whoami /all"}
    ingest(url, token, [event])


def start_playbook(url: str, token: str) -> str:
    """A playbook execution on an alert naming a host the logs know (:func:`log_host`), left
    waiting for a human to approve its isolation (its tag already done)."""
    until(
        lambda: http("GET", f"{url}/api/v1/edr/endpoints?search={HOST}", token=token)[1]["total"],
        within=60,
        interval=0.5,
        what="the host in the endpoint inventory",
    )
    status, created = http("POST", f"{url}/api/v1/soar/playbooks", PLAYBOOK, token)
    assert status == 201, created
    alert = {"title": "e2e", "source": "edr", "entities": [{"type": "host", "value": HOST}]}
    status, posted = http("POST", f"{url}/api/v1/alerts", alert, token)
    assert status == 201, posted
    inputs = {"inputs": {"alert_id": posted["id"]}}
    status, accepted = http(
        "POST", f"{url}/api/v1/soar/playbooks/e2e-contain/execute", inputs, token
    )
    assert status == 202, accepted
    wait_execution(url, token, accepted["id"], {"awaiting_approval"})
    return str(accepted["id"])


def wait_execution(url: str, token: str, execution_id: str, wanted: set[str]) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status, page = http("GET", f"{url}/api/v1/soar/executions?limit=200", token=token)
        assert status == 200, page
        found = [e for e in page["items"] if e["id"] == execution_id]
        return found[0] if found and found[0]["status"] in wanted else None

    found = until(reached, within=120, interval=0.2, what=f"{execution_id} in {wanted}")
    assert found is not None
    return found


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
    env: dict[str, str], platforms: list[Platform], tmp_path: Path
) -> None:
    policy = tmp_path / "guardrails.yaml"
    policy.write_text("actions:\n  block_ip:\n    decision: require_approval\n")
    # the feed lists the address: the URL on it is contained without a human
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps(FEED))
    env = {
        **env,
        "AURORA_ADMIN_USERNAME": ADMIN,
        "AURORA_ADMIN_PASSWORD": PASSWORD,
        "AURORA_GUARDRAILS_FILE": str(policy),
        "AURORA_INTEL_FEEDS": json.dumps([str(feed)]),
        # the endpoint inventory picks up the host the playbook isolates within seconds
        "AURORA_EDR_REFRESH_SECONDS": "5",
    }
    first = Platform(env, "up")
    platforms.append(first)
    # The admin the environment names, with the password it gives (none generated).
    assert f"Created admin '{ADMIN}' from AURORA_ADMIN_PASSWORD\n" in first.lines
    assert first.password() is None
    token = login(first.url, ADMIN, PASSWORD)
    status, _ = http("PATCH", f"{first.url}/api/v1/settings/runtime", {"mode": "active"}, token)
    assert status == 200
    log_host(first.url, token)  # the inventory's refresh comes while the investigation runs
    status, accepted = http("POST", f"{first.url}/api/v1/agents/investigate", REQUEST, token)
    assert status == 202, accepted
    investigation_id = accepted["id"]
    paused = wait_status(first.url, token, investigation_id, {"awaiting_approval", "failed"})
    assert paused["status"] == "awaiting_approval"
    execution_id = start_playbook(first.url, token)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # no clean shutdown at all
    killed_at = time.time()
    # Its agents end with it, though it could not stop them.
    for offset in range(len(SPECIALISTS)):
        no_agent_left(int(env["AURORA_AGENT_BASE_PORT"]) + offset)

    # The admin exists: the environment's password is not applied to it.
    second = Platform({**env, "AURORA_ADMIN_PASSWORD": "ignored: the admin exists"}, "up")
    platforms.append(second)
    assert not [line for line in second.lines if "Created admin" in line]
    refused, _ = http(
        "POST",
        f"{second.url}/api/v1/auth/token",
        {"username": ADMIN, "password": "ignored: the admin exists"},
    )
    assert refused == 401
    token = login(second.url, ADMIN, PASSWORD)
    decided = await approve(second.url, token, f"{investigation_id}/A1")
    assert decided["type"] == "decided", decided
    decided = await approve(second.url, token, f"{execution_id}/isolate#0")
    assert decided["type"] == "decided", decided
    done = wait_status(second.url, token, investigation_id, {"completed", "failed"})
    executed = wait_execution(second.url, token, execution_id, {"completed", "failed"})
    second.wait_for(f"All {len(SPECIALISTS)} agents are ready")  # each has something to stop
    # A terminal's Ctrl-C signals the whole foreground process group.
    os.killpg(second.process.pid, signal.SIGINT)
    assert second.stop(None) == 0
    for name in SPECIALISTS:
        assert any(f"[{name}]" in line and "shutting down" in line for line in second.lines)
    assert not second.crash_reports()
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
        playbook_rows = db.execute(
            "SELECT key, action, status FROM response_actions WHERE investigation_id = ?",
            (execution_id,),
        ).fetchall()
        isolations = db.execute(
            "SELECT status FROM edr_actions WHERE action = 'isolate'"
        ).fetchall()
    assert sorted(rows) == [
        (f"{investigation_id}/A1", "executed"),
        (f"{investigation_id}/A2", "executed"),
    ]
    # The playbook went on from its log: the tag done before the kill was not done again, the
    # isolation a human approved after the restart ran once.
    assert executed["status"] == "completed", executed
    assert executed["attempts"] == 2
    log = {
        s["step_id"] + ("" if s["item"] is None else f"#{s['item']}"): s for s in executed["steps"]
    }
    assert datetime.fromisoformat(log["tag"]["finished_at"]).timestamp() < killed_at
    assert datetime.fromisoformat(log["isolate#0"]["finished_at"]).timestamp() > killed_at
    assert {k: s["status"] for k, s in log.items()} == {
        "alert": "succeeded",
        "tag": "succeeded",
        "isolate#0": "succeeded",
        "notify": "succeeded",
    }
    assert sorted(playbook_rows) == [
        (f"{execution_id}/isolate#0", "isolate_host", "executed"),
        (f"{execution_id}/notify", "notify", "executed"),
        (f"{execution_id}/tag", "alert.tag", "executed"),
    ]
    assert len(isolations) == 1


SECRET = "e2e-degraded-secret-e2e-degraded-secret-0123456789"


@pytest.fixture
async def fleet_processes(env: dict[str, str]) -> AsyncIterator[dict[str, AgentProcess]]:
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
