"""The hunter against a live gateway: its log searches go through the API with a platform-signed
agent token (read-only), and its finding scopes the sightings across hosts and accounts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.acp.server import AgentServer
from agents.hunter.agent import Hunter, ioc_query
from agents.runtime.specialist import AgentDeps, build_server
from core.security.permissions import Role
from core.settings import Settings
from tests.agents.network.conftest import rpc
from tests.conftest import Gateway, make_settings, start_gateway
from tools.attack import AttackKB

SECRET = "hunter-test-secret-hunter-test-secret-0123456789"
NOW = datetime.now(UTC).replace(microsecond=0)


def sysmon(minutes_ago: int, host: str, code: int, **data: Any) -> dict[str, Any]:
    return {
        "EventID": code,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": host,
        "TimeCreated": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
        **data,
    }


EVENTS = [
    sysmon(
        50,
        "ws-17",
        3,
        Image="C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        User="CORP\\alice",
        SourceIp="10.1.2.3",
        SourcePort=50123,
        DestinationIp="45.33.32.156",
        DestinationPort=443,
        Protocol="tcp",
    ),
    sysmon(
        40,
        "build-01",
        3,
        Image="C:\\Tools\\curl.exe",
        User="CORP\\svc_build",
        SourceIp="10.1.9.9",
        SourcePort=50999,
        DestinationIp="45.33.32.156",
        DestinationPort=443,
        Protocol="tcp",
    ),
    sysmon(
        30,
        "ws-18",
        22,
        Image="C:\\Program Files\\Browser\\browser.exe",
        User="CORP\\bob",
        QueryName="updates-msft.net",
    ),
    sysmon(
        20,
        "ws-17",
        1,
        Image="C:\\Windows\\System32\\cmd.exe",
        CommandLine="cmd /c whoami",
        User="CORP\\alice",
        ProcessId=4242,
    ),
    sysmon(
        10,
        "ws-18",
        1,
        Image="C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        CommandLine="powershell -c iwr https://login.microsoftonline.com/common/oauth2/token",
        User="CORP\\bob",
        ProcessId=5151,
    ),
]


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    configured = make_settings(
        settings.data_dir, settings.effective_database_url, jwt_secret=SECRET
    )
    client = await start_gateway(configured)
    try:
        gateway = Gateway(client)
        admin = await gateway.user(Role.ADMIN, "root")
        response = await client.post(
            "/api/v1/siem/logs/ingest",
            headers={**admin, "Content-Type": "application/x-ndjson"},
            data="\n".join(json.dumps(e) for e in EVENTS),
        )
        assert (await response.json())["accepted"] == len(EVENTS)
        yield gateway
    finally:
        await client.close()


def hunter_server(gateway_url: str, tmp_path: Path) -> tuple[Hunter, AgentServer]:
    settings = Settings(data_dir=tmp_path / "hunter", jwt_secret=SECRET, gateway_url=gateway_url)  # type: ignore[arg-type]
    hunter = Hunter(AgentDeps(settings=settings, attack=AttackKB.load()))
    return hunter, build_server(hunter, settings, None)


async def test_sightings_are_scoped_across_hosts_and_accounts(
    gateway: Gateway, tmp_path: Path
) -> None:
    hunter, server = hunter_server(str(gateway.client.make_url("")), tmp_path)
    try:
        reply = await rpc(
            server,
            {
                "iocs": [
                    {"type": "ip", "value": "45.33.32[.]156"},
                    {"type": "domain", "value": "updates-msft.net"},
                    {
                        "type": "hash",
                        "value": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                    },
                ],
                "users": ["alice"],
                "hypothesis": "the attacker used PowerShell to reach a command and control server",
            },
            method="hunt_threats",
        )
    finally:
        await hunter.stop()
    finding = reply["result"]
    assert finding["severity"] == "high"  # the address was seen from two hosts
    assert finding["confidence"] == pytest.approx(0.75)
    assert {(i["type"], i["value"]) for i in finding["iocs"]} == {
        ("ip", "45.33.32.156"),
        ("domain", "updates-msft.net"),
    }
    assert {(a["action"], a["target"]) for a in finding["recommended_actions"]} >= {
        ("collect_triage", "ws-17"),
        ("collect_triage", "build-01"),
        ("collect_triage", "ws-18"),
        ("watchlist", "45.33.32.156"),
    }
    searches = [e for e in finding["evidence"] if e["kind"] == "tool_call"]
    assert [e["ref"] for e in searches].count("search_logs") == 4  # 3 indicators + 1 account
    scope = next(e for e in finding["evidence"] if e["kind"] == "scope")
    assert scope["ref"] == "user.name:alice"
    assert scope["summary"].startswith("2 event(s)")
    assert "ws-17" in scope["summary"]
    assert "3 of 3 indicator(s)" not in finding["summary"]
    assert "2 of 3 indicator(s) appear in the logs" in finding["summary"]


async def test_only_a_sighting_in_a_field_of_its_own_corroborates(
    gateway: Gateway, tmp_path: Path
) -> None:
    hunter, server = hunter_server(str(gateway.client.make_url("")), tmp_path)
    try:
        reply = await rpc(
            server,
            {
                "iocs": [
                    {"type": "ip", "value": "45.33.32.156"},
                    {"type": "domain", "value": "login.microsoftonline.com"},
                ]
            },
            method="hunt_threats",
        )
    finally:
        await hunter.stop()
    finding = reply["result"]
    # both are in the logs ...
    assert {i["value"] for i in finding["iocs"]} == {"45.33.32.156", "login.microsoftonline.com"}
    # ... but only the address as a connection's destination: the domain is only written in a
    # command line, which the attacker controls
    [seen] = finding["corroborations"]
    assert (seen["type"], seen["value"], seen["kind"]) == ("ip", "45.33.32.156", "telemetry")
    assert seen["detail"].startswith("destination.ip in 2 event(s) on build-01, ws-17")
    watch = next(a for a in finding["recommended_actions"] if a["action"] == "watchlist")
    assert watch["provenance"] == [{"kind": "telemetry", "ref": "search_logs"}]


async def test_the_agent_token_reads_and_never_writes(gateway: Gateway, tmp_path: Path) -> None:
    hunter, _ = hunter_server(str(gateway.client.make_url("")), tmp_path)
    token = hunter._agent_token()
    headers = {"Authorization": f"Bearer {token}"}
    read = await gateway.client.get("/api/v1/siem/logs", headers=headers)
    assert read.status == 200
    me = await (await gateway.client.get("/api/v1/users/me", headers=headers)).json()
    assert (me["username"], me["role"]) == ("agent:hunter", "service_agent")
    write = await gateway.client.post(
        "/api/v1/siem/logs/ingest",
        headers={**headers, "Content-Type": "application/x-ndjson"},
        data=json.dumps(EVENTS[0]),
    )
    assert (write.status, (await write.json())["error"]["code"]) == (403, "AURORA-4030")
    forged = await gateway.client.get(
        "/api/v1/siem/logs", headers={"Authorization": f"Bearer {token[:-4]}AAAA"}
    )
    assert forged.status == 401
    await hunter.stop()


async def test_an_unreachable_gateway_is_said_not_hidden(tmp_path: Path) -> None:
    hunter, server = hunter_server("http://127.0.0.1:9", tmp_path)
    try:
        reply = await rpc(
            server, {"iocs": [{"type": "ip", "value": "45.33.32.156"}]}, method="hunt_threats"
        )
    finally:
        await hunter.stop()
    finding = reply["result"]
    assert finding["severity"] == "informational"
    assert finding["confidence"] == pytest.approx(0.3)
    assert any(e["kind"] == "unreachable" for e in finding["evidence"])
    assert "could not run" in finding["summary"]


async def test_bad_requests_are_refused(tmp_path: Path) -> None:
    hunter, server = hunter_server("http://127.0.0.1:9", tmp_path)
    try:
        for params in ({}, {"hosts": [""]}, {"iocs": [], "users": []}, {"hosts": ["a"], "x": 1}):
            reply = await rpc(server, params, method="hunt_threats")
            assert reply["error"]["code"] == -32602, params
    finally:
        await hunter.stop()


def test_queries_quote_what_they_are_given() -> None:
    assert ioc_query("ip", "10.0.0.1") == (
        'source.ip:"10.0.0.1" OR destination.ip:"10.0.0.1" OR host.ip:"10.0.0.1"'
    )
    assert ioc_query("url", 'http://x/"a"') == '"http://x/\\"a\\""'
    assert ioc_query("cve", "CVE-2021-44228") is None
