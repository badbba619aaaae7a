"""Automation rules through the gateway: one fires on a new alert (tags it and runs a
playbook), its own tag comes back as an alert update and stops at the loop guard, counted;
toggle and delete; bad bodies."""

from __future__ import annotations

from typing import Any

import pytest

from core.security.permissions import Role
from tests.conftest import Gateway
from tests.waiting import eventually


@pytest.fixture
def backend() -> str:
    """SQLite only: what is tested here does not depend on the database engine (the engine's
    queue, ledger and approvals run on both in test_engine.py)."""
    return "sqlite"


RULES = "/api/v1/soar/rules"

TRIAGE = {
    "name": "Phishing reports get triaged",
    "trigger": "alert.created",
    "conditions": [{"field": "source", "op": "eq", "value": "mail-gateway"}],
    "actions": [
        {"type": "tag", "tags": ["auto-triage"]},
        {
            "type": "run_playbook",
            "playbook_id": "phishing-triage",
            "inputs": {"alert_id": "${{ event.id }}"},
        },
    ],
}
RETAG = {
    "name": "Tag every updated mail alert (a rule that feeds itself)",
    "trigger": "alert.updated",
    "conditions": [{"field": "source", "op": "eq", "value": "mail-gateway"}],
    "actions": [{"type": "tag", "tags": ["seen-again"]}],
    "max_depth": 2,
}


async def rule(gateway: Gateway, headers: dict[str, str], rule_id: str) -> dict[str, Any]:
    page = await (await gateway.client.get(RULES, headers=headers)).json()
    return next(r for r in page["items"] if r["id"] == rule_id)


async def test_a_rule_fires_on_a_new_alert_and_stops_at_its_loop_guard(
    gateway: Gateway,
) -> None:
    responder = await gateway.user(Role.RESPONDER, "rita")
    ids = []
    for body in (TRIAGE, RETAG):
        response = await gateway.client.post(RULES, headers=responder, json=body)
        created = await response.json()
        assert response.status == 201, created
        ids.append(created["id"])
    triage, retag = ids
    response = await gateway.client.post(
        "/api/v1/alerts",
        headers=responder,
        json={
            "title": "Reported phishing: invoice overdue",
            "source": "mail-gateway",
            "entities": [{"type": "url", "value": "http://invoices.example.net/pay"}],
        },
    )
    alert = await response.json()
    assert response.status == 201, alert

    async def settled() -> bool:
        looped = await rule(gateway, responder, retag)
        return bool(looped["skipped_loop"] >= 1)

    await eventually(settled, within=30)
    fired = await rule(gateway, responder, triage)
    assert fired["fired"] == 1
    looped = await rule(gateway, responder, retag)
    # The triage rule's tag (depth 1) and retag's own tag (depth 2) come back as updates:
    # retag acts on the first and its loop guard stops the second.
    assert looped["fired"] == 1
    assert looped["skipped_loop"] >= 1
    executions = await (
        await gateway.client.get(
            "/api/v1/soar/executions", headers=responder, params={"playbook_id": "phishing-triage"}
        )
    ).json()
    assert executions["total"] == 1
    started = executions["items"][0]
    assert started["inputs"]["alert_id"] == alert["id"]
    assert started["trigger"]["rule_id"] == triage
    assert started["depth"] == 1
    tagged = await (
        await gateway.client.get(f"/api/v1/alerts/{alert['id']}", headers=responder)
    ).json()
    assert {"auto-triage", "seen-again"} <= set(tagged["tags"])

    off = await gateway.client.post(f"{RULES}/{retag}/toggle", headers=responder)
    assert (await off.json())["enabled"] is False
    gone = await gateway.client.delete(f"{RULES}/{retag}", headers=responder)
    assert gone.status == 204
    again = await gateway.client.delete(f"{RULES}/{retag}", headers=responder)
    assert (await again.json())["error"]["code"] == "AURORA-4040"


async def test_bad_rules_are_refused_and_analysts_may_not_write(gateway: Gateway) -> None:
    responder = await gateway.user(Role.RESPONDER)
    analyst = await gateway.user(Role.ANALYST)
    bad = {**TRIAGE, "conditions": [{"field": "source", "op": "like", "value": "x"}]}
    response = await gateway.client.post(RULES, headers=responder, json=bad)
    body = await response.json()
    assert response.status == 422, body
    assert body["error"]["code"] == "AURORA-4220"
    assert body["error"]["detail"][0]["loc"][:3] == ["body", "conditions", 0]
    assert (await gateway.client.post(RULES, headers=analyst, json=TRIAGE)).status == 403
    listed = await (await gateway.client.get(RULES, headers=analyst)).json()
    assert listed["total"] == 0
