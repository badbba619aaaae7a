"""An agent is credited only with what it found: the techniques a request's free text describes
are reported as ``context_techniques`` evidence, never as the finding's techniques, by every
specialist that reads a context (in process, over ACP, built-in analysis)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agents.endpoint.agent import Endpoint
from agents.hunter.agent import Hunter
from agents.malware.agent import Malware
from agents.network.agent import Network
from agents.runtime.specialist import AgentDeps, Specialist, build_server
from agents.threat_intel.agent import ThreatIntel
from core.settings import Settings
from tools.attack import AttackKB

RANSOMWARE = (
    "The ransomware encrypted the file shares for impact and deleted the volume shadow copies "
    "with vssadmin to inhibit system recovery, after dumping credentials from LSASS memory."
)
"""A report's text: several techniques, none of them observed by anyone."""


@pytest.fixture(scope="module")
def attack() -> AttackKB:
    return AttackKB.load()


@pytest.fixture(scope="module")
def described(attack: AttackKB) -> list[str]:
    """What the context maps to (the specialists' own mapping of it)."""
    found = [str(m[0]) for m in attack.map_text(RANSOMWARE, limit=3, min_score=0.0)]
    assert found  # the text is about techniques, or the tests below prove nothing
    return found


async def ask(specialist: Specialist, params: dict[str, Any]) -> dict[str, Any]:
    server = build_server(specialist, specialist.deps.settings, None)
    frame = {"jsonrpc": "2.0", "method": specialist.method, "params": params, "id": 1}
    raw = await server.dispatch(json.dumps(frame))
    assert raw is not None  # a request with an id is answered
    reply: dict[str, Any] = json.loads(raw)
    assert "result" in reply, reply
    result: dict[str, Any] = reply["result"]
    return result


@pytest.fixture
async def hunter(tmp_path: Path, attack: AttackKB) -> AsyncIterator[Hunter]:
    """The hunter against a log search (over HTTP, on a real port) whose logs hold nothing."""

    async def no_events(request: web.Request) -> web.Response:
        return web.json_response({"items": []})

    app = web.Application()
    app.router.add_get("/api/v1/siem/logs", no_events)
    async with TestServer(app) as logs:
        settings = Settings(data_dir=tmp_path, gateway_url=str(logs.make_url("/")))
        agent = Hunter(AgentDeps(settings=settings, attack=attack))
        try:
            yield agent
        finally:
            await agent.stop()


@pytest.fixture
async def threat_intel(tmp_path: Path, attack: AttackKB) -> AsyncIterator[ThreatIntel]:
    agent = ThreatIntel(AgentDeps(settings=Settings(data_dir=tmp_path), attack=attack))
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


def context_techniques(result: dict[str, Any]) -> list[str]:
    (entry,) = [e for e in result["evidence"] if e["kind"] == "context_techniques"]
    assert entry["ref"] == "context"
    return str(entry["summary"]).split(", ")


async def test_the_hunter_with_no_events_credits_no_technique(
    hunter: Hunter, described: list[str]
) -> None:
    params = {
        "hosts": ["fs-01"],
        "iocs": [{"type": "ip", "value": "45.33.32.156"}],
        "hypothesis": "ransomware staging on the file servers",
        "context": RANSOMWARE,
    }
    result = await ask(hunter, params)
    assert "0 event(s)" in result["summary"]
    assert result["mitre_techniques"] == []
    assert result["severity"] == "informational"
    assert set(context_techniques(result)) & set(described)


async def test_the_network_agent_with_no_telemetry_credits_no_technique(
    tmp_path: Path, attack: AttackKB, described: list[str]
) -> None:
    agent = Network(AgentDeps(settings=Settings(data_dir=tmp_path), attack=attack))
    result = await ask(agent, {"context": RANSOMWARE})
    assert "nothing can be concluded" in result["summary"]
    assert result["mitre_techniques"] == []
    assert not set(described) & set(result["summary"].replace(",", " ").replace(".", " ").split())
    assert set(context_techniques(result)) & set(described)


async def test_the_network_agent_credits_its_detections_only(
    tmp_path: Path, attack: AttackKB
) -> None:
    agent = Network(AgentDeps(settings=Settings(data_dir=tmp_path), attack=attack))
    scan = [
        {"ts": 1_700_000_000 + p, "src_ip": "203.0.113.9", "dst_ip": "10.0.0.5", "dst_port": p}
        for p in range(20, 120)
    ]
    result = await ask(agent, {"flows": scan, "context": RANSOMWARE})
    assert result["mitre_techniques"]  # the scan's
    assert not set(result["mitre_techniques"]) & set(context_techniques(result))


async def test_threat_intel_without_intelligence_credits_no_technique(
    threat_intel: ThreatIntel, described: list[str]
) -> None:
    result = await ask(
        threat_intel, {"iocs": [{"type": "ip", "value": "45.33.32.156"}], "context": RANSOMWARE}
    )
    assert result["mitre_techniques"] == []
    assert result["corroborations"] == []
    assert set(context_techniques(result)) & set(described)


async def test_malware_credits_its_rules_and_not_the_context(
    tmp_path: Path, attack: AttackKB
) -> None:
    agent = Malware(AgentDeps(settings=Settings(data_dir=tmp_path), attack=attack))
    result = await ask(
        agent,
        {"command_lines": ["vssadmin.exe delete shadows /all /quiet"], "context": RANSOMWARE},
    )
    assert "T1490" in result["mitre_techniques"]  # observed: the rule fired on the command line
    assert "T1486" not in result["mitre_techniques"]  # only the text speaks of encryption
    assert context_techniques(result)  # reported, apart


async def test_the_endpoint_agent_with_no_events_credits_no_technique(
    tmp_path: Path, attack: AttackKB, described: list[str]
) -> None:
    agent = Endpoint(AgentDeps(settings=Settings(data_dir=tmp_path), attack=attack))
    result = await ask(agent, {"host": {"hostname": "fs-01"}, "context": RANSOMWARE})
    assert result["mitre_techniques"] == []
    assert set(context_techniques(result)) & set(described)
