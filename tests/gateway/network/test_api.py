"""The network routes through the gateway: a real capture ingested and detected, the attack
promoted to a case and answered through SOAR; the configuration changed and rolled back; the
telemetry status and the coverage layer; the network specialist's findings."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.schemas import Severity
from core.security.permissions import Role
from core.settings import Settings
from gateway.keys import DATABASE, LOGSTORE, NETWORK
from gateway.network.scheduler import NetworkScheduler
from tests.conftest import Gateway, shared_data_dir, specialist_on_loopback, start_gateway
from tests.waiting import eventually

API = "/api/v1"
INGEST = f"{API}/network-telemetry/ingest"
ATTACKS = f"{API}/network-attacks"
CONFIG = f"{API}/settings/network-telemetry"
NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture
def backend() -> str:
    return "sqlite"


def _rdp_log() -> bytes:
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data absent: the WRCCDC 2018 Zeek capture is in ../shared/data")
    path = data / "network" / "zeek_wrccdc_2018" / "zeek-json" / "rdp.json.gz"
    if not path.is_file():
        pytest.skip(f"shared data lacks {path.name}")
    return gzip.decompress(path.read_bytes())


def _conn(when: datetime, src: str, dst: str, port: int, **extra: Any) -> str:
    return json.dumps(
        {
            "_path": "conn",
            "ts": when.timestamp(),
            "uid": f"C{abs(hash((when, src, dst, port)))}",
            "id.orig_h": src,
            "id.orig_p": 40000 + port % 1000,
            "id.resp_h": dst,
            "id.resp_p": port,
            "proto": "tcp",
            "conn_state": "S0",
            "orig_bytes": 0,
            "resp_bytes": 0,
            **extra,
        }
    )


async def test_a_capture_is_ingested_once_detected_promoted_and_answered(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    body = _rdp_log()
    responder = await gateway.user(Role.RESPONDER)
    viewer = await gateway.user(Role.VIEWER)
    sent = await gateway.client.post(
        INGEST,
        params={"source": "wrccdc-zeek"},
        data=io.BytesIO(body),
        headers={**responder, **NDJSON},
    )
    stored = await sent.json()
    assert sent.status == 200, stored
    assert stored["accepted"] == 4122
    assert stored["formats"] == {"zeek": 4122}
    again = await (
        await gateway.client.post(
            INGEST,
            params={"source": "wrccdc-zeek"},
            data=io.BytesIO(body),
            headers={**responder, **NDJSON},
        )
    ).json()
    assert (again["accepted"], again["duplicates"]) == (0, 4122)
    refused = await gateway.client.post(INGEST, data=b"{}", headers={**viewer, **NDJSON})
    assert (await refused.json())["error"]["code"] == "AURORA-4030"

    # An automation rule answers every new sweep with the response playbook.
    automation = await gateway.client.post(
        f"{API}/soar/rules",
        headers=responder,
        json={
            "name": "Answer sweeps",
            "trigger": "network.attack",
            "conditions": [
                {"field": "detector", "op": "eq", "value": "host_scan"},
                {"field": "new", "op": "eq", "value": True},
            ],
            "actions": [
                {
                    "type": "run_playbook",
                    "playbook_id": "network-attack-response",
                    "inputs": {"attack_id": "${{ event.attack_id }}"},
                }
            ],
        },
    )
    assert automation.status == 201, await automation.text()

    # The capture is from 2018: the scheduler finds it as telemetry that arrived late.
    cycle = await gateway.app[NETWORK].run_cycle()
    assert len(cycle.windows) == 2, cycle
    page = await (
        await gateway.client.get(ATTACKS, params={"detector": "brute_force"}, headers=viewer)
    ).json()
    assert page["total"] >= 1, page
    rdp = next(a for a in page["items"] if 3389 in a["destination_ports"])
    assert rdp["source_ip"] == "10.164.94.120"
    assert "T1110" in rdp["techniques"]
    assert rdp["severity"] in {"medium", "high", "critical"}
    sweep = await (
        await gateway.client.get(ATTACKS, params={"detector": "host_scan"}, headers=viewer)
    ).json()
    assert any(a["source_ip"] == "10.164.94.120" for a in sweep["items"]), sweep
    sweeps = {a["id"] for a in sweep["items"]}
    at_least = await (
        await gateway.client.get(ATTACKS, params={"severity": rdp["severity"]}, headers=viewer)
    ).json()
    assert rdp["id"] in {a["id"] for a in at_least["items"]}
    assert all(a["severity"] in Severity(rdp["severity"]).and_above() for a in at_least["items"])

    async def automated() -> bool:
        listed = await (
            await gateway.client.get(
                f"{API}/soar/executions",
                params={"playbook_id": "network-attack-response"},
                headers=responder,
            )
        ).json()
        return {e["inputs"]["attack_id"] for e in listed["items"]} == sweeps

    await eventually(automated, within=30)

    # The same activity seen again updates the attack rather than opening another.
    await gateway.app[NETWORK].run_cycle(end=datetime(2018, 3, 24, 17, 30, tzinfo=UTC))
    again_page = await (
        await gateway.client.get(ATTACKS, params={"detector": "brute_force"}, headers=viewer)
    ).json()
    assert again_page["total"] == page["total"]
    detail = await (await gateway.client.get(f"{ATTACKS}/{rdp['id']}", headers=viewer)).json()
    assert detail["detections"] > rdp["detections"]
    assert detail["events"]
    assert all(e["format"] == "zeek" for e in detail["events"])
    assert {e["source.ip"] for e in detail["events"]} == {"10.164.94.120"}
    assert "SELECT" in detail["query"]
    assert detail["evidence"]

    promoted = await gateway.client.post(f"{ATTACKS}/{rdp['id']}/case", headers=responder, json={})
    case = await promoted.json()
    assert promoted.status == 201, case
    assert case["observables_added"] >= 2
    assert case["attack"]["status"] == "promoted"
    observables = await (
        await gateway.client.get(f"{API}/cases/{case['case_id']}/observables", headers=admin)
    ).json()
    assert "10.164.94.120" in {o["value"] for o in observables["items"]}
    twice = await gateway.client.post(f"{ATTACKS}/{rdp['id']}/case", headers=responder, json={})
    assert (await twice.json())["error"]["code"] == "AURORA-4090"

    dispatched = await gateway.client.post(
        f"{ATTACKS}/{rdp['id']}/dispatch", headers=responder, json={}
    )
    answer = await dispatched.json()
    assert dispatched.status == 202, answer
    # An inside host guessing passwords on others: isolate it (the guardrails decide).
    assert answer["inputs"]["isolate"] == ["10.164.94.120"]
    assert answer["mode"] == "dry_run"

    async def finished() -> dict[str, Any] | None:
        listed = await (
            await gateway.client.get(
                f"{API}/soar/executions",
                params={"playbook_id": "network-attack-response"},
                headers=responder,
            )
        ).json()
        found = next(e for e in listed["items"] if e["id"] == answer["execution_id"])
        return found if found["status"] in {"completed", "failed"} else None

    execution = await eventually(finished, within=30)
    assert execution["status"] == "completed", execution
    after = await (await gateway.client.get(f"{ATTACKS}/{rdp['id']}", headers=viewer)).json()
    assert after["status"] == "responded"
    assert after["responses"][0]["execution_id"] == answer["execution_id"]

    missing = await gateway.client.post(f"{ATTACKS}/NATK-2026-99999/case", headers=responder)
    assert missing.status == 404

    status = await (
        await gateway.client.get(f"{API}/network-security/status", headers=viewer)
    ).json()
    metrics = await (await gateway.client.get("/metrics", headers=admin)).text()
    assert (
        'aurora_network_detector_runs_total{detector="brute_force",outcome="succeeded"}' in metrics
    )
    assert 'aurora_network_attacks_total{change="opened",detector="brute_force"}' in metrics
    health = {d["detector"]: d for d in status["detectors"]}
    assert health["brute_force"]["runs"] >= 2
    assert health["brute_force"]["healthy"]
    assert status["attacks"]["total"] >= 2


async def test_configuration_changes_history_and_rollback(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    first = await (await gateway.client.get(CONFIG, headers=admin)).json()
    assert first["version"] == 0
    document = {
        key: first["config"][key]
        for key in ("home_networks", "sensors", "sources", "thresholds", "allowlist", "schedule")
    }
    document["thresholds"]["port_scan"]["distinct_ports"] = 40
    document["sensors"] = [{"name": "zeek-dmz", "kind": "zeek", "silence_seconds": 600}]
    document["allowlist"] = [{"source": "10.0.5.9/32", "reason": "Nessus scanner"}]
    changed = await gateway.client.put(
        CONFIG, headers=admin, json={**document, "reason": "DMZ sensor", "expected_version": 0}
    )
    v1 = await changed.json()
    assert changed.status == 200, v1
    assert v1["version"] == 1
    stale = await gateway.client.put(
        CONFIG, headers=admin, json={**document, "expected_version": 0}
    )
    assert (await stale.json())["error"]["code"] == "AURORA-4090"
    bad = await gateway.client.put(
        CONFIG, headers=admin, json={"thresholds": {"port_scan": {"distinct_ports": 1}}}
    )
    error = (await bad.json())["error"]
    assert bad.status == 422
    assert error["code"] == "AURORA-4220"
    assert error["detail"][0]["loc"][:4] == ["body", "thresholds", "port_scan", "distinct_ports"]
    history = await (await gateway.client.get(f"{CONFIG}/history", headers=admin)).json()
    assert history["total"] == 1
    entry = history["items"][0]
    assert entry["changed_by"] == "root-admin"
    paths = {c["path"] for c in entry["diff"]}
    assert {"thresholds.port_scan.distinct_ports", "sensors", "allowlist"} <= paths

    document["thresholds"]["port_scan"]["distinct_ports"] = 60
    await gateway.client.put(CONFIG, headers=admin, json=document)
    restored = await gateway.client.post(
        f"{CONFIG}/history/{entry['id']}/rollback", headers=admin, json={"reason": "too quiet"}
    )
    back = await restored.json()
    assert restored.status == 201, back
    assert back["version"] == 3
    assert back["config"]["thresholds"]["port_scan"]["distinct_ports"] == 40
    now = await (await gateway.client.get(CONFIG, headers=admin)).json()
    assert now["version"] == 3
    assert now["config"] == back["config"]
    unknown = await gateway.client.post(f"{CONFIG}/history/999/rollback", headers=admin)
    assert unknown.status == 404


async def test_status_and_the_coverage_layer_follow_the_telemetry(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    lines = [
        _conn(now - timedelta(seconds=30 - i), "10.1.1.5", "10.1.1.9", port)
        for i, port in enumerate(range(20, 50))
    ]
    sent = await gateway.client.post(
        INGEST,
        params={"source": "zeek-lab"},
        data="\n".join(lines).encode(),
        headers={**admin, **NDJSON},
    )
    assert (await sent.json())["accepted"] == 30
    status = await (
        await gateway.client.get(f"{API}/network-telemetry/status", headers=admin)
    ).json()
    sensor = next(s for s in status["sensors"] if s["sensor"] == "zeek-lab")
    assert sensor["state"] == "active"
    assert sensor["events"] == 30

    layer = await gateway.client.get(
        f"{API}/network-telemetry/coverage", params={"format": "navigator"}, headers=admin
    )
    document = json.loads(await layer.text())
    assert document["domain"] == "enterprise-attack"
    assert document["versions"]["layer"] == "4.5"
    scores = {t["techniqueID"]: t["score"] for t in document["techniques"]}
    assert scores.get("T1046", 0) > 0  # the scan detectors' flows are flowing
    plain = await (
        await gateway.client.get(f"{API}/network-telemetry/coverage", headers=admin)
    ).json()
    states = {t["id"]: t["state"] for t in plain["techniques"]}
    assert states["T1046"] == "covered"
    # DNS detectors read DNS events, and none came: they cover nothing yet.
    assert states.get("T1568.002") in {None, "no_telemetry"}


@pytest.fixture
async def with_network_agent(
    tmp_path: Path, settings: Settings
) -> AsyncIterator[tuple[Gateway, dict[str, str]]]:
    """A gateway whose network specialist runs on a loopback port."""
    async with specialist_on_loopback("network", tmp_path / "agent", settings.jwt_secret) as url:
        configured = settings.model_copy(update={"agent_urls": {"network": [url]}})
        client = await start_gateway(configured)
        try:
            gateway = Gateway(client)
            yield gateway, await gateway.user(Role.RESPONDER)
        finally:
            await client.close()


async def test_findings_of_the_network_specialist(
    with_network_agent: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, responder = with_network_agent
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    # A vertical scan: one source, one host, 200 ports in a minute.
    lines = [
        _conn(start + timedelta(milliseconds=300 * i), "10.9.9.9", "10.2.2.2", port)
        for i, port in enumerate(range(1, 201))
    ]
    await gateway.client.post(
        INGEST, data="\n".join(lines).encode(), headers={**responder, **NDJSON}
    )
    made = await gateway.client.post(
        f"{API}/network-security/analyze",
        headers=responder,
        json={"start": start.isoformat(), "query": "source.ip:10.9.9.9"},
    )
    finding = await made.json()
    assert made.status == 201, finding
    assert finding["status"] == "succeeded"
    assert finding["scope"]["flows"] == 200
    assert finding["scope"]["events_matched"] == 200
    assert "T1046" in finding["techniques"], finding
    assert finding["severity"] != "informational"
    inline = await gateway.client.post(
        f"{API}/network-security/analyze",
        headers=responder,
        json={
            "eve": [
                {
                    "event_type": "alert",
                    "timestamp": start.isoformat(),
                    "src_ip": "203.0.113.7",
                    "dest_ip": "10.2.2.2",
                    "dest_port": 22,
                    "proto": "TCP",
                    "alert": {"signature": "ET SCAN Potential SSH Scan", "severity": 2},
                }
            ]
        },
    )
    assert inline.status == 201, await inline.text()
    refused = await gateway.client.post(
        f"{API}/network-security/analyze",
        headers=responder,
        json={"flows": [{"ts": "yesterday", "src_ip": "10.0.0.1", "dst_ip": "nowhere"}]},
    )
    error = (await refused.json())["error"]
    assert refused.status == 422, error
    assert error["detail"][0]["loc"] == ["body", "flows"]
    both = await gateway.client.post(
        f"{API}/network-security/analyze",
        headers=responder,
        json={"start": start.isoformat(), "flows": []},
    )
    assert (await both.json())["error"]["code"] == "AURORA-4220"
    listed = await (
        await gateway.client.get(
            f"{API}/network-security/findings",
            params={"technique": "T1046"},
            headers=responder,
        )
    ).json()
    assert finding["id"] in {f["id"] for f in listed["items"]}
    status = await (
        await gateway.client.get(f"{API}/network-security/status", headers=responder)
    ).json()
    assert status["findings"]["by_status"] == {"succeeded": 2}  # the refused one is not kept
    assert status["agent"]["circuit"] == "closed"


async def test_a_backlog_of_late_hours_is_detected_over_several_cycles(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    base = datetime(2021, 6, 1, tzinfo=UTC)
    lines = [
        _conn(base + timedelta(hours=h, minutes=5), "10.3.3.3", "10.4.4.4", 22) for h in range(8)
    ]
    sent = await gateway.client.post(
        INGEST, data="\n".join(lines).encode(), headers={**admin, **NDJSON}
    )
    assert (await sent.json())["accepted"] == 8
    scheduler = gateway.app[NETWORK]
    first = await scheduler.run_cycle()
    second = await scheduler.run_cycle()
    third = await scheduler.run_cycle()
    late = [base + timedelta(hours=h + 1) for h in range(8)]
    assert first.windows[:-1] == late[:6]
    assert second.windows[:-1] == late[6:]
    assert third.windows[1:] == []
    assert len(third.windows) == 1


async def test_a_restarted_scheduler_detects_what_arrived_while_it_was_down(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    scheduler = gateway.app[NETWORK]
    await scheduler.run_cycle()  # a cycle ran: its time is in the detectors' state
    late = datetime(2022, 1, 3, 9, 15, tzinfo=UTC)
    sent = await gateway.client.post(
        INGEST, data=_conn(late, "10.5.5.5", "10.6.6.6", 22).encode(), headers={**admin, **NDJSON}
    )
    assert (await sent.json())["accepted"] == 1
    # A new scheduler (a restarted gateway) an hour later: far past its interval.
    restarted = NetworkScheduler(database=gateway.app[DATABASE], store=gateway.app[LOGSTORE])
    cycle = await restarted.run_cycle(end=datetime.now(UTC) + timedelta(hours=1))
    assert datetime(2022, 1, 3, 10, tzinfo=UTC) in cycle.windows
