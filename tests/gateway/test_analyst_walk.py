"""The analyst's walk, as issue 4 scripts it: alert → duplicate → promote → observables →
evidence → custody → ledger, then direct tampering with the database."""

from __future__ import annotations

import base64

from sqlalchemy import update

from core.security.permissions import Role
from gateway.cases.evidence.models import EvidenceLedgerEntry
from gateway.keys import DATABASE
from tests.conftest import Gateway

ALERT = {
    "title": "Outbound beacon to known C2",
    "source": "suricata",
    "rule_id": "ET-CNC-2027000",
    "severity": "high",
    "entities": [
        {"type": "ip", "value": "185.220.101[.]4"},
        {"type": "host", "value": "WS-0142"},
        {"type": "domain", "value": "update-check[.]example[.]net"},
    ],
}


async def test_the_analyst_walk(gateway: Gateway) -> None:
    headers = await gateway.user(Role.ANALYST, "ana")
    client = gateway.client

    created = await client.post("/api/v1/alerts", json=ALERT, headers=headers)
    alert = await created.json()
    assert created.status == 201

    duplicate = await client.post("/api/v1/alerts", json=ALERT, headers=headers)
    assert (await duplicate.json())["error"]["detail"]["existing_alert_id"] == alert["id"]

    promoted = await client.post(f"/api/v1/alerts/{alert['id']}/promote", headers=headers)
    case_id = (await promoted.json())["case_id"]

    observables = await (
        await client.get(f"/api/v1/cases/{case_id}/observables", headers=headers)
    ).json()
    assert {(o["type"], o["value"]) for o in observables["items"]} == {
        ("ip", "185.220.101.4"),
        ("host", "ws-0142"),
        ("domain", "update-check.example.net"),
    }
    added = await client.post(
        f"/api/v1/cases/{case_id}/observables",
        headers=headers,
        json={"type": "sha256", "value": "A" * 64, "ioc": True},
    )
    assert added.status == 201

    pcap = b"\xd4\xc3\xb2\xa1" + b"\x00" * 60
    uploaded = await client.post(
        f"/api/v1/cases/{case_id}/evidence",
        headers=headers,
        json={
            "name": "beacon.pcap",
            "content_base64": base64.b64encode(pcap).decode(),
            "content_type": "application/vnd.tcpdump.pcap",
            "reason": "sensor capture",
        },
    )
    evidence = await uploaded.json()
    assert uploaded.status == 201

    base = f"/api/v1/cases/{case_id}/evidence/{evidence['id']}"
    custody = await (await client.get(f"{base}/custody", headers=headers)).json()
    assert [e["action"] for e in custody["events"]] == ["create", "access"]
    ledger = await (await client.get(f"{base}/ledger", headers=headers)).json()
    assert ledger["verification"]["valid"] is True

    async with gateway.app[DATABASE].session() as db:
        await db.execute(
            update(EvidenceLedgerEntry)
            .where(
                EvidenceLedgerEntry.evidence_id == evidence["id"], EvidenceLedgerEntry.sequence == 1
            )
            .values(reason="never captured")
        )
        await db.commit()
    tampered = await (await client.get(f"{base}/ledger", headers=headers)).json()
    assert tampered["verification"]["valid"] is False
    assert tampered["verification"]["broken_at"] == 1
