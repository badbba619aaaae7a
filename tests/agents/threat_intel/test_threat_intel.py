"""threat_intel: the spec's analyze_threat example on real indicators, feeds, reputation, LLM."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from agents.runtime.specialist import AgentDeps, build_server
from agents.threat_intel.agent import ThreatIntel
from core.llm import LLMBackend
from core.settings import Settings
from tests.fakes.intel_apis import FakeVirusTotal
from tests.fakes.openai_server import ScriptedOpenAI
from tools.attack import AttackKB

SPEC_REQUEST = {
    "jsonrpc": "2.0",
    "method": "analyze_threat",
    "params": {"alert_id": "ALRT-2026-05821", "iocs": [{"type": "ip", "value": "45.33.32.156"}]},
    "id": "req-001",
}

# A STIX 2.1 bundle as a CTI provider ships one: the IP and a domain indicate a phishing
# campaign's infrastructure (attack-pattern T1566.001).
FEED = {
    "type": "bundle",
    "id": "bundle--8e1a2b9c-0d7e-4b8a-9c3d-1f2e3a4b5c6d",
    "objects": [
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--11111111-1111-4111-8111-111111111111",
            "created": "2026-05-01T00:00:00.000Z",
            "modified": "2026-05-01T00:00:00.000Z",
            "name": "Phishing delivery server",
            "pattern_type": "stix",
            "pattern": "[ipv4-addr:value = '45.33.32.156']",
            "valid_from": "2026-05-01T00:00:00Z",
            "confidence": 85,
            "labels": ["malicious-activity"],
        },
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--22222222-2222-4222-8222-222222222222",
            "created": "2026-05-01T00:00:00.000Z",
            "modified": "2026-05-01T00:00:00.000Z",
            "name": "Phishing landing domain",
            "pattern_type": "stix",
            "pattern": "[domain-name:value = 'evil.example.com']",
            "valid_from": "2026-05-01T00:00:00Z",
            "confidence": 90,
        },
        {
            "type": "attack-pattern",
            "spec_version": "2.1",
            "id": "attack-pattern--33333333-3333-4333-8333-333333333333",
            "created": "2026-05-01T00:00:00.000Z",
            "modified": "2026-05-01T00:00:00.000Z",
            "name": "Spearphishing Attachment",
            "external_references": [{"source_name": "mitre-attack", "external_id": "T1566.001"}],
        },
        *[
            {
                "type": "relationship",
                "spec_version": "2.1",
                "id": f"relationship--4444444{n}-4444-4444-8444-444444444444",
                "created": "2026-05-01T00:00:00.000Z",
                "modified": "2026-05-01T00:00:00.000Z",
                "relationship_type": "indicates",
                "source_ref": source,
                "target_ref": "attack-pattern--33333333-3333-4333-8333-333333333333",
            }
            for n, source in enumerate(
                [
                    "indicator--11111111-1111-4111-8111-111111111111",
                    "indicator--22222222-2222-4222-8222-222222222222",
                ]
            )
        ],
    ],
}


@pytest.fixture(scope="module")
def attack() -> AttackKB:
    return AttackKB.load()


async def serve(settings: Settings, attack: AttackKB, llm: LLMBackend | None = None) -> Any:
    specialist = ThreatIntel(AgentDeps(settings=settings, attack=attack, llm=llm))
    await specialist.start()
    return specialist, build_server(specialist, settings, None)


@pytest.fixture
async def with_feed(tmp_path: Path, attack: AttackKB) -> AsyncIterator[Any]:
    feed = tmp_path / "campaign.json"
    feed.write_text(json.dumps(FEED))
    settings = Settings(data_dir=tmp_path / "data", intel_feeds=[feed])
    specialist, server = await serve(settings, attack)
    try:
        yield server
    finally:
        await specialist.stop()


async def ask(server: Any, params: dict[str, Any]) -> dict[str, Any]:
    frame = {"jsonrpc": "2.0", "method": "analyze_threat", "params": params, "id": 1}
    reply: dict[str, Any] = json.loads(await server.dispatch(json.dumps(frame)))
    return reply


async def test_spec_example_request_and_response(with_feed: Any) -> None:
    reply = json.loads(await with_feed.dispatch(json.dumps(SPEC_REQUEST)))
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == "req-001"
    result = reply["result"]
    # The fields of the spec's example response, with values from the feed.
    assert result["severity"] == "high"
    assert 0.8 <= result["confidence"] <= 0.9
    assert result["mitre_techniques"] == ["T1566.001"]
    assert result["iocs"] == [{"type": "ip", "value": "45.33.32.156", "subtype": "ipv4"}]
    assert result["agent"] == "threat_intel"
    assert result["backend"] == "builtin"
    assert result["degraded"] is False
    assert [a["action"] for a in result["recommended_actions"]] == ["block_ip"]
    assert "campaign" in result["recommended_actions"][0]["reason"]
    verdicts = [e for e in result["evidence"] if e["kind"] == "indicator_verdict"]
    assert verdicts[0]["ref"] == "ip:45.33.32.156"
    # the exact listing corroborates the address, and the action says where it came from
    assert result["corroborations"] == [
        {
            "type": "ip",
            "value": "45.33.32.156",
            "kind": "threat_intel",
            "source": "campaign",
            "detail": "listed high, confidence 85",
        }
    ]
    assert result["recommended_actions"][0]["provenance"] == [
        {"kind": "threat_intel", "ref": "campaign"},
        {"kind": "alert_field", "ref": "iocs"},
    ]


async def test_indicators_in_context_are_found_defanged(with_feed: Any) -> None:
    result = (
        await ask(
            with_feed,
            {
                "iocs": [],
                "context": "User clicked hxxps://evil[.]example[.]com/login from a phishing email",
            },
        )
    )["result"]
    values = {(i["type"], i["value"]) for i in result["iocs"]}
    assert ("domain", "evil.example.com") in values
    assert result["severity"] == "high"
    assert "T1566.001" in result["mitre_techniques"]
    assert [(c["value"], c["kind"]) for c in result["corroborations"]] == [
        ("evil.example.com", "threat_intel")
    ]
    assert {"kind": "text", "ref": "context"} in result["recommended_actions"][0]["provenance"]


async def test_only_an_exact_listing_corroborates(with_feed: Any) -> None:
    result = (
        await ask(with_feed, {"iocs": [{"type": "domain", "value": "login.evil.example.com"}]})
    )["result"]
    assert result["severity"] == "high"  # the parent domain is listed: still worth blocking
    assert result["recommended_actions"][0]["target"] == "login.evil.example.com"
    assert result["corroborations"] == []  # but not by itself: a human decides


async def test_unknown_private_and_invalid_indicators(with_feed: Any) -> None:
    result = (
        await ask(
            with_feed,
            {
                "iocs": [
                    {"type": "ip", "value": "185.220.101.4"},
                    {"type": "ip", "value": "10.1.2.3"},
                    {"type": "ip", "value": "999.1.1.1"},
                    {"type": "sha256", "value": "abc"},
                ]
            },
        )
    )["result"]
    assert result["severity"] == "low"
    assert result["confidence"] == 0.3
    assert result["recommended_actions"] == []
    kinds = {e["kind"]: e for e in result["evidence"]}
    assert "999.1.1.1" in kinds["rejected_iocs"]["summary"]
    assert "abc" in kinds["rejected_iocs"]["summary"]
    private = next(e for e in result["evidence"] if e["ref"] == "ip:10.1.2.3")
    assert private["summary"].startswith("informational: private address")


async def test_bad_params_are_refused(with_feed: Any) -> None:
    for params in (
        {},
        {"iocs": [{"type": "ip"}]},
        {"iocs": [], "context": "  "},
        {"iocs": [{"type": "ip", "value": "1.2.3.4"}], "surprise": 1},
    ):
        reply = await ask(with_feed, params)
        assert reply["error"]["code"] == -32602, params


async def test_reputation_services(tmp_path: Path, attack: AttackKB) -> None:
    async with FakeVirusTotal(api_key="vt-key") as vt:
        vt.add_ip("185.220.101.66", malicious=14, suspicious=1, harmless=50, undetected=10)
        settings = Settings(
            data_dir=tmp_path, virustotal_api_key=SecretStr("vt-key"), virustotal_url=vt.base_url
        )
        specialist, server = await serve(settings, attack)
        try:
            result = await ask(
                server,
                {
                    "iocs": [
                        {"type": "ip", "value": "185.220.101.66"},
                        {"type": "ip", "value": "185.220.101.67"},
                    ]
                },
            )
        finally:
            await specialist.stop()
    finding = result["result"]
    assert finding["severity"] == "high"
    assert finding["recommended_actions"][0]["target"] == "185.220.101.66"
    assert "virustotal: malicious" in finding["recommended_actions"][0]["reason"]
    assert [(c["value"], c["kind"], c["source"]) for c in finding["corroborations"]] == [
        ("185.220.101.66", "reputation", "virustotal")
    ]
    assert [r.path for r in vt.requests] == [
        "/api/v3/ip_addresses/185.220.101.66",
        "/api/v3/ip_addresses/185.220.101.67",
    ]


async def test_llm_path_and_fallback(tmp_path: Path, attack: AttackKB) -> None:
    feed = tmp_path / "campaign.json"
    feed.write_text(json.dumps(FEED))
    settings = Settings(data_dir=tmp_path, intel_feeds=[feed])
    async with ScriptedOpenAI(models=("aurora-test",)) as fake:
        llm = LLMBackend(base_url=fake.base_url, model="aurora-test", max_retries=0)
        specialist, server = await serve(settings, attack, llm)
        try:
            fake.reply_tool_call("lookup_indicator", {"type": "ip", "value": "45.33.32.156"})
            fake.reply_json(
                {
                    "summary": "Scanner address seen in phishing infrastructure.",
                    "severity": "medium",
                    "confidence": 0.6,
                    "mitre_techniques": ["T1566.001", "T9999"],
                    "iocs": [
                        {"type": "ip", "value": "45.33.32[.]156"},
                        {"type": "ip", "value": "x"},
                    ],
                    "recommended_actions": [],
                    # not the model's to say: only the look-ups' results corroborate
                    "corroborations": [
                        {"type": "ip", "value": "6.6.6.6", "kind": "threat_intel", "source": "x"}
                    ],
                }
            )
            llm_result = (await ask(server, SPEC_REQUEST["params"]))["result"]  # type: ignore[arg-type]
            fake.fail(500)
            fallback = (await ask(server, SPEC_REQUEST["params"]))["result"]  # type: ignore[arg-type]
        finally:
            await specialist.stop()
            await llm.close()
    assert llm_result["backend"] == "llm"
    assert llm_result["model"] == "aurora-test"
    assert llm_result["prompt_version"] == "v2"  # the latest, unless a call pins one
    assert llm_result["mitre_techniques"] == ["T1566.001"]  # the invented id is dropped
    assert llm_result["iocs"] == [{"type": "ip", "value": "45.33.32.156", "subtype": "ipv4"}]
    assert [(c["value"], c["source"]) for c in llm_result["corroborations"]] == [
        ("45.33.32.156", "campaign")
    ]
    assert any(
        e["ref"] == "lookup_indicator" or e["ref"] == "intel_lookup" for e in llm_result["evidence"]
    )
    tool_turn = fake.chat_requests[1].messages
    assert tool_turn[-1]["role"] == "tool"
    assert "untrusted_data" in fake.chat_requests[0].messages[1]["content"]
    assert fallback["backend"] == "builtin"
    assert fallback["degraded"] is True
