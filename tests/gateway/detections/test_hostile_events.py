"""Events an attacker shaped (a huge command line, a DNS name that is no domain) still raise
their alerts: they never stop a rule run from raising the rest."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.security.permissions import Role
from tests.conftest import Gateway
from tests.gateway.siem.test_siem import EVENTS, NOW, PS, RULE, ingest, ndjson, sysmon

DNS_RULE = """
title: Lookups of an evil name
id: 0c5a3f1e-2b3c-4d5e-8f90-abcdefabcdef
status: test
logsource:
  product: windows
  category: dns_query
detection:
  selection:
    QueryName|contains: 'evil'
  condition: selection
level: medium
"""


async def _backfill(gateway: Gateway, headers: dict[str, str], sigma: str) -> dict[str, Any]:
    created = await gateway.client.post(
        "/api/v1/detections/rules", headers=headers, json={"sigma": sigma}
    )
    rule = await created.json()
    assert created.status == 201, rule
    response = await gateway.client.post(
        f"/api/v1/detections/rules/{rule['id']}/run",
        headers=headers,
        json={
            "start": (NOW - timedelta(hours=1)).isoformat(),
            "end": (NOW + timedelta(minutes=1)).isoformat(),
            "mode": "backfill",
        },
    )
    run = await response.json()
    assert response.status == 200, run
    return dict(run)


async def test_a_huge_command_line_raises_its_alert_cut_short(gateway: Gateway) -> None:
    hunter = await gateway.user(Role.HUNTER)
    # Each text column is cut at 32k characters in the store; nine of them are past an
    # alert's 256 KiB of raw.
    huge = {
        **sysmon(1, "ws-19", PS, "powershell.exe -enc " + "QUFB" * 80_000),
        "ParentCommandLine": "p" * 40_000,
        "CurrentDirectory": "C:\\" + "d" * 40_000,
        "OriginalFileName": "o" * 40_000,
        "Description": "e" * 40_000,
        "Product": "r" * 40_000,
        "Company": "c" * 40_000,
        "ParentUser": "u" * 40_000,
        "IntegrityLevel": "i" * 40_000,
    }
    status, body = await ingest(gateway, hunter, ndjson([huge, *EVENTS]), source="sysmon")
    assert status == 200, body
    run = await _backfill(gateway, hunter, RULE)
    assert (run["status"], run["matches"], run["alerts"]) == ("succeeded", 4, 4), run
    alerts = await (await gateway.client.get("/api/v1/alerts?limit=10", headers=hunter)).json()
    command = next(
        a["raw"]["event"]["process.command_line"]
        for a in alerts["items"]
        if a["raw"]["event"]["host.name"] == "ws-19"
    )
    assert command.endswith("(32768 characters in the log)")
    assert len(command) < 5000


async def test_an_entity_that_is_not_valid_is_left_out_not_the_alert(gateway: Gateway) -> None:
    hunter = await gateway.user(Role.HUNTER)
    lookups = [
        {
            "EventID": 22,
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": "ws-20",
            "TimeCreated": (NOW - timedelta(minutes=n)).isoformat(),
            "Image": PS,
            "QueryName": name,
            "ProcessId": 300 + n,
        }
        for n, name in enumerate(["evil..not a domain!", "evil.example.com"], start=1)
    ]
    status, body = await ingest(gateway, hunter, ndjson(lookups), source="sysmon")
    assert status == 200, body
    run = await _backfill(gateway, hunter, DNS_RULE)
    assert (run["status"], run["matches"], run["alerts"]) == ("succeeded", 2, 2), run
    alerts = await (await gateway.client.get("/api/v1/alerts", headers=hunter)).json()
    domains = sorted(
        e["value"] for a in alerts["items"] for e in a["entities"] if e["type"] == "domain"
    )
    assert domains == ["evil.example.com"]
