"""Guardrails and human approvals through the gateway: active mode, WS /ws/approvals (approve,
deny, timeout, cancel, who may decide), the action ledger, and a restart while waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse
from sqlalchemy import select, update

from core.db.base import utcnow
from core.events import Event
from core.security.permissions import Role
from core.settings import Settings
from gateway.investigations.models import Approval, ResponseActionRecord
from gateway.keys import BUS, DATABASE
from tests.agents.acp.conftest import SECRET
from tests.conftest import Gateway, make_settings, start_gateway
from tests.gateway.investigations.test_investigations import wait_done
from tests.orchestrator.test_graph import SUBJECT, attack, fleet  # noqa: F401 - fixtures

POLICY = "actions:\n  block_ip:\n    decision: require_approval\n"
REQUEST = {k: SUBJECT[k] for k in ("iocs", "text", "command_lines")}


def active_settings(settings: Settings, fleet: dict[str, Any], tmp_path: Path) -> Settings:  # noqa: F811
    policy = tmp_path / "guardrails.yaml"
    policy.write_text(POLICY)
    return make_settings(
        settings.data_dir,
        settings.effective_database_url,
        jwt_secret=SECRET,
        agent_urls={name: [url] for name, (_, _, url) in fleet.items()},
        acp_call_timeout_seconds=20,
        guardrails_file=policy,
    )


async def go_active(gateway: Gateway, **knobs: Any) -> None:
    admin = await gateway.user(Role.ADMIN, "root")
    response = await gateway.client.patch(
        "/api/v1/settings/runtime", headers=admin, json={"mode": "active", **knobs}
    )
    assert response.status == 200, await response.json()


@pytest.fixture
async def platform(
    settings: Settings,
    fleet: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[Gateway]:
    client = await start_gateway(active_settings(settings, fleet, tmp_path))
    try:
        gateway = Gateway(client)
        await go_active(gateway)
        yield gateway
    finally:
        await client.close()


def token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def approvals_ws(gateway: Gateway, headers: dict[str, str]) -> Any:
    return gateway.client.ws_connect(f"/api/v1/ws/approvals?access_token={token(headers)}")


async def decide(
    ws: ClientWebSocketResponse, approval_id: str, decision: str, **extra: Any
) -> None:
    await ws.send_json(
        {"type": "decide", "approval_id": approval_id, "decision": decision, **extra}
    )


async def next_of(ws: ClientWebSocketResponse, kind: str, within: float = 20) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            message = await ws.receive_json()
            if message["type"] == kind:
                return message


async def dispatch(gateway: Gateway, headers: dict[str, str]) -> str:
    response = await gateway.client.post(
        "/api/v1/agents/investigate", headers=headers, json=REQUEST
    )
    assert response.status == 202
    return str((await response.json())["id"])


async def status_of(gateway: Gateway, headers: dict[str, str], investigation_id: str) -> str:
    body = await (
        await gateway.client.get(f"/api/v1/investigations/{investigation_id}", headers=headers)
    ).json()
    return str(body["status"])


async def ledger(gateway: Gateway) -> list[ResponseActionRecord]:
    async with gateway.app[DATABASE].session() as db:
        return list(
            await db.scalars(select(ResponseActionRecord).order_by(ResponseActionRecord.key))
        )


async def test_a_responder_approves_and_the_action_runs_once(platform: Gateway) -> None:
    analyst = await platform.user(Role.ANALYST, "ana")
    responder = await platform.user(Role.RESPONDER, "rita")
    feed = platform.app[BUS].subscribe("response.actions")
    async with (
        approvals_ws(platform, responder) as rita,
        approvals_ws(platform, analyst) as ana,
    ):
        assert (await rita.receive_json()) == {"type": "pending", "approvals": []}
        assert (await ana.receive_json())["type"] == "pending"
        investigation_id = await dispatch(platform, analyst)
        asked = await next_of(rita, "approval_requested")
        assert asked["investigation_id"] == investigation_id
        assert (asked["action"], asked["target"]) == ("block_ip", "45.33.32.156")
        assert asked["guardrail"]["decision"] == "require_approval"
        assert asked["status"] == "pending"
        assert await status_of(platform, analyst, investigation_id) == "awaiting_approval"
        # an analyst may watch, not decide
        await ana.send_json(
            {"type": "decide", "approval_id": asked["approval_id"], "decision": "approve"}
        )
        refused = await next_of(ana, "error")
        assert refused["error"]["code"] == "AURORA-4030"
        assert refused["approval_id"] == asked["approval_id"]
        await rita.send_json(
            {
                "type": "decide",
                "approval_id": asked["approval_id"],
                "decision": "approve",
                "comment": "known C2",
            }
        )
        decided = await next_of(rita, "decided")
        assert decided["approval"]["status"] == "approved"
        assert decided["approval"]["decided_by"] == "rita"
        done = await wait_done(platform, analyst, investigation_id)
        # a second decision on the same approval conflicts
        await rita.send_json(
            {"type": "decide", "approval_id": asked["approval_id"], "decision": "deny"}
        )
        assert (await next_of(rita, "error"))["error"]["code"] == "AURORA-4090"
    executed = [event.payload for event in feed.drain()]  # what reached the integrations
    feed.close()
    assert done["status"] == "completed"
    actions = {a["action"]: a for a in done["receipt"]["actions"]}
    assert actions["block_ip"]["status"] == "executed"
    assert actions["block_ip"]["approval"] == {
        "decision": "approved",
        "by": "rita",
        "at": actions["block_ip"]["approval"]["at"],
        "comment": "known C2",
    }
    assert actions["block_url"]["status"] == "executed"
    assert sorted(e["action"] for e in executed) == ["block_ip", "block_url"]
    rows = await ledger(platform)
    assert [(r.action, r.status, r.approved_by) for r in rows] == [
        ("block_ip", "executed", "rita"),
        ("block_url", "executed", None),
    ]


async def test_a_denial_is_aurora_4031_and_nothing_runs(platform: Gateway) -> None:
    analyst = await platform.user(Role.ANALYST, "ana")
    admin = await platform.user(Role.ADMIN, "boss")
    async with platform.client.ws_connect(
        f"/api/v1/ws/approvals?access_token={token(admin)}"
    ) as ws:
        investigation_id = await dispatch(platform, analyst)
        asked = await next_of(ws, "approval_requested")
        await ws.send_json(
            {"type": "decide", "approval_id": asked["approval_id"], "decision": "deny"}
        )
        assert (await next_of(ws, "decided"))["approval"]["status"] == "denied"
        pushed = await next_of(ws, "approval_decided")
        assert (pushed["approval_id"], pushed["status"]) == (asked["approval_id"], "denied")
    done = await wait_done(platform, analyst, investigation_id)
    blocked = next(a for a in done["receipt"]["actions"] if a["action"] == "block_ip")
    assert blocked["status"] == "denied"
    assert blocked["error"]["code"] == "AURORA-4031"
    assert blocked["approval"]["by"] == "boss"
    assert [r.action for r in await ledger(platform)] == ["block_url"]


async def test_no_decision_in_time_is_aurora_4080_fail_closed(platform: Gateway) -> None:
    admin = await platform.user(Role.ADMIN, "boss")
    response = await platform.client.patch(
        "/api/v1/settings/runtime", headers=admin, json={"approval_timeout_seconds": 10}
    )
    assert response.status == 200
    async with platform.client.ws_connect(
        f"/api/v1/ws/approvals?access_token={token(admin)}"
    ) as ws:
        investigation_id = await dispatch(platform, admin)
        asked = await next_of(ws, "approval_requested")
        # Its deadline is moved into the past rather than waited for: the runner's expiry loop
        # (every second, on the real clock) finds it due.
        async with platform.app[DATABASE].session() as db:
            await db.execute(
                update(Approval)
                .where(Approval.id == asked["approval_id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            await db.commit()
        expired = await next_of(ws, "approval_decided", within=30)
        assert (expired["approval_id"], expired["status"]) == (asked["approval_id"], "expired")
        await ws.send_json(
            {"type": "decide", "approval_id": asked["approval_id"], "decision": "approve"}
        )
        late = await next_of(ws, "error")
        assert late["error"]["code"] == "AURORA-4080"
    done = await wait_done(platform, admin, investigation_id)
    blocked = next(a for a in done["receipt"]["actions"] if a["action"] == "block_ip")
    assert (blocked["status"], blocked["error"]["code"]) == ("expired", "AURORA-4080")
    assert "execution" not in blocked
    assert [r.action for r in await ledger(platform)] == ["block_url"]


async def test_cancel_while_waiting_and_bad_messages(platform: Gateway) -> None:
    analyst = await platform.user(Role.ANALYST, "ana")
    viewer = await platform.user(Role.VIEWER, "vic")
    async with (
        approvals_ws(platform, analyst) as ws,
        approvals_ws(platform, viewer) as watcher,
    ):
        await ws.receive_json()
        await watcher.receive_json()
        investigation_id = await dispatch(platform, analyst)
        asked = await next_of(ws, "approval_requested")
        for bad, code in (
            ("not json", "AURORA-4220"),
            ({"type": "decide", "approval_id": asked["approval_id"]}, "AURORA-4220"),
            ({"type": "launch", "target": "x"}, "AURORA-4220"),
            (
                {
                    "type": "decide",
                    "approval_id": "INV-1999-00001/A1",
                    "decision": "approve",
                    "x": 1,
                },
                "AURORA-4220",
            ),
        ):
            if isinstance(bad, str):
                await ws.send_str(bad)
            else:
                await ws.send_json(bad)
            assert (await next_of(ws, "error"))["error"]["code"] == code, bad
        await watcher.send_json({"type": "cancel", "investigation_id": investigation_id})
        assert (await next_of(watcher, "error"))["error"]["code"] == "AURORA-4030"
        await ws.send_json({"type": "cancel", "investigation_id": investigation_id})
        assert (await next_of(ws, "cancelled"))["investigation_id"] == investigation_id
        withdrawn = await next_of(watcher, "approval_decided")
        assert withdrawn["status"] == "cancelled"
        await ws.send_json({"type": "cancel", "investigation_id": investigation_id})
        assert (await next_of(ws, "error"))["error"]["code"] == "AURORA-4090"
    done = await wait_done(platform, analyst, investigation_id)
    assert done["status"] == "cancelled"
    assert done["error"] == "cancelled by ana"
    assert await ledger(platform) == []


async def test_service_identities_never_approve(platform: Gateway) -> None:
    analyst = await platform.user(Role.ANALYST, "ana")
    service = await platform.user(Role.SERVICE_RESPONDER, "svc")
    async with platform.client.ws_connect(
        f"/api/v1/ws/approvals?access_token={token(service)}"
    ) as ws:
        await ws.receive_json()
        await dispatch(platform, analyst)
        asked = await next_of(ws, "approval_requested")
        await ws.send_json(
            {"type": "decide", "approval_id": asked["approval_id"], "decision": "approve"}
        )
        assert (await next_of(ws, "error"))["error"]["code"] == "AURORA-4030"
    async with platform.app[DATABASE].session() as db:
        approval = await db.get(Approval, asked["approval_id"])
    assert approval is not None
    assert approval.status == "pending"


async def test_an_operator_decides_and_a_viewer_may_only_watch(platform: Gateway) -> None:
    """Operators run the platform's mode, which makes actions real: they decide approvals too
    (``system:write``), as responders do (``soar:write``); a viewer only watches."""
    analyst = await platform.user(Role.ANALYST, "ana")
    operator = await platform.user(Role.OPERATOR, "otto")
    viewer = await platform.user(Role.VIEWER, "vera")
    async with approvals_ws(platform, operator) as otto, approvals_ws(platform, viewer) as vera:
        await otto.receive_json()
        await vera.receive_json()
        investigation_id = await dispatch(platform, analyst)
        asked = await next_of(otto, "approval_requested")
        await vera.send_json(
            {"type": "decide", "approval_id": asked["approval_id"], "decision": "approve"}
        )
        refused = await next_of(vera, "error")
        assert refused["error"]["code"] == "AURORA-4030"
        assert refused["error"]["detail"]["required"] == "soar:write or system:write"
        await otto.send_json(
            {
                "type": "decide",
                "approval_id": asked["approval_id"],
                "decision": "deny",
                "comment": "not on a Friday",
            }
        )
        decided = await next_of(otto, "decided")
    assert decided["approval"]["status"] == "denied"
    assert decided["approval"]["decided_by"] == "otto"
    done = await wait_done(platform, analyst, investigation_id)
    actions = {a["action"]: a for a in done["receipt"]["actions"]}
    assert actions["block_ip"]["status"] == "denied"
    assert actions["block_ip"]["approval"]["comment"] == "not on a Friday"
    assert "block_ip" not in {r.action for r in await ledger(platform) if r.status == "executed"}


async def test_a_restart_while_waiting_resumes_from_the_checkpoint(
    settings: Settings,
    fleet: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    configured = active_settings(settings, fleet, tmp_path)
    first = await start_gateway(configured)
    gateway = Gateway(first)
    await go_active(gateway)
    analyst = await gateway.user(Role.ANALYST, "ana")
    await gateway.create_user("rita", Role.RESPONDER)
    async with first.ws_connect(f"/api/v1/ws/approvals?access_token={token(analyst)}") as ws:
        investigation_id = await dispatch(gateway, analyst)
        asked = await next_of(ws, "approval_requested")
    await first.close()
    restarted_at = time.time()
    second = await start_gateway(configured)
    try:
        again = Gateway(second)
        rita = await again.login("rita")
        async with second.ws_connect(f"/api/v1/ws/approvals?access_token={token(rita)}") as ws:
            pending = await ws.receive_json()
            assert [a["approval_id"] for a in pending["approvals"]] == [asked["approval_id"]]
            await ws.send_json(
                {"type": "decide", "approval_id": asked["approval_id"], "decision": "approve"}
            )
            await next_of(ws, "decided")
        done = await wait_done(again, rita, investigation_id)
        rows = await ledger(again)
    finally:
        await second.close()
    assert done["status"] == "completed"
    timeline = done["receipt"]["timeline"]
    # the specialists' work before the restart came from the checkpoint, not a second run
    findings = [e for e in timeline if e["event"] == "finding"]
    assert findings
    assert all(e["at"] < restarted_at for e in findings)
    assert [e["event"] for e in timeline].count("intake") == 1
    assert done["attempts"] == 2
    assert [(r.action, r.status) for r in rows] == [
        ("block_ip", "executed"),
        ("block_url", "executed"),
    ]


async def test_a_crash_while_executing_never_runs_an_action_twice(
    settings: Settings,
    fleet: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    configured = active_settings(settings, fleet, tmp_path)
    (tmp_path / "guardrails.yaml").write_text("{}")  # everything allowed: straight to execution
    first = await start_gateway(configured)
    gateway = Gateway(first)
    await go_active(gateway)
    analyst = await gateway.user(Role.ANALYST, "ana")
    feed = gateway.app[BUS].subscribe("response.actions")
    investigation_id = await dispatch(gateway, analyst)
    first_action = await asyncio.wait_for(feed.get(), 30)
    assert isinstance(first_action, Event)
    await first.close()  # the gateway goes down in the middle of the execute step
    published = [first_action.payload["key"], *(e.payload["key"] for e in feed.drain())]
    feed.close()
    second = await start_gateway(configured)
    try:
        again = Gateway(second)
        feed = again.app[BUS].subscribe("response.actions")
        headers = await again.login("ana")
        done = await wait_done(again, headers, investigation_id)
        published += [e.payload["key"] for e in feed.drain()]
        feed.close()
        rows = await ledger(again)
    finally:
        await second.close()
    assert done["status"] == "completed"
    keys = [a["key"] for a in done["receipt"]["actions"]]
    assert sorted(published) == sorted(set(published))  # never twice
    assert set(published) <= set(keys)
    assert [r.key for r in rows] == sorted(keys)
    statuses = {a["key"]: a["status"] for a in done["receipt"]["actions"]}
    for key in published:
        assert statuses[key] in {"executed", "unknown"}
