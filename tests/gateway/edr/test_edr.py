"""EDR through the API: the inventory built from logs in the real chDB store and the lab
connector, the detail (alerts, cases), actions in each mode, approval over /ws/approvals,
denial, idempotency, bad bodies, a connector that refuses, statistics and metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.events import Event
from core.security.permissions import Role
from core.settings import Settings
from gateway.edr.models import EdrActionRecord, Endpoint
from gateway.investigations.models import Approval
from gateway.keys import BUS, DATABASE, EDR, RUNNER
from tests.conftest import Gateway, make_settings, start_gateway
from tools.edr.base import EdrAction
from tools.edr.lab import LabConnector

NOW = datetime.now(UTC).replace(microsecond=0)


def event(host: str, ip: str, minutes_ago: int, message: str) -> dict[str, Any]:
    return {
        "@timestamp": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
        "host": {"name": host, "ip": ip},
        "event": {"category": "process", "action": "process_creation"},
        "message": message,
    }


LOGS = [
    event("WS-042.corp.example", "10.1.2.42", 30, "powershell.exe -enc SQBFAFgA"),
    event("WS-042.corp.example", "10.1.2.42", 5, "cmd.exe /c whoami"),
    event("ws-042", "10.1.2.42", 3, "net user /domain"),
    event("srv-db01", "10.1.9.10", 20, "sqlservr.exe started"),
]


async def ingest(gateway: Gateway, headers: dict[str, str], events: list[dict[str, Any]]) -> None:
    response = await gateway.client.post(
        "/api/v1/siem/logs/ingest",
        headers={**headers, "Content-Type": "application/x-ndjson"},
        params={"source": "edr-test"},
        data="\n".join(json.dumps(e) for e in events).encode(),
    )
    result = await response.json()
    assert response.status == 200, result
    assert result["accepted"] == len(events)


def lab(gateway: Gateway) -> LabConnector:
    connector = gateway.app[EDR].connectors["lab"]
    assert isinstance(connector, LabConnector)
    return connector


async def set_mode(gateway: Gateway, mode: str) -> None:
    admin = await gateway.user(Role.ADMIN)
    response = await gateway.client.patch(
        "/api/v1/settings/runtime", headers=admin, json={"mode": mode}
    )
    assert response.status == 200, await response.json()


async def endpoints(gateway: Gateway, headers: dict[str, str], **query: str) -> dict[str, Any]:
    response = await gateway.client.get("/api/v1/edr/endpoints", headers=headers, params=query)
    body = await response.json()
    assert response.status == 200, body
    return dict(body)


async def endpoint_id(gateway: Gateway, headers: dict[str, str], hostname: str) -> str:
    page = await endpoints(gateway, headers, search=hostname)
    found = [e["id"] for e in page["items"] if e["hostname"] == hostname]
    assert len(found) == 1, page
    return str(found[0])


async def act(
    gateway: Gateway, headers: dict[str, str], ident: str, action: str, **body: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = await gateway.client.post(
        f"/api/v1/edr/endpoints/{ident}/{action}", headers=headers, json=body or None
    )
    return response.status, await response.json(), dict(response.headers)


async def rows(gateway: Gateway) -> list[EdrActionRecord]:
    async with gateway.app[DATABASE].session() as db:
        return list(await db.scalars(select(EdrActionRecord).order_by(EdrActionRecord.id)))


def lab_events(gateway: Gateway, hostname: str, event_name: str) -> int:
    return sum(1 for entry in lab(gateway).audit(hostname) if entry.event == event_name)


@pytest.fixture
async def seeded(gateway: Gateway) -> tuple[Gateway, dict[str, str]]:
    """A gateway whose logs name two hosts, its inventory refreshed; a responder's headers."""
    analyst = await gateway.user(Role.ANALYST, "ana")
    await ingest(gateway, analyst, LOGS)
    await gateway.app[EDR].refresh()
    return gateway, await gateway.user(Role.RESPONDER, "rita")


async def test_inventory_merges_logs_and_the_lab(
    seeded: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, rita = seeded
    page = await endpoints(gateway, rita)
    assert page["total"] == 2
    by_name = {e["hostname"]: e for e in page["items"]}
    assert sorted(by_name) == ["srv-db01", "ws-042"]
    ws = by_name["ws-042"]
    # one endpoint for the FQDN and the short name the logs used, enrolled with the lab
    assert ws["fqdn"] == "ws-042.corp.example"
    assert ws["ips"] == ["10.1.2.42"]
    assert ws["log_events"] == 3
    assert (ws["connector"], ws["native_id"], ws["source"]) == ("lab", "ws-042", "connector")
    assert ws["state"] == "online"
    assert datetime.fromisoformat(ws["logs_last_seen"]) == NOW - timedelta(minutes=3)
    assert datetime.fromisoformat(ws["first_seen"]) <= NOW - timedelta(minutes=30)
    # filters: state, connector, source, search by address, sort, page
    assert (await endpoints(gateway, rita, search="10.1.9"))["total"] == 1
    assert (await endpoints(gateway, rita, state="isolated"))["total"] == 0
    assert (await endpoints(gateway, rita, connector="lab", state="online"))["total"] == 2
    assert (await endpoints(gateway, rita, source="telemetry"))["total"] == 0
    first = await endpoints(gateway, rita, sort="-hostname", limit="1")
    assert [e["hostname"] for e in first["items"]] == ["ws-042"]
    assert first["total"] == 2
    bad = await gateway.client.get(
        "/api/v1/edr/endpoints", headers=rita, params={"state": "asleep"}
    )
    assert (bad.status, (await bad.json())["error"]["code"]) == (422, "AURORA-4220")
    # a second refresh changes nothing (no duplicates, counts not doubled)
    await gateway.app[EDR].refresh()
    again = await endpoints(gateway, rita)
    assert again["total"] == 2
    assert {e["hostname"]: e["log_events"] for e in again["items"]} == {
        "srv-db01": 1,
        "ws-042": 3,
    }


async def test_resolve_by_id_name_fqdn_and_address(seeded: tuple[Gateway, dict[str, str]]) -> None:
    gateway, rita = seeded
    ident = await endpoint_id(gateway, rita, "ws-042")
    service = gateway.app[EDR]
    for target in (ident, "WS-042", "ws-042.corp.example", "10.1.2.42"):
        assert (await service.resolve(target)).id == ident
    for missing in ("ws-043", "10.1.2.43", ""):
        with pytest.raises(Exception, match="AURORA-4040"):
            await service.resolve(missing)


async def test_detail_shows_recent_alerts_and_cases(
    seeded: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, rita = seeded
    analyst = await gateway.user(Role.ANALYST)
    ident = await endpoint_id(gateway, rita, "ws-042")
    made = []
    for title, entities in (
        ("Encoded PowerShell on ws-042", [{"type": "host", "value": "WS-042"}]),
        ("Beacon from 10.1.2.42", [{"type": "ip", "value": "10.1.2.42"}]),
        ("Other host", [{"type": "host", "value": "ws-0420"}]),
    ):
        response = await gateway.client.post(
            "/api/v1/alerts",
            headers=analyst,
            json={"title": title, "source": "test", "entities": entities},
        )
        assert response.status == 201, await response.json()
        made.append((await response.json())["id"])
    promoted = await gateway.client.post(f"/api/v1/alerts/{made[0]}/promote", headers=analyst)
    assert promoted.status == 201, await promoted.json()
    case_id = (await promoted.json())["case_id"]
    response = await gateway.client.get(f"/api/v1/edr/endpoints/{ident}", headers=rita)
    detail = await response.json()
    assert response.status == 200, detail
    assert sorted(a["id"] for a in detail["recent_alerts"]) == sorted(made[:2])
    assert [(c["id"], c["observable"]) for c in detail["cases"]] == [(case_id, "ws-042")]
    assert detail["state"] == "online"
    assert detail["recent_actions"] == []
    missing = await gateway.client.get("/api/v1/edr/endpoints/EP-1999-00001", headers=rita)
    assert (missing.status, (await missing.json())["error"]["code"]) == (404, "AURORA-4040")


async def test_each_mode(seeded: tuple[Gateway, dict[str, str]]) -> None:
    gateway, rita = seeded
    ident = await endpoint_id(gateway, rita, "ws-042")
    # dry_run (the default): recorded, nothing reaches the connector
    status, body, _ = await act(gateway, rita, ident, "isolate", reason="beaconing")
    assert status == 202, body
    assert (body["action"]["status"], body["action"]["mode"]) == ("recorded", "dry_run")
    assert body["action"]["id"].startswith("EDR-")
    assert body["action"]["guardrail"]["outcome"] == "record_only"
    assert body["action"]["reason"] == "beaconing"
    assert lab_events(gateway, "ws-042", "isolate") == 0
    # monitor: proposed, nothing reaches the connector
    await set_mode(gateway, "monitor")
    status, body, _ = await act(gateway, rita, ident, "isolate")
    assert (status, body["action"]["status"]) == (202, "proposed"), body
    assert lab(gateway).state_of("ws-042").value == "online"
    # active: carried out through the lab, the endpoint's state follows
    await set_mode(gateway, "active")
    status, body, _ = await act(gateway, rita, ident, "isolate", comment="IR-1234")
    assert status == 200, body
    assert (body["action"]["status"], body["action"]["connector"]) == ("succeeded", "lab")
    assert body["action"]["native_action_id"].startswith("lab-")
    assert body["endpoint"]["state"] == "isolated"
    assert lab(gateway).state_of("ws-042").value == "isolated"
    assert [e.comment for e in lab(gateway).audit("ws-042") if e.event == "isolate"] == ["IR-1234"]
    status, body, _ = await act(gateway, rita, ident, "unisolate")
    assert (status, body["action"]["status"], body["endpoint"]["state"]) == (
        200,
        "succeeded",
        "online",
    )
    status, body, _ = await act(gateway, rita, ident, "scan")
    assert (status, body["action"]["status"]) == (200, "succeeded")
    assert len(lab(gateway).scans("ws-042")) == 1
    assert [r.status for r in await rows(gateway)] == [
        "recorded",
        "proposed",
        "succeeded",
        "succeeded",
        "succeeded",
    ]
    detail = await (await gateway.client.get(f"/api/v1/edr/endpoints/{ident}", headers=rita)).json()
    assert [a["action"] for a in detail["recent_actions"]][:3] == ["scan", "unisolate", "isolate"]


async def test_an_analyst_may_not_act_and_unknown_endpoints_are_404(
    seeded: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, rita = seeded
    analyst = await gateway.user(Role.ANALYST)
    ident = await endpoint_id(gateway, rita, "ws-042")
    status, body, _ = await act(gateway, analyst, ident, "isolate")
    assert (status, body["error"]["code"]) == (403, "AURORA-4030")
    for action in ("isolate", "unisolate", "scan"):
        status, body, _ = await act(gateway, rita, "EP-2000-99999", action)
        assert (status, body["error"]["code"]) == (404, "AURORA-4040")
    assert await rows(gateway) == []


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "x" * 2001},
        {"reason": ""},
        {"comment": "c" * 1001},
        {"idempotency_key": "has space"},
        {"idempotency_key": "k" * 101},
        {"unexpected": True},
        {"reason": 42},
    ],
)
async def test_bad_bodies_are_422_and_record_nothing(
    seeded: tuple[Gateway, dict[str, str]], body: dict[str, Any]
) -> None:
    gateway, rita = seeded
    ident = await endpoint_id(gateway, rita, "ws-042")
    status, answer, _ = await act(gateway, rita, ident, "isolate", **body)
    assert (status, answer["error"]["code"]) == (422, "AURORA-4220"), answer
    response = await gateway.client.post(
        f"/api/v1/edr/endpoints/{ident}/scan",
        headers={**rita, "Content-Type": "application/json"},
        data=b"{not json",
    )
    assert (response.status, (await response.json())["error"]["code"]) == (422, "AURORA-4220")
    assert await rows(gateway) == []


async def test_idempotency_key_answers_the_same_action(
    seeded: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, rita = seeded
    await set_mode(gateway, "active")
    ident = await endpoint_id(gateway, rita, "ws-042")
    other = await endpoint_id(gateway, rita, "srv-db01")
    first = await act(gateway, rita, ident, "isolate", idempotency_key="ticket-77")
    again = await act(gateway, rita, ident, "isolate", idempotency_key="ticket-77")
    assert (first[0], again[0]) == (200, 200)
    assert first[1]["action"]["id"] == again[1]["action"]["id"]
    assert (first[1]["replayed"], again[1]["replayed"]) == (False, True)
    assert lab_events(gateway, "ws-042", "isolate") == 1
    # the same key for another endpoint is a conflict, not a second action
    status, body, _ = await act(gateway, rita, other, "isolate", idempotency_key="ticket-77")
    assert (status, body["error"]["code"]) == (409, "AURORA-4090")
    assert len(await rows(gateway)) == 1


async def test_a_guardrail_denial_is_403_and_recorded(settings: Settings, tmp_path: Path) -> None:
    policy = tmp_path / "guardrails.yaml"
    policy.write_text("protected_targets: ['srv-db*', '10.1.2.42/32']\n")
    client = await start_gateway(
        make_settings(settings.data_dir, settings.effective_database_url, guardrails_file=policy)
    )
    try:
        gateway = Gateway(client)
        await ingest(gateway, await gateway.user(Role.ANALYST), LOGS)
        await gateway.app[EDR].refresh()
        rita = await gateway.user(Role.RESPONDER)
        await set_mode(gateway, "active")
        # by name, and by address (ws-042's address is protected)
        for host in ("srv-db01", "ws-042"):
            ident = await endpoint_id(gateway, rita, host)
            status, body, _ = await act(gateway, rita, ident, "isolate", idempotency_key=host)
            assert (status, body["error"]["code"]) == (403, "AURORA-4031"), body
            assert body["error"]["detail"]["action"] == "isolate_host"
            assert any("protected" in r for r in body["error"]["detail"]["reasons"])
            again = await act(gateway, rita, ident, "isolate", idempotency_key=host)
            assert again[0] == 403
            # in dry_run, a denial is a denial too
        await set_mode(gateway, "dry_run")
        status, body, _ = await act(gateway, rita, ident, "isolate")
        assert (status, body["error"]["code"]) == (403, "AURORA-4031")
        assert [r.status for r in await rows(gateway)] == ["denied"] * 3
        assert lab_events(gateway, "ws-042", "isolate") == 0
    finally:
        await client.close()


def approvals_ws(gateway: Gateway, headers: dict[str, str]) -> Any:
    token = headers["Authorization"].removeprefix("Bearer ")
    return gateway.client.ws_connect(f"/api/v1/ws/approvals?access_token={token}")


async def next_of(ws: Any, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            message = await ws.receive_json()
            if message["type"] == kind:
                return dict(message)


async def action_event(feed: Any, action_id: str, status: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            item = await feed.get()
            if isinstance(item, Event) and (item.payload["id"], item.payload["status"]) == (
                action_id,
                status,
            ):
                return dict(item.payload)


@pytest.fixture
async def approving(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, dict[str, str]]]:
    """Active mode, isolation needs a human on every asset."""
    policy = tmp_path / "guardrails.yaml"
    policy.write_text("actions:\n  isolate_host:\n    decision: require_approval\n")
    client = await start_gateway(
        make_settings(settings.data_dir, settings.effective_database_url, guardrails_file=policy)
    )
    try:
        gateway = Gateway(client)
        await ingest(gateway, await gateway.user(Role.ANALYST), LOGS)
        await gateway.app[EDR].refresh()
        await set_mode(gateway, "active")
        yield gateway, await gateway.user(Role.RESPONDER, "rita")
    finally:
        await client.close()


async def test_an_approved_isolation_runs_once(approving: tuple[Gateway, dict[str, str]]) -> None:
    gateway, rita = approving
    ident = await endpoint_id(gateway, rita, "ws-042")
    feed = gateway.app[BUS].subscribe("edr.actions")
    async with approvals_ws(gateway, rita) as ws:
        assert (await ws.receive_json())["type"] == "pending"
        status, body, _ = await act(gateway, rita, ident, "isolate", reason="C2 beacon")
        assert (status, body["action"]["status"]) == (202, "awaiting_approval"), body
        action_id = body["action"]["id"]
        asked = await next_of(ws, "approval_requested")
        assert (asked["approval_id"], asked["investigation_id"]) == (action_id, action_id)
        assert (asked["action"], asked["target"]) == ("isolate_host", "ws-042")
        assert asked["guardrail"]["decision"] == "require_approval"
        assert asked["reason"] == "C2 beacon"
        assert lab_events(gateway, "ws-042", "isolate") == 0
        await ws.send_json({"type": "decide", "approval_id": action_id, "decision": "approve"})
        assert (await next_of(ws, "decided"))["approval"]["status"] == "approved"
        done = await action_event(feed, action_id, "succeeded")
        assert done["approved_by"] == "rita"
        # deciding again is refused; settling again (a sweep, a replayed event) acts no more
        await ws.send_json({"type": "decide", "approval_id": action_id, "decision": "approve"})
        assert (await next_of(ws, "error"))["error"]["code"] == "AURORA-4090"
    await gateway.app[EDR].settle(action_id)
    await gateway.app[EDR].sweep()
    assert lab_events(gateway, "ws-042", "isolate") == 1
    assert lab(gateway).state_of("ws-042").value == "isolated"
    endpoint = await (
        await gateway.client.get(f"/api/v1/edr/endpoints/{ident}", headers=rita)
    ).json()
    assert endpoint["state"] == "isolated"
    # release needs no approval
    status, body, _ = await act(gateway, rita, ident, "unisolate")
    assert (status, body["action"]["status"]) == (200, "succeeded")


async def test_a_denied_or_expired_approval_runs_nothing(
    approving: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, rita = approving
    ws042 = await endpoint_id(gateway, rita, "ws-042")
    db01 = await endpoint_id(gateway, rita, "srv-db01")
    feed = gateway.app[BUS].subscribe("edr.actions")
    _, denied, _ = await act(gateway, rita, ws042, "isolate")
    _, expiring, _ = await act(gateway, rita, db01, "isolate")
    async with approvals_ws(gateway, rita) as ws:
        pending = await next_of(ws, "pending")
        assert sorted(a["approval_id"] for a in pending["approvals"]) == sorted(
            [denied["action"]["id"], expiring["action"]["id"]]
        )
        await ws.send_json(
            {"type": "decide", "approval_id": denied["action"]["id"], "decision": "deny"}
        )
        await action_event(feed, denied["action"]["id"], "denied")
    async with gateway.app[DATABASE].session() as db:
        approval = await db.get(Approval, expiring["action"]["id"])
        assert approval is not None
        approval.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        await db.commit()
    await gateway.app[RUNNER].expire_approvals()
    await action_event(feed, expiring["action"]["id"], "expired")
    assert lab_events(gateway, "ws-042", "isolate") == 0
    assert lab_events(gateway, "srv-db01", "isolate") == 0


async def test_a_refusing_connector_is_its_own_error_and_recorded(
    seeded: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, rita = seeded
    await set_mode(gateway, "active")
    ident = await endpoint_id(gateway, rita, "ws-042")
    # a disconnected lab endpoint: isolation waits for it...
    lab(gateway).set_connected("ws-042", False)
    status, body, _ = await act(gateway, rita, ident, "isolate")
    assert (status, body["action"]["status"], body["endpoint"]["state"]) == (
        200,
        "executed",
        "isolating",
    )
    # ...and a release meanwhile is refused by the product: 503, recorded failed
    status, body, _ = await act(gateway, rita, ident, "unisolate")
    assert (status, body["error"]["code"]) == (503, "AURORA-5030"), body
    assert body["error"]["detail"]["connector"] == "lab"
    assert "Traceback" not in json.dumps(body)
    records = await rows(gateway)
    assert [r.status for r in records] == ["executed", "failed"]
    assert records[1].detail["error"]["code"] == "AURORA-5030"
    # the endpoint connects: the poll sees the waiting isolation finish
    lab(gateway).set_connected("ws-042", True)
    assert await gateway.app[EDR].poll() == 1
    assert [r.status for r in await rows(gateway)] == ["succeeded", "failed"]
    detail = await (await gateway.client.get(f"/api/v1/edr/endpoints/{ident}", headers=rita)).json()
    assert detail["state"] == "isolated"


async def test_stats_and_metrics(seeded: tuple[Gateway, dict[str, str]]) -> None:
    gateway, rita = seeded
    ident = await endpoint_id(gateway, rita, "ws-042")
    await act(gateway, rita, ident, "scan")  # dry_run: recorded
    await set_mode(gateway, "active")
    await act(gateway, rita, ident, "isolate")
    await act(gateway, rita, ident, "scan")
    response = await gateway.client.get("/api/v1/edr/stats", headers=rita)
    stats = await response.json()
    assert response.status == 200, stats
    assert stats["endpoints_total"] == 2
    assert stats["endpoints_by_state"] == {"isolated": 1, "online": 1}
    assert stats["endpoints_by_connector"] == {"lab": 2}
    assert stats["actions_total"] == 3
    assert stats["actions_by_status"] == {"recorded": 1, "succeeded": 2}
    assert stats["actions_by_connector"] == {"lab": {"recorded": 1, "succeeded": 2}}
    assert stats["actions_by_action"] == {"isolate": 1, "scan": 2}
    assert [(c["name"], c["product"], c["endpoints"], c["error"]) for c in stats["connectors"]] == [
        ("lab", "lab", 2, None)
    ]
    metrics = await (await gateway.client.get("/metrics", headers=rita)).text()
    assert (
        'aurora_response_actions_total{action="isolate_host",outcome="succeeded",source="edr"} 1.0'
        in metrics
    )
    assert (
        'aurora_response_actions_total{action="scan_host",outcome="recorded",source="edr"} 1.0'
        in metrics
    )


async def test_no_connector_no_action_in_active_mode(gateway: Gateway) -> None:
    """A host only the logs know (with a real product configured, the lab enrols nothing)
    is listed, but active mode will not pretend to act on it."""
    service = gateway.app[EDR]
    async with gateway.app[DATABASE].session() as db:
        db.add(
            Endpoint(
                id="EP-2026-90001",
                hostname="kiosk-7",
                ips=["10.9.9.9"],
                state="unknown",
                source="telemetry",
                details={},
                first_seen=NOW,
                log_events=1,
            )
        )
        await db.commit()
    rita = await gateway.user(Role.RESPONDER)
    status, body, _ = await act(gateway, rita, "EP-2026-90001", "isolate")
    assert (status, body["action"]["status"], body["action"]["connector"]) == (
        202,
        "recorded",
        None,
    )
    await set_mode(gateway, "active")
    status, body, _ = await act(gateway, rita, "EP-2026-90001", "isolate")
    assert (status, body["error"]["code"]) == (409, "AURORA-4090")
    with pytest.raises(Exception, match="AURORA-4090"):
        await service.carry_out(
            action=EdrAction.ISOLATE,
            target="kiosk-7",
            key="k1",
            actor="playbook:x",
            reason="r",
        )
