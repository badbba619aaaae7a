"""Playbooks through the gateway: create (and the refusal of a broken one), execute in each
mode, approve a containment step over /ws/approvals, the step log, at most once after a
restart, and the deprecated list alias."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update

from core.errors import NotFound
from core.security.permissions import Role
from gateway.investigations.models import ResponseActionRecord
from gateway.keys import DATABASE, EDR, SOAR
from gateway.soar.models import ExecutionStep, PlaybookExecution
from gateway.soar.routes import SUNSET
from tests.conftest import Gateway
from tests.gateway.edr.test_edr import LOGS, approvals_ws, ingest, lab_events, set_mode
from tests.gateway.investigations.test_approvals import decide
from tests.waiting import eventually

PLAYBOOKS = "/api/v1/soar/playbooks"
HOST = "ws-042.corp.example"

CONTAIN = {
    "id": "contain-host",
    "name": "Contain a host",
    "inputs": {"alert_id": {"type": "string", "required": True}},
    "steps": [
        {"id": "alert", "uses": "alert.get", "with": {"alert_id": "${{ inputs.alert_id }}"}},
        {
            "id": "tag",
            "uses": "alert.tag",
            "with": {"alert_id": "${{ inputs.alert_id }}", "tags": ["containment"]},
        },
        {
            "id": "isolate",
            "uses": "edr.isolate",
            "foreach": "steps.alert.output.entities[?type=='host'].value",
            "on_error": "continue",
            "with": {"host": "${{ item }}", "reason": "alert ${{ inputs.alert_id }}"},
        },
        {
            "id": "notify",
            "uses": "notify",
            "with": {
                "message": "isolation of ${{ join(', ', steps.alert.output.entities[*].value) }}"
                ": ${{ steps.isolate.status }}",
            },
        },
    ],
}


async def create(gateway: Gateway, headers: dict[str, str], definition: Any) -> Any:
    text = yaml.safe_dump(definition) if isinstance(definition, dict) else definition
    return await gateway.client.post(
        PLAYBOOKS, headers={**headers, "Content-Type": "application/yaml"}, data=text
    )


async def alert_on(gateway: Gateway, headers: dict[str, str], host: str = HOST) -> str:
    response = await gateway.client.post(
        "/api/v1/alerts",
        headers=headers,
        json={
            "title": f"Encoded PowerShell on {host}",
            "source": "edr",
            "severity": "high",
            "entities": [{"type": "host", "value": host}],
        },
    )
    body = await response.json()
    assert response.status == 201, body
    return str(body["id"])


async def execution(gateway: Gateway, headers: dict[str, str], execution_id: str) -> Any:
    response = await gateway.client.get(
        "/api/v1/soar/executions", headers=headers, params={"playbook_id": "contain-host"}
    )
    body = await response.json()
    assert response.status == 200, body
    found = [e for e in body["items"] if e["id"] == execution_id]
    assert found, body
    return found[0]


async def run(
    gateway: Gateway,
    headers: dict[str, str],
    alert_id: str,
    until: Callable[[dict[str, Any]], bool] = lambda e: e["status"] in {"completed", "failed"},
) -> dict[str, Any]:
    response = await gateway.client.post(
        f"{PLAYBOOKS}/contain-host/execute",
        headers=headers,
        json={"inputs": {"alert_id": alert_id}},
    )
    accepted = await response.json()
    assert response.status == 202, accepted
    found: dict[str, Any] = {}

    async def settled() -> bool:
        found.update(await execution(gateway, headers, accepted["id"]))
        return until(found)

    await eventually(settled, within=30)
    return found


def steps(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["key"].split("/", 1)[1]: s for s in found["steps"]}


@pytest.fixture
async def responder(gateway: Gateway) -> dict[str, str]:
    analyst = await gateway.user(Role.ANALYST, "ana")
    await ingest(gateway, analyst, LOGS)
    await gateway.app[EDR].refresh()
    headers = await gateway.user(Role.RESPONDER, "rita")
    response = await create(gateway, headers, CONTAIN)
    assert response.status == 201, await response.json()
    return headers


async def test_a_broken_playbook_is_refused_naming_the_step(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    broken = {
        **CONTAIN,
        "steps": [*CONTAIN["steps"][:2], {**CONTAIN["steps"][2], "uses": "edr.nuke"}],
    }
    response = await create(gateway, admin, broken)
    body = await response.json()
    assert response.status == 422, body
    assert body["error"]["code"] == "AURORA-4221"
    assert any(p["loc"][:3] == ["steps", 2, "uses"] for p in body["error"]["detail"]), body
    missing = await gateway.client.get(f"{PLAYBOOKS}/contain-host", headers=admin)
    assert missing.status == 404
    bad_yaml = await create(gateway, admin, "id: [unclosed")
    assert (await bad_yaml.json())["error"]["code"] == "AURORA-4221"


async def test_versions_list_detail_toggle_and_the_deprecated_alias(
    gateway: Gateway, responder: dict[str, str]
) -> None:
    again = await create(gateway, responder, CONTAIN)
    assert again.status == 200  # the same definition: no new version
    changed = await create(gateway, responder, {**CONTAIN, "description": "v2"})
    assert changed.status == 201
    assert (await changed.json())["version"] == 2
    detail = await (await gateway.client.get(f"{PLAYBOOKS}/contain-host", headers=responder)).json()
    assert [v["version"] for v in detail["versions"]] == [2, 1]
    assert detail["definition"]["steps"][2]["uses"] == "edr.isolate"
    builtin = await (
        await gateway.client.get(PLAYBOOKS, headers=responder, params={"builtin": "true"})
    ).json()
    assert {p["id"] for p in builtin["items"]} >= {
        "phishing-triage",
        "malware-containment",
        "brute-force-response",
        "suspicious-powershell",
    }
    off = await gateway.client.post(
        f"{PLAYBOOKS}/contain-host/toggle", headers=responder, json={"enabled": False}
    )
    assert (await off.json())["enabled"] is False
    refused = await gateway.client.post(
        f"{PLAYBOOKS}/contain-host/execute", headers=responder, json={"inputs": {"alert_id": "x"}}
    )
    assert (await refused.json())["error"]["code"] == "AURORA-4090"
    flipped = await gateway.client.post(f"{PLAYBOOKS}/contain-host/toggle", headers=responder)
    assert (await flipped.json())["enabled"] is True
    alias = await gateway.client.get("/api/v1/playbooks", headers=responder)
    assert alias.status == 200
    assert alias.headers["Deprecation"] == "true"
    assert alias.headers["Sunset"] == SUNSET
    current = await gateway.client.get(PLAYBOOKS, headers=responder)
    assert "Deprecation" not in current.headers
    assert (await alias.json())["items"] == (await current.json())["items"]
    missing_input = await gateway.client.post(
        f"{PLAYBOOKS}/contain-host/execute", headers=responder, json={"inputs": {}}
    )
    refusal = (await missing_input.json())["error"]
    assert refusal["code"] == "AURORA-4220"
    assert refusal["detail"][0]["loc"] == ["body", "inputs", "alert_id"]


async def test_dry_run_records_what_each_step_would_do(
    gateway: Gateway, responder: dict[str, str]
) -> None:
    alert_id = await alert_on(gateway, responder)
    found = await run(gateway, responder, alert_id)
    assert found["status"] == "completed", found
    assert found["mode"] == "dry_run"
    log = steps(found)
    assert log["alert"]["status"] == "succeeded"
    assert log["tag"]["status"] == "recorded"
    assert log["tag"]["output"]["would"]["summary"].startswith("tag alert")
    assert log["isolate#0"]["status"] == "recorded"
    assert log["isolate#0"]["guardrail"]["outcome"] == "record_only"
    assert log["notify"]["status"] == "recorded"
    for step in found["steps"]:
        assert step["duration_ms"] is not None
        assert step["finished_at"] is not None
    alert = await (await gateway.client.get(f"/api/v1/alerts/{alert_id}", headers=responder)).json()
    assert "containment" not in alert["tags"]
    assert lab_events(gateway, HOST, "isolate") == 0


async def test_monitor_runs_records_and_proposes_responses(
    gateway: Gateway, responder: dict[str, str]
) -> None:
    await set_mode(gateway, "monitor")
    alert_id = await alert_on(gateway, responder)
    found = await run(gateway, responder, alert_id)
    log = steps(found)
    assert found["status"] == "completed", found
    assert log["tag"]["status"] == "succeeded"
    assert log["isolate#0"]["status"] == "proposed"
    alert = await (await gateway.client.get(f"/api/v1/alerts/{alert_id}", headers=responder)).json()
    assert "containment" in alert["tags"]
    assert lab_events(gateway, HOST, "isolate") == 0


async def test_active_waits_for_a_human_then_isolates_once(
    gateway: Gateway, responder: dict[str, str]
) -> None:
    await set_mode(gateway, "active")
    alert_id = await alert_on(gateway, responder)
    async with approvals_ws(gateway, responder) as ws:
        found = await run(
            gateway, responder, alert_id, until=lambda e: e["status"] == "awaiting_approval"
        )
        waiting = steps(found)["isolate#0"]
        assert waiting["status"] == "awaiting_approval"
        # An API-posted alert names the host: only attacker-writable data does, so a human decides.
        assert waiting["guardrail"]["decision"] == "require_approval"
        assert "notify" not in steps(found)
        await decide(ws, waiting["key"], "approve", comment="confirmed on the console")

        async def decided() -> bool:
            found.update(await execution(gateway, responder, found["id"]))
            return bool(found["status"] == "completed")

        await eventually(decided, within=30)
    log = steps(found)
    assert log["isolate#0"]["status"] == "succeeded", log["isolate#0"]
    assert log["isolate#0"]["output"]["status"] in {"executed", "succeeded"}
    assert log["notify"]["status"] == "succeeded"
    assert lab_events(gateway, HOST, "isolate") == 1
    async with gateway.app[DATABASE].session() as db:
        ledger = list(
            await db.scalars(
                select(ResponseActionRecord).where(
                    ResponseActionRecord.investigation_id == found["id"]
                )
            )
        )
    assert sorted(r.action for r in ledger) == ["alert.tag", "isolate_host", "notify"]
    assert {r.status for r in ledger} == {"executed"}
    assert [r.approved_by for r in ledger if r.action == "isolate_host"] == ["rita"]
    metrics = await (await gateway.client.get("/metrics", headers=responder)).text()
    assert 'aurora_soar_executions_total{status="completed"} 1.0' in metrics
    assert (
        'aurora_response_actions_total{action="isolate_host",outcome="succeeded",'
        'source="playbook"} 1.0' in metrics
    )
    assert 'aurora_soar_step_duration_seconds_count{status="succeeded",uses="edr.isolate"} 1.0' in (
        metrics
    )


async def test_a_denied_step_runs_nothing_and_the_playbook_goes_on(
    gateway: Gateway, responder: dict[str, str]
) -> None:
    await set_mode(gateway, "active")
    alert_id = await alert_on(gateway, responder)
    async with approvals_ws(gateway, responder) as ws:
        found = await run(
            gateway, responder, alert_id, until=lambda e: e["status"] == "awaiting_approval"
        )
        await decide(ws, steps(found)["isolate#0"]["key"], "deny", comment="false positive")

        async def decided() -> bool:
            found.update(await execution(gateway, responder, found["id"]))
            return bool(found["status"] == "completed")

        await eventually(decided, within=30)
    log = steps(found)
    assert log["isolate#0"]["status"] == "denied"
    assert log["isolate#0"]["error"]["code"] == "AURORA-4031"
    assert log["notify"]["status"] == "succeeded"
    assert lab_events(gateway, HOST, "isolate") == 0


async def test_a_restart_replays_the_log_and_never_acts_twice(
    gateway: Gateway, responder: dict[str, str]
) -> None:
    """An execution the gateway left running resumes from its log: finished steps are not run
    again, and an effect whose ledger key was taken but never finished is ``unknown``, not
    repeated."""
    await set_mode(gateway, "monitor")
    alert_id = await alert_on(gateway, responder)
    done = await run(gateway, responder, alert_id)
    assert done["status"] == "completed"
    engine = gateway.app[SOAR]
    await engine.stop()
    # As if the gateway had died while notifying: the execution running, its notify step
    # started and its ledger key taken, no outcome written.
    async with gateway.app[DATABASE].session() as db:
        await db.execute(
            update(PlaybookExecution)
            .where(PlaybookExecution.id == done["id"])
            .values(status="running", finished_at=None)
        )
        await db.execute(
            update(ExecutionStep)
            .where(ExecutionStep.key == f"{done['id']}/notify")
            .values(status="running", output=None, finished_at=None)
        )
        await db.execute(
            update(ResponseActionRecord)
            .where(ResponseActionRecord.key == f"{done['id']}/notify")
            .values(status="started", detail={})
        )
        await db.commit()
    tagged_before = (
        await (await gateway.client.get(f"/api/v1/alerts/{alert_id}", headers=responder)).json()
    )["version"]
    await engine.start()
    found: dict[str, Any] = {}

    async def finished() -> bool:
        found.update(await execution(gateway, responder, done["id"]))
        return bool(found["status"] in {"completed", "failed"})

    await eventually(finished, within=30)
    log = steps(found)
    assert found["attempts"] == 2
    assert log["notify"]["status"] == "unknown"
    assert log["tag"]["status"] == "succeeded"
    alert = await (await gateway.client.get(f"/api/v1/alerts/{alert_id}", headers=responder)).json()
    assert alert["version"] == tagged_before  # the tag was not applied again
    assert found["status"] == "failed"
    assert "notify" in found["error"]


async def test_who_may_read_write_and_run(gateway: Gateway, admin: dict[str, str]) -> None:
    assert (await create(gateway, admin, CONTAIN)).status == 201
    viewer = await gateway.user(Role.VIEWER)
    analyst = await gateway.user(Role.ANALYST)
    ml = await gateway.user(Role.ML_ENGINEER)
    assert (await gateway.client.get("/api/v1/soar/executions", headers=viewer)).status == 200
    assert (await gateway.client.get("/api/v1/playbooks", headers=viewer)).status == 200
    assert (await gateway.client.get(PLAYBOOKS, headers=ml)).status == 403
    assert (await create(gateway, analyst, CONTAIN)).status == 403
    run_as_analyst = await gateway.client.post(
        f"{PLAYBOOKS}/contain-host/execute", headers=analyst, json={"inputs": {"alert_id": "x"}}
    )
    assert run_as_analyst.status == 403
    async with gateway.app[DATABASE].session() as db:
        assert list(await db.scalars(select(PlaybookExecution))) == []


async def test_a_host_the_logs_just_named_is_contained_without_waiting_for_the_inventory(
    gateway: Gateway, responder: dict[str, str]
) -> None:
    """The alert a playbook acts on is often the first word of a host: an unknown target
    rebuilds the inventory before it is refused (at most every ``unknown_refresh_seconds``)."""
    await set_mode(gateway, "active")
    analyst = await gateway.user(Role.ANALYST, "newcomer-analyst")
    late = {**LOGS[0], "host": {"name": "ws-777.corp.example", "ip": "10.1.2.77"}}
    await ingest(gateway, analyst, [late])
    edr = gateway.app[EDR]
    edr.unknown_refresh_seconds = 0
    alert_id = await alert_on(gateway, responder, "ws-777.corp.example")
    async with approvals_ws(gateway, responder) as ws:
        found = await run(
            gateway, responder, alert_id, until=lambda e: e["status"] == "awaiting_approval"
        )
        await decide(ws, steps(found)["isolate#0"]["key"], "approve")

        async def decided() -> bool:
            found.update(await execution(gateway, responder, found["id"]))
            return bool(found["status"] == "completed")

        await eventually(decided, within=30)
    assert steps(found)["isolate#0"]["status"] == "succeeded", steps(found)["isolate#0"]["error"]
    assert lab_events(gateway, "ws-777.corp.example", "isolate") == 1
    edr.unknown_refresh_seconds = 3600
    with pytest.raises(NotFound):
        await edr.resolve("never-seen-anywhere")
