"""Each built-in playbook run whole through the gateway, in ``active`` mode, on realistic data:
the real specialists on loopback ports (their threat feed), the built-in guardrail policy, the
lab EDR connector, and alerts as the platform stores them: raised by Sigma rules over the shared
Windows logs ingested into the log store, or carrying a mail gateway's or an EDR's fields. The
approvals the guardrails ask for are decided over ``/ws/approvals``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse
from sqlalchemy import select

from core.events import Subscription
from core.security.permissions import Role
from core.settings import Settings
from gateway.investigations.models import ResponseActionRecord
from gateway.keys import BUS, DATABASE, EDR
from tests.conftest import Gateway, shared_data_dir, start_gateway
from tests.gateway.edr.test_edr import lab, lab_events
from tests.gateway.investigations.test_approvals import approvals_ws, decide, next_of
from tests.gateway.investigations.test_investigations import configured
from tests.orchestrator.test_graph import attack, fleet  # noqa: F401 - fixtures
from tests.waiting import eventually

PLAYBOOKS = "/api/v1/soar/playbooks"
EVTX = "logs/evtx_to_mitre_attack/jsonl"
BRUTE_FORCE = (
    f"{EVTX}/TA0006-Credential Access/T1110.xxx-Brut force/"
    "ID4771-Kerberos brutforce with valid user.jsonl"
)
POWERSHELL = (
    f"{EVTX}/TA0002-Execution/T1059.001-PowerShell/"
    "ID4103-4104-Payload download via PowerShell.jsonl"
)
LISTED_IP = "45.33.32.156"  # the fleet's feed: "Phishing delivery server", high, confidence 85
LISTED_DOMAIN = "evil.example.com"  # the fleet's feed: "Phishing landing domain"
NOW = datetime.now(UTC).replace(microsecond=0)

# Sigma rules as SigmaHQ writes them (Kerberos pre-authentication failures with a wrong
# password; a PowerShell script block downloading with Net.WebClient), run by the platform's
# detection engine over the logs: the alert is the one the platform itself raises.
KERBEROS_RULE = """
title: Kerberos pre-authentication failed (wrong password)
description: A TGT request failed pre-authentication with a bad password (4771, status 0x18)
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4771, Status: '0x18'}
  condition: selection
level: medium
tags: [attack.credential-access, attack.t1110]
"""
DOWNLOAD_RULE = """
title: PowerShell download cradle in a script block
description: A script block downloads content with System.Net.WebClient
logsource: {product: windows, category: ps_script}
detection:
  webclient: {ScriptBlockText|contains: 'Net.WebClient'}
  download: {ScriptBlockText|contains: ['.DownloadString(', '.DownloadFile(', '.DownloadData(']}
  condition: webclient and download
level: high
tags: [attack.execution, attack.t1059.001]
"""


@pytest.fixture
def backend() -> str:
    """SQLite only: these runs are about the playbooks on real data, not the database."""
    return "sqlite"


def shared(relative: str) -> Path:
    data = shared_data_dir()
    if data is None:
        pytest.skip("the shared data (../shared/data or AURORA_SHARED_DATA) is not here")
    path = data / relative
    if not path.is_file():
        pytest.skip(f"the shared data has no {relative}")
    return path


@pytest.fixture
async def platform(settings: Settings, fleet: dict[str, Any]) -> AsyncIterator[Gateway]:  # noqa: F811
    """A gateway with the real specialists and the built-in guardrail policy."""
    client = await start_gateway(configured(settings, fleet))
    try:
        yield Gateway(client)
    finally:
        await client.close()


@pytest.fixture
async def admin(platform: Gateway) -> dict[str, str]:
    return await platform.user(Role.ADMIN, "root")


@pytest.fixture
async def rita(platform: Gateway) -> dict[str, str]:
    return await platform.user(Role.RESPONDER, "rita")


async def set_mode(gateway: Gateway, admin: dict[str, str], mode: str) -> None:
    response = await gateway.client.patch(
        "/api/v1/settings/runtime", headers=admin, json={"mode": mode}
    )
    assert response.status == 200, await response.json()


async def ingest(gateway: Gateway, headers: dict[str, str], lines: list[str]) -> None:
    """Ingest log lines through the API into the real log store, then rebuild the endpoint
    inventory (the hosts they name are enrolled with the lab connector)."""
    response = await gateway.client.post(
        "/api/v1/siem/logs/ingest",
        headers={**headers, "Content-Type": "application/x-ndjson"},
        data="\n".join(lines).encode(),
    )
    result = await response.json()
    assert response.status == 200, result
    assert result["accepted"] == len(lines), result
    await gateway.app[EDR].refresh()


async def detect(
    gateway: Gateway, admin: dict[str, str], sigma: str, start: str, end: str
) -> list[dict[str, Any]]:
    """Create the Sigma rule, run it over ``[start, end)`` raising alerts; its alerts."""
    created = await gateway.client.post(
        "/api/v1/detections/rules", headers=admin, json={"sigma": sigma}
    )
    rule = await created.json()
    assert created.status == 201, rule
    ran = await gateway.client.post(
        f"/api/v1/detections/rules/{rule['id']}/run",
        headers=admin,
        json={"start": start, "end": end, "mode": "backfill"},
    )
    run = await ran.json()
    assert ran.status == 200, run
    assert run["status"] == "succeeded", run
    listed = await gateway.client.get(
        "/api/v1/alerts", headers=admin, params={"rule_id": rule["id"], "limit": "500"}
    )
    page = await listed.json()
    assert page["total"] == run["alerts"], page
    return list(page["items"])


async def post_alert(gateway: Gateway, headers: dict[str, str], body: dict[str, Any]) -> str:
    response = await gateway.client.post("/api/v1/alerts", headers=headers, json=body)
    created = await response.json()
    assert response.status == 201, created
    return str(created["id"])


async def get(gateway: Gateway, headers: dict[str, str], path: str) -> Any:
    response = await gateway.client.get(path, headers=headers)
    body = await response.json()
    assert response.status == 200, body
    return body


async def execution(gateway: Gateway, headers: dict[str, str], execution_id: str) -> Any:
    page = await gateway.client.get(
        "/api/v1/soar/executions", headers=headers, params={"limit": "100"}
    )
    body = await page.json()
    assert page.status == 200, body
    found = [e for e in body["items"] if e["id"] == execution_id]
    assert found, body
    return found[0]


def log_of(found: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The step log by ``step`` or ``step#item``."""
    return {s["key"].split("/", 1)[1]: s for s in found["steps"]}


class Run:
    """One execution of a playbook through the API, driven to its end: each approval the
    guardrails ask for is decided over ``/ws/approvals`` as ``decisions`` says for its step."""

    def __init__(self, gateway: Gateway, headers: dict[str, str], ws: ClientWebSocketResponse):
        self.gateway, self.headers, self.ws = gateway, headers, ws
        self.asked: dict[str, dict[str, Any]] = {}
        """The approval requests pushed over the socket, by step key."""

    async def __call__(
        self, playbook: str, inputs: dict[str, Any], decisions: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        response = await self.gateway.client.post(
            f"{PLAYBOOKS}/{playbook}/execute", headers=self.headers, json={"inputs": inputs}
        )
        accepted = await response.json()
        assert response.status == 202, accepted
        found: dict[str, Any] = {}
        decided: set[str] = set()

        async def stopped() -> bool:
            found.clear()
            found.update(await execution(self.gateway, self.headers, accepted["id"]))
            if found["status"] in {"completed", "failed", "cancelled"}:
                return True
            waiting = {
                s["key"] for s in found["steps"] if s["status"] == "awaiting_approval"
            } - decided
            return found["status"] == "awaiting_approval" and bool(waiting)

        while True:
            await eventually(stopped, within=60)
            if found["status"] != "awaiting_approval":
                return found
            for step in found["steps"]:
                key = step["key"]
                if step["status"] != "awaiting_approval" or key in decided:
                    continue
                while key not in self.asked:
                    pushed = await next_of(self.ws, "approval_requested", within=30)
                    self.asked[str(pushed["approval_id"])] = pushed
                step_id = key.split("/", 1)[1].split("#", 1)[0]
                if decisions is None or step_id not in decisions:
                    pytest.fail(f"unexpected approval asked for {key}: {self.asked[key]}")
                await decide(self.ws, key, decisions[step_id], comment="checked on the console")
                answer = await next_of(self.ws, "decided")
                assert answer["approval"]["decided_by"] == "rita", answer
                decided.add(key)


async def ledger(gateway: Gateway, execution_id: str) -> dict[str, ResponseActionRecord]:
    """The execution's rows of the at-most-once action ledger, by step."""
    async with gateway.app[DATABASE].session() as db:
        rows = await db.scalars(
            select(ResponseActionRecord).where(
                ResponseActionRecord.investigation_id == execution_id
            )
        )
        return {row.key.split("/", 1)[1]: row for row in rows}


def dispatched(feed: Subscription) -> list[tuple[str, str]]:
    """The network and mail response actions published to the integrations."""
    return [(e.payload["action"], e.payload["target"]) for e in feed.drain()]


# -- phishing triage ---------------------------------------------------------------------------

PHISHING_ALERT = {
    "title": "Credential phishing: 'Mailbox storage full' with a sign-in link",
    "description": (
        "Mail gateway verdict phish (URL reputation): message from billing@evil.example.com "
        "to alice@corp.example, link hxxps://evil[.]example[.]com/owa/auth, sent through "
        f"{LISTED_IP}."
    ),
    "source": "mail-gateway",
    "severity": "high",
    "entities": [
        {"type": "url", "value": "hxxps://evil[.]example[.]com/owa/auth"},
        {"type": "ip", "value": LISTED_IP},
        {"type": "user", "value": "alice@corp.example"},
    ],
    # ECS email fields, as a mail gateway's event carries them
    "raw": {
        "event": {"kind": "alert", "category": ["email"], "action": "quarantine"},
        "email": {
            "from": {"address": ["billing@evil.example.com"]},
            "to": {"address": ["alice@corp.example"]},
            "subject": "Your mailbox is almost full",
            "message_id": "<20260501081500.3f2a@mail.evil.example.com>",
        },
        "source": {"ip": LISTED_IP},
    },
}


async def test_phishing_triage(
    platform: Gateway, admin: dict[str, str], rita: dict[str, str]
) -> None:
    feed = platform.app[BUS].subscribe("response.actions")
    alert_id = await post_alert(platform, rita, PHISHING_ALERT)
    async with approvals_ws(platform, rita) as ws:
        run = Run(platform, rita, ws)
        # dry_run (the platform's default mode): every step says what it would do, none does it
        rehearsal = await run("phishing-triage", {"alert_id": alert_id})
        assert (rehearsal["status"], rehearsal["mode"]) == ("completed", "dry_run"), rehearsal
        dry = log_of(rehearsal)
        assert dry["enrich"]["status"] == "succeeded"
        assert dry["enrich"]["output"]["malicious"] is True
        for step_id in ("verdict", "case", "notify"):
            assert dry[step_id]["status"] == "recorded", dry[step_id]
        assert dry["verdict"]["output"]["would"]["params"]["tags"] == [
            "phishing",
            "verdict:malicious",
        ]
        would_block = {k: s for k, s in dry.items() if k.startswith("block_")}
        assert would_block
        assert {s["status"] for s in would_block.values()} == {"recorded"}
        assert {s["guardrail"]["outcome"] for s in would_block.values()} == {"record_only"}
        assert run.asked == {}
        assert await ledger(platform, rehearsal["id"]) == {}
        assert dispatched(feed) == []
        untouched = await get(platform, rita, f"/api/v1/alerts/{alert_id}")
        assert untouched["tags"] == []
        assert untouched["case_id"] is None
        assert (await get(platform, rita, "/api/v1/cases"))["total"] == 0
        # active: the same alert, for real
        await set_mode(platform, admin, "active")
        found = await run(
            "phishing-triage", {"alert_id": alert_id}, decisions={"block_sender": "approve"}
        )
    assert (found["status"], found["mode"]) == ("completed", "active"), found
    log = log_of(found)
    enrich = log["enrich"]["output"]
    assert {(i["type"], i["value"]) for i in log["enrich"]["inputs"]["indicators"]} == {
        ("url", "https://evil.example.com/owa/auth"),  # the platform stores it refanged
        ("ip", LISTED_IP),
        ("email", "billing@evil.example.com"),
    }
    # the feed lists the address and the domain; the URL and the sender are unknown to it
    assert enrich["malicious_indicators"] == [
        {"type": "ip", "value": LISTED_IP},
        {"type": "domain", "value": LISTED_DOMAIN},
    ]
    assert log["verdict"]["output"]["added"] == ["phishing", "verdict:malicious"]
    case_id = log["case"]["output"]["case_id"]
    # Each block runs without a human: the threat-intel specialist's finding in the enrich
    # step corroborates its target (the sender through its listed domain).
    blocks = {k: s for k, s in log.items() if k.startswith("block_")}
    assert {k: s["inputs"]["value"] for k, s in blocks.items()} == {
        "block_domains#0": LISTED_DOMAIN,
        "block_addresses#0": LISTED_IP,
        "block_sender#0": "billing@evil.example.com",
    }
    for key, step in blocks.items():
        assert step["status"] == "succeeded", (key, step)
        assert (step["guardrail"]["decision"], step["guardrail"]["outcome"]) == (
            "allow",
            "execute",
        ), key
        assert [(c["agent"], c["value"]) for c in step["guardrail"]["corroborated_by"]] == [
            ("threat_intel", LISTED_IP if key == "block_addresses#0" else LISTED_DOMAIN)
        ], key
    assert "block_urls" not in {s["step_id"] for s in found["steps"]}  # an empty loop
    assert run.asked == {}
    assert log["notify"]["status"] == "succeeded"
    assert f"Case: {case_id}." in log["notify"]["inputs"]["message"]
    # what happened in the platform
    alert = await get(platform, rita, f"/api/v1/alerts/{alert_id}")
    assert set(alert["tags"]) == {"phishing", "verdict:malicious"}
    assert alert["case_id"] == case_id
    case = await get(platform, rita, f"/api/v1/cases/{case_id}")
    assert (case["severity"], set(case["tags"]) >= {"phishing", "attack:t1566"}) == ("high", True)
    observables = await get(platform, rita, f"/api/v1/cases/{case_id}/observables")
    held = {(o["type"], o["value"]) for o in observables["items"]}
    assert ("ip", LISTED_IP) in held
    assert any(o["ioc"] for o in observables["items"] if o["value"] == LISTED_IP)
    assert dispatched(feed) == [
        ("block_domain", LISTED_DOMAIN),
        ("block_ip", LISTED_IP),
        ("block_sender", "billing@evil.example.com"),
    ]
    feed.close()
    rows = await ledger(platform, found["id"])
    assert sorted(rows) == sorted(["verdict", "case", *blocks, "notify"])
    assert {r.status for r in rows.values()} == {"executed"}


# -- malware containment -----------------------------------------------------------------------

INFECTED = "ws-17.corp.example"
SAMPLE_SHA256 = "5f2b7f8e0a1c3d4e6b9a8c7d2e1f0a3b4c5d6e7f8091a2b3c4d5e6f708192a3b"


def sysmon(event_id: int, minutes_ago: int, **fields: Any) -> str:
    """A Sysmon event of the infected host, as Winlogbeat ships it."""
    return json.dumps(
        {
            "EventID": event_id,
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": INFECTED,
            "TimeCreated": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
            **fields,
        }
    )


SAMPLE = "C:\\Users\\bob\\AppData\\Local\\Temp\\invoice_0425.exe"
HOST_LOGS = [
    sysmon(
        1,
        12,
        Image=SAMPLE,
        CommandLine=f'"{SAMPLE}"',
        ParentImage="C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
        User="CORP\\bob",
        Hashes=f"SHA256={SAMPLE_SHA256.upper()}",
    ),
    sysmon(
        3,
        11,
        Image=SAMPLE,
        User="CORP\\bob",
        Protocol="tcp",
        SourceIp="10.1.4.17",
        SourcePort=50213,
        DestinationIp=LISTED_IP,
        DestinationPort=443,
    ),
]
MALWARE_ALERT = {
    "title": "Trojan:Win32/AgentTesla!ml detected and not remediated",
    "description": (
        f"Defender detected {SAMPLE} (launched by OUTLOOK.EXE) on {INFECTED}; the process "
        f"connected to {LISTED_IP}:443. Remediation failed: the file is in use."
    ),
    "source": "edr",
    "severity": "high",
    "entities": [
        {"type": "host", "value": INFECTED},
        {"type": "user", "value": "bob"},
        {"type": "hash", "value": SAMPLE_SHA256},
        {"type": "ip", "value": LISTED_IP},
    ],
    # ECS fields of the endpoint alert
    "raw": {
        "event": {"kind": "alert", "category": ["malware"], "action": "detection"},
        "host": {"name": INFECTED, "ip": ["10.1.4.17"], "os": {"family": "windows"}},
        "file": {"path": SAMPLE, "hash": {"sha256": SAMPLE_SHA256}},
        "process": {"parent": {"name": "OUTLOOK.EXE"}, "executable": SAMPLE},
        "threat": {"indicator": {"ip": LISTED_IP}},
        "rule": {"name": "Trojan:Win32/AgentTesla!ml"},
    },
}


async def test_malware_containment(
    platform: Gateway, admin: dict[str, str], rita: dict[str, str]
) -> None:
    await ingest(platform, admin, HOST_LOGS)
    assert [e.event for e in lab(platform).audit(INFECTED)] == ["enrol"]
    alert_id = await post_alert(platform, rita, MALWARE_ALERT)
    await set_mode(platform, admin, "active")
    async with approvals_ws(platform, rita) as ws:
        run = Run(platform, rita, ws)
        found = await run("malware-containment", {"alert_id": alert_id}, {"isolate": "approve"})
    assert (found["status"], found["mode"]) == ("completed", "active"), found
    log = log_of(found)
    enrich = log["enrich"]["output"]
    assert enrich["malicious"] is True
    assert enrich["malicious_indicators"] == [{"type": "ip", "value": LISTED_IP}]
    verdicts = {(v["type"], v["value"]): v["severity"] for v in enrich["verdicts"]}
    assert verdicts[("hash", SAMPLE_SHA256)] not in {"high", "critical"}  # no feed lists it
    case_id = log["case"]["output"]["case_id"]
    # The alert alone names the host (attacker-writable data): a human approved isolating it.
    isolate = log["isolate#0"]
    assert isolate["inputs"]["host"] == INFECTED
    assert (isolate["guardrail"]["decision"], isolate["guardrail"]["outcome"]) == (
        "require_approval",
        "await_approval",
    )
    assert run.asked[isolate["key"]]["action"] == "isolate_host"
    assert run.asked[isolate["key"]]["target"] == INFECTED
    assert isolate["status"] == "succeeded", isolate
    assert (isolate["output"]["hostname"], isolate["output"]["connector"]) == ("ws-17", "lab")
    # a scan cuts nothing off: allowed at once
    scan = log["scan#0"]
    assert scan["status"] == "succeeded", scan
    assert scan["guardrail"]["decision"] == "allow"
    assert set(run.asked) == {isolate["key"]}
    assert log["note"]["status"] == "succeeded"
    assert log["notify"]["inputs"]["data"] == {
        "alert_id": alert_id,
        "case_id": case_id,
        "isolation": "succeeded",
    }
    # what happened in the platform
    assert lab_events(platform, INFECTED, "isolate") == 1
    assert lab_events(platform, INFECTED, "scan") == 1
    endpoint = await get(
        platform, rita, f"/api/v1/edr/endpoints/{isolate['output']['endpoint_id']}"
    )
    assert endpoint["state"] == "isolated"
    case = await get(platform, rita, f"/api/v1/cases/{case_id}")
    assert (case["severity"], {"malware", "containment"} <= set(case["tags"])) == ("critical", True)
    observables = await get(platform, rita, f"/api/v1/cases/{case_id}/observables")
    held = {(o["type"], o["value"]): o for o in observables["items"]}
    assert held[("ip", LISTED_IP)]["ioc"] is True
    assert ("hash", SAMPLE_SHA256) in held  # carried from the alert
    comments = await get(platform, rita, f"/api/v1/cases/{case_id}/comments")
    [note] = [c["body"] for c in comments["items"]]
    assert f"Malicious: {LISTED_IP}." in note
    assert "Isolation: ws-17." in note
    assert "Scan: ws-17." in note
    rows = await ledger(platform, found["id"])
    assert rows["isolate#0"].approved_by == "rita"
    assert {r.status for r in rows.values()} == {"executed"}


# -- brute force / password spray response ----------------------------------------------------


async def test_brute_force_response(
    platform: Gateway, admin: dict[str, str], rita: dict[str, str]
) -> None:
    lines = [line for line in shared(BRUTE_FORCE).read_text().splitlines() if line.strip()]
    await ingest(platform, admin, lines)
    alerts = await detect(
        platform, admin, KERBEROS_RULE, "2021-12-02T14:00:00Z", "2021-12-02T16:00:00Z"
    )
    assert len(alerts) == 54  # one per failed pre-authentication
    # the alert the detection raised on the last failure of the burst
    last = max(alerts, key=lambda a: str(a["last_seen"]))
    entities = {(e["type"], e["value"]) for e in last["entities"]}
    assert {("host", "rootdc1.offsec.lan"), ("ip", "10.23.123.11")} <= entities
    feed = platform.app[BUS].subscribe("response.actions")
    await set_mode(platform, admin, "active")
    async with approvals_ws(platform, rita) as ws:
        run = Run(platform, rita, ws)
        found = await run("brute-force-response", {"alert_id": last["id"]}, {"block": "approve"})
    assert (found["status"], found["mode"]) == ("completed", "active"), found
    log = log_of(found)
    assert log["failures"]["status"] == "succeeded"
    assert log["failures"]["output"]["count"] == 54
    assert log["failures"]["output"]["more"] is False
    assert log["successes"]["output"]["count"] == 0
    assert log["case"]["inputs"]["severity"] == "high"  # no logon succeeded
    case_id = log["case"]["output"]["case_id"]
    # A private address only the logs name: the guardrails ask a human before blocking it.
    block = log["block#0"]
    assert block["inputs"]["value"] == "10.23.123.11"
    assert block["inputs"]["reason"].startswith("54 failed logon(s) from this source")
    assert block["guardrail"]["decision"] == "require_approval"
    assert block["status"] == "succeeded", block
    assert set(run.asked) == {block["key"]}
    assert dispatched(feed) == [("block_ip", "10.23.123.11")]
    feed.close()
    comment = log["accounts"]["inputs"]["comment"]
    assert "Failed logons found: 54." in comment
    assert "Accounts targeted: admin-hacker." in comment
    assert "revoke their sessions): none." in comment
    assert log["notify"]["inputs"]["severity"] == "high"
    assert log["notify"]["inputs"]["data"]["compromised"] == []
    # what happened in the platform
    alert = await get(platform, rita, f"/api/v1/alerts/{last['id']}")
    assert alert["case_id"] == case_id
    case = await get(platform, rita, f"/api/v1/cases/{case_id}")
    assert case["status"] == "in_progress"
    assert {"brute-force", "attack:t1110"} <= set(case["tags"])
    observables = await get(platform, rita, f"/api/v1/cases/{case_id}/observables")
    held = {(o["type"], o["value"]): o for o in observables["items"]}
    assert held[("user", "admin-hacker")]["sighted"] is True
    assert ("ip", "10.23.123.11") in held
    rows = await ledger(platform, found["id"])
    assert rows["block#0"].approved_by == "rita"
    assert {r.status for r in rows.values()} == {"executed"}


# -- suspicious PowerShell --------------------------------------------------------------------


async def test_suspicious_powershell(
    platform: Gateway, admin: dict[str, str], rita: dict[str, str]
) -> None:
    lines = [line for line in shared(POWERSHELL).read_text().splitlines() if line.strip()]
    await ingest(platform, admin, lines)
    [alert] = await detect(
        platform, admin, DOWNLOAD_RULE, "2022-01-24T19:00:00Z", "2022-01-24T21:00:00Z"
    )
    host = "fs03vuln.offsec.lan"
    assert ("host", host) in {(e["type"], e["value"]) for e in alert["entities"]}
    feed = platform.app[BUS].subscribe("response.actions")
    await set_mode(platform, admin, "active")
    async with approvals_ws(platform, rita) as ws:
        run = Run(platform, rita, ws)
        found = await run(
            "suspicious-powershell", {"alert_id": alert["id"]}, {"isolate": "approve"}
        )
    assert (found["status"], found["mode"]) == ("completed", "active"), found
    log = log_of(found)
    # the script block, read whole from the log event the alert was raised on
    assert log["event"]["status"] == "succeeded", log["event"]
    assert log["event"]["output"]["count"] == 1
    script = log["analyse"]["inputs"]["params"]["command_lines"][0]
    assert "downloadString('https://miro.medium.com/" in script
    analysis = log["analyse"]["output"]["result"]
    assert analysis["agent"] == "malware"
    assert analysis["severity"] in {"high", "critical"}
    assert log["verdict"]["output"]["added"] == ["powershell", "verdict:malicious"]
    scan = log["scan#0"]
    assert (scan["status"], scan["guardrail"]["decision"]) == ("succeeded", "allow")
    case_id = log["case"]["output"]["case_id"]
    isolate = log["isolate#0"]
    assert isolate["guardrail"]["decision"] == "require_approval"
    assert run.asked[isolate["key"]]["target"] == host
    assert isolate["status"] == "succeeded", isolate
    assert set(run.asked) == {isolate["key"]}
    assert log["notify"]["inputs"]["title"] == f"Suspicious PowerShell on {host}"
    # what happened in the platform
    assert lab_events(platform, host, "isolate") == 1
    assert lab_events(platform, host, "scan") == 1
    tagged = await get(platform, rita, f"/api/v1/alerts/{alert['id']}")
    assert {"powershell", "verdict:malicious"} <= set(tagged["tags"])
    assert tagged["case_id"] == case_id
    case = await get(platform, rita, f"/api/v1/cases/{case_id}")
    assert {"powershell", "attack:t1059.001"} <= set(case["tags"])
    observables = await get(platform, rita, f"/api/v1/cases/{case_id}/observables")
    assert ("host", host) in {(o["type"], o["value"]) for o in observables["items"]}
    rows = await ledger(platform, found["id"])
    assert rows["isolate#0"].approved_by == "rita"
    assert {r.status for r in rows.values()} == {"executed"}
    assert dispatched(feed) == []  # nothing the intelligence judged malicious to block
    feed.close()
