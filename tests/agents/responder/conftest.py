"""The responder in process, and findings shaped like the other specialists' answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.acp.server import AgentServer
from agents.responder.agent import Responder
from agents.runtime.specialist import AgentDeps, build_server
from core.guardrails import GuardrailPolicy
from core.llm import LLMBackend
from core.settings import Settings
from tools.attack import AttackKB

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture(scope="module")
def kb() -> AttackKB:
    return AttackKB.load()


def responder_server(
    kb: AttackKB,
    data_dir: Path,
    llm: LLMBackend | None = None,
    policy: GuardrailPolicy | None = None,
    **settings: Any,
) -> AgentServer:
    config = Settings(data_dir=data_dir, **settings)
    extra: dict[str, Any] = {"guardrail_policy": policy} if policy is not None else {}
    responder = Responder(AgentDeps(settings=config, attack=kb, llm=llm, extra=extra))
    return build_server(responder, config, None)


@pytest.fixture
def server(kb: AttackKB, tmp_path: Path) -> AgentServer:
    return responder_server(kb, tmp_path)


async def rpc(server: AgentServer, params: Any, method: str = "plan_response") -> Any:
    frame: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 1}
    if params is not None:
        frame["params"] = params
    reply = await server.dispatch(json.dumps(frame))
    assert reply is not None
    return json.loads(reply)


async def plan(server: AgentServer, params: Any) -> dict[str, Any]:
    reply = await rpc(server, params)
    assert "result" in reply, reply
    result: dict[str, Any] = reply["result"]
    return result


def action(action: str, target: str, reason: str, impact: str = "low") -> dict[str, str]:
    return {"action": action, "target": target, "reason": reason, "impact": impact}


def network_finding() -> dict[str, Any]:
    """As the network agent reports a beacon from an internal host."""
    return {
        "agent": "network",
        "summary": "Medium: beaconing 10.0.0.5 → 203.0.113.7:443/TCP: 60 check-ins every ~60 s.",
        "severity": "medium",
        "confidence": 0.88,
        "mitre_techniques": ["T1071.001", "T1573.002"],
        "iocs": [{"type": "ip", "value": "203.0.113.7", "subtype": "ipv4"}],
        "evidence": [
            {"kind": "log", "ref": "beaconing: flows[0], flows[1]", "summary": "60 check-ins"}
        ],
        "recommended_actions": [
            action("isolate_host", "10.0.0.5", "10.0.0.5 beacons every ~60 s", "high"),
            action("block_ip", "203.0.113.7", "command-and-control candidate"),
            action("collect_pcap", "10.0.0.5", "capture the beacon"),
        ],
    }


def threat_intel_finding(severity: str = "high", confidence: float = 0.9) -> dict[str, Any]:
    """As threat_intel reports an address listed by feeds (which corroborates it)."""
    return {
        "agent": "threat_intel",
        "summary": "1 of 1 indicator(s) known to threat intelligence; worst: ip 203.0.113.7.",
        "severity": severity,
        "confidence": confidence,
        "mitre_techniques": ["T1071"],
        "iocs": [{"type": "ip", "value": "203.0.113.7", "subtype": "ipv4"}],
        "evidence": [],
        "recommended_actions": [
            action("block_ip", "203.0.113.7", "listed by feodo (exact)", "medium"),
        ],
        "corroborations": [
            {
                "type": "ip",
                "value": "203.0.113.7",
                "kind": "threat_intel",
                "source": "feodo",
                "detail": "listed high, confidence 90",
            }
        ],
    }


def endpoint_finding() -> dict[str, Any]:
    """As the endpoint agent reports a compromised workstation."""
    return {
        "agent": "endpoint",
        "summary": "High: encoded PowerShell from winword.exe on ws-042, credential dumping.",
        "severity": "high",
        "confidence": 0.8,
        "mitre_techniques": ["T1059.001", "T1003.001"],
        "iocs": [{"type": "hash", "value": SHA, "subtype": "sha256"}],
        "evidence": [],
        "recommended_actions": [
            action("isolate_host", "WS-042", "high activity on the host", "high"),
            action("kill_process", "ws-042:4242", "powershell.exe (pid 4242): encoded command"),
            action("disable_account", "CORP\\jdoe", "account behind credential dumping", "medium"),
            action("quarantine_file", SHA.upper(), "dropped payload", "medium"),
            action("collect_triage", "ws-042", "collect process list, autoruns, event logs"),
        ],
    }


def malware_finding() -> dict[str, Any]:
    """As the malware agent reports the dropped payload."""
    return {
        "agent": "malware",
        "summary": "High: the sample injects into lsass and beacons to 203.0.113.7.",
        "severity": "high",
        "confidence": 0.7,
        "mitre_techniques": ["T1055"],
        "iocs": [
            {"type": "hash", "value": SHA, "subtype": "sha256"},
            {"type": "ip", "value": "203.0.113.7", "subtype": "ipv4"},
        ],
        "evidence": [],
        "recommended_actions": [
            action("quarantine_file", SHA, "injects into lsass", "medium"),
            action("collect_sample", "C:\\Users\\jdoe\\AppData\\Local\\Temp\\upd.exe", "keep it"),
        ],
    }
