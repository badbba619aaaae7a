"""The endpoint specialist over ACP (in process): real events in both layouts, containment
proposals, the LLM path and its fallback, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.endpoint.agent import Endpoint
from agents.runtime.specialist import AgentDeps, build_server
from core.llm import LLMBackend
from core.settings import Settings
from tests.fakes.openai_server import ScriptedOpenAI
from tools.attack import AttackKB


@pytest.fixture(scope="module")
def attack() -> AttackKB:
    return AttackKB.load()


def server_for(tmp_path: Path, attack: AttackKB, llm: LLMBackend | None = None) -> Any:
    settings = Settings(data_dir=tmp_path)
    return build_server(
        Endpoint(AgentDeps(settings=settings, attack=attack, llm=llm)), settings, None
    )


@pytest.fixture
def server(tmp_path: Path, attack: AttackKB) -> Any:
    return server_for(tmp_path, attack)


async def ask(server: Any, params: Any) -> dict[str, Any]:
    frame = {"jsonrpc": "2.0", "method": "analyze_endpoint", "params": params, "id": 3}
    reply: dict[str, Any] = json.loads(await server.dispatch(json.dumps(frame)))
    return reply


def written(event_id: int, channel: str = "Security", **data: Any) -> dict[str, Any]:
    """A flat event written for the test (no labelled log behind it)."""
    return {
        "EventID": event_id,
        "Channel": channel,
        "Computer": "FS03.corp.lan",
        "EventRecordID": 100 + event_id,
        **data,
    }


SYSMON = "Microsoft-Windows-Sysmon/Operational"


def intrusion() -> list[dict[str, Any]]:
    """A log cleared, a new-credentials logon, a credential dumper run, shadow copies deleted."""
    return [
        written(
            1102,
            Provider_Name="Microsoft-Windows-Eventlog",
            SubjectUserName="eve",
            SubjectDomainName="CORP",
        ),
        written(
            1,
            SYSMON,
            ProcessId=4242,
            Image="C:\\Users\\eve\\Downloads\\tool.exe",
            CommandLine="tool.exe privilege::debug sekurlsa::logonpasswords exit",
            ParentImage="C:\\Windows\\System32\\cmd.exe",
            User="CORP\\eve",
        ),
        written(
            1,
            SYSMON,
            ProcessId=4343,
            Image="C:\\Windows\\System32\\vssadmin.exe",
            CommandLine="vssadmin.exe delete shadows /all /quiet",
            ParentImage="C:\\Windows\\System32\\cmd.exe",
            User="CORP\\eve",
        ),
    ]


def actions(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for action in result["recommended_actions"]:
        grouped.setdefault(action["action"], []).append(action)
    return grouped


async def test_credential_theft_on_a_critical_server(server: Any) -> None:
    host = {"hostname": "FS03", "ip": "10.23.42.38", "criticality": "critical", "owner": "IT"}
    result = (await ask(server, {"host": host, "events": intrusion(), "alert_id": "A-1"}))["result"]
    assert result["agent"] == "endpoint"
    assert result["severity"] == "critical"
    assert {"T1003.001", "T1490"} <= set(result["mitre_techniques"])
    assert "needs a human approval" in result["summary"]
    proposed = actions(result)
    (isolate,) = proposed["isolate_host"]
    assert (isolate["target"], isolate["impact"]) == ("FS03", "high")
    assert "rated critical" in isolate["reason"]
    assert {a["target"] for a in proposed["kill_process"]} == {"FS03:4242", "FS03:4343"}
    assert {a["target"] for a in proposed["disable_account"]} == {"CORP\\eve"}
    assert isolate["provenance"] == [{"kind": "alert_field", "ref": "host"}]
    hits = [e for e in result["evidence"] if e["kind"] == "rule_hit"]
    # An engine match names the Sigma rule (id, title, level) and its techniques.
    assert any("(Sigma, " in e["summary"] and "T1003.001" in e["summary"] for e in hits)
    assert any(
        e["ref"].endswith("@ events[1] Microsoft-Windows-Sysmon/Operational 1 record 101")
        for e in hits
    )


async def test_isolation_of_a_low_criticality_host_needs_no_note(server: Any) -> None:
    host = {"hostname": "FS03", "criticality": "low"}
    result = (await ask(server, {"host": host, "events": intrusion()}))["result"]
    (isolate,) = actions(result)["isolate_host"]
    assert "approve" not in isolate["reason"]


async def test_quiet_host(server: Any) -> None:
    events = [
        written(4624, LogonType="2", TargetUserName="bob", TargetDomainName="CORP")
        for _ in range(3)
    ]
    result = (await ask(server, {"host": {"hostname": "FS03"}, "events": events}))["result"]
    assert result["severity"] == "informational"
    assert result["confidence"] == 0.4
    assert result["recommended_actions"] == []
    assert result["summary"].startswith("No detection rule fired on 3 event(s) from FS03")


async def test_context_only(server: Any) -> None:
    params = {"host": {"hostname": "ws9"}, "context": "User reports a PowerShell window flashing."}
    result = (await ask(server, params))["result"]
    assert result["severity"] == "informational"
    assert result["summary"].startswith("No events for ws9")
    assert result["recommended_actions"] == []


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"events": [{"EventID": 1}]},
        {"host": {"hostname": "ws1"}},
        {"host": {"hostname": "ws1"}, "events": []},
        {"host": {"hostname": "ws1"}, "events": [{"Channel": "Security"}]},
        {"host": {"hostname": "ws1"}, "events": [{"Event": {"System": {}}}]},
        {"host": {"hostname": "ws1"}, "events": "4688"},
        {"host": {"hostname": "ws1", "criticality": "extreme"}, "context": "x"},
        {"host": {"hostname": "ws1", "ip": "10.0.0.300"}, "context": "x"},
        {"host": {"hostname": "two words"}, "context": "x"},
        {"host": {"hostname": "ws1"}, "context": "x", "surprise": 1},
    ],
)
async def test_bad_params_are_refused(server: Any, params: Any) -> None:
    reply = await ask(server, params)
    assert reply["error"]["code"] == -32602
    assert "result" not in reply


async def test_missing_event_id_is_named(server: Any) -> None:
    params = {"host": {"hostname": "ws1"}, "events": [{"EventID": 1}, {"Channel": "Security"}]}
    reply = await ask(server, params)
    assert "events[1] has no EventID" in json.dumps(reply["error"]["data"])


async def test_llm_path_and_fallback(tmp_path: Path, attack: AttackKB) -> None:
    params = {"host": {"hostname": "fs01", "criticality": "high"}, "events": intrusion()}
    async with ScriptedOpenAI(models=("aurora-test",)) as fake:
        llm = LLMBackend(base_url=fake.base_url, model="aurora-test", max_retries=0)
        server = server_for(tmp_path, attack, llm)
        try:
            fake.reply_tool_call("scan_events", {"event_ids": [1, 1102]})
            fake.reply_json(
                {
                    "summary": "netsh portproxy relays RDP after the Security log was cleared.",
                    "severity": "high",
                    "confidence": 0.85,
                    "mitre_techniques": ["T1090.001", "T1070.001"],
                    "iocs": [],
                    "recommended_actions": [
                        {
                            "action": "isolate_host",
                            "target": "fs01",
                            "reason": "port forwarding of RDP",
                            "impact": "high",
                        }
                    ],
                }
            )
            answered = (await ask(server, params))["result"]
            fake.fail(500)
            fallback = (await ask(server, params))["result"]
        finally:
            await llm.close()
    assert answered["backend"] == "llm"
    assert answered["model"] == "aurora-test"
    assert answered["mitre_techniques"] == ["T1090.001", "T1070.001"]
    assert answered["recommended_actions"][0]["action"] == "isolate_host"
    scan = [e for e in answered["evidence"] if e["ref"] == "rule_scan"]
    assert len(scan) == 1
    assert "T1003.001" in fake.chat_requests[1].messages[-1]["content"]
    assert {
        "decode_payload",
        "extract_iocs",
        "scan_command_line",
        "map_attack_techniques",
        "host_context",
        "scan_events",
        "get_events",
    } == set(fake.chat_requests[0].tool_names)
    assert fallback["backend"] == "builtin"
    assert fallback["degraded"] is True
    assert fallback["severity"] == "critical"
    assert "T1003.001" in fallback["mitre_techniques"]
