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
from tests.conftest import shared_data_dir
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


def evtx_folder(technique: str) -> list[dict[str, Any]]:
    """The flat events of one technique folder of EVTX-to-MITRE-Attack."""
    root = shared_data_dir()
    base = root / "logs" / "evtx_to_mitre_attack" / "jsonl" if root else None
    if base is None or not base.is_dir():
        pytest.skip("shared data (logs/evtx_to_mitre_attack) not found: set AURORA_SHARED_DATA")
    (path,) = [f for f in base.glob("*/*/*.jsonl") if f.parent.name.split("-", 1)[0] == technique]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sigma_events(rule_file_stem: str) -> list[dict[str, Any]]:
    """The nested events (``evtx`` package layout) of one Sigma regression test."""
    root = shared_data_dir()
    base = root / "sigma" / "regression" / "regression_data" if root else None
    if base is None or not base.is_dir():
        pytest.skip("shared data (sigma/regression) not found: set AURORA_SHARED_DATA")
    (path,) = base.glob(f"**/{rule_file_stem}/*.json")
    text, decoder, events, at = path.read_text(), json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        event, at = decoder.raw_decode(text, at)
        events.append(event)
        while at < len(text) and text[at].isspace():
            at += 1
    return events


def actions(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for action in result["recommended_actions"]:
        grouped.setdefault(action["action"], []).append(action)
    return grouped


async def test_credential_theft_on_a_critical_server(server: Any) -> None:
    # Pass-the-hash after clearing the log, then an LSASS dump with comsvcs.dll: FS03.
    events = evtx_folder("T1550") + evtx_folder("T1003")
    host = {"hostname": "FS03", "ip": "10.23.42.38", "criticality": "critical", "owner": "IT"}
    result = (await ask(server, {"host": host, "events": events, "alert_id": "A-1"}))["result"]
    assert result["agent"] == "endpoint"
    assert result["severity"] == "critical"
    assert result["confidence"] == 0.95
    assert {"T1550.002", "T1070.001", "T1003.001"} <= set(result["mitre_techniques"])
    assert "FS03 (criticality critical)" in result["summary"]
    assert "needs a human approval" in result["summary"]
    proposed = actions(result)
    (isolate,) = proposed["isolate_host"]
    assert isolate["target"] == "FS03"
    assert isolate["impact"] == "high"
    assert "rated critical" in isolate["reason"]
    assert "human should approve" in isolate["reason"]
    # The PowerShell host that ran the dump (ExecutionProcessID of its 4104 event).
    assert [a["target"] for a in proposed["kill_process"]] == ["FS03:3268"]
    assert {a["target"] for a in proposed["disable_account"]} == {"OFFSEC\\admmig"}
    assert proposed["collect_triage"] == [
        {
            "action": "collect_triage",
            "target": "FS03",
            "reason": proposed["collect_triage"][0]["reason"],
            "impact": "low",
            "provenance": [{"kind": "alert_field", "ref": "host"}],
        }
    ]
    # the host was named by the caller, the process and the account by the events' fields
    assert isolate["provenance"] == [{"kind": "alert_field", "ref": "host"}]
    assert proposed["kill_process"][0]["provenance"] == [{"kind": "log_field", "ref": "events"}]
    refs = {e["ref"] for e in result["evidence"] if e["kind"] == "rule_hit"}
    assert "pass_the_hash @ events[2] Security 4624 record 67101" in refs
    assert "log_cleared @ events[0] Security 1102 record 67099" in refs
    context = next(e for e in result["evidence"] if e["ref"] == "host_context")
    assert "users: OFFSEC\\admmig" in context["summary"]


async def test_isolation_of_a_low_criticality_host_needs_no_note(server: Any) -> None:
    host = {"hostname": "FS03", "criticality": "low"}
    result = (await ask(server, {"host": host, "events": evtx_folder("T1550")}))["result"]
    assert result["severity"] == "high"
    (isolate,) = actions(result)["isolate_host"]
    assert isolate["impact"] == "high"
    assert "approve" not in isolate["reason"]


async def test_medium_activity_is_not_isolated(server: Any) -> None:
    # BITS job started from PowerShell: persistence, medium.
    host = {"hostname": "FS03"}
    result = (await ask(server, {"host": host, "events": evtx_folder("T1197")}))["result"]
    assert result["severity"] == "medium"
    assert result["mitre_techniques"] == ["T1197"]
    proposed = actions(result)
    assert "isolate_host" not in proposed
    assert "disable_account" not in proposed
    assert {a["action"] for a in result["recommended_actions"]} == {
        "kill_process",
        "collect_triage",
    }


async def test_sql_server_payload_drop(server: Any) -> None:
    host = {"hostname": "mssql01", "criticality": "high"}
    result = (await ask(server, {"host": host, "events": evtx_folder("T1059.003")}))["result"]
    # Delivery (echoed base64 PE, script from Temp) and foothold (sqlservr → cmd).
    assert result["severity"] == "high"
    assert {"T1505.001", "T1027", "T1059.005", "T1204.002"} <= set(result["mitre_techniques"])
    quarantined = {a["target"] for a in actions(result)["quarantine_file"]}
    assert "C:\\Users\\SVC-SQ~1\\AppData\\Local\\Temp\\TVupu.exe" in quarantined
    # sqlservr.exe → cmd.exe fired 69 times: five in the evidence, the rest counted.
    sql = [e for e in result["evidence"] if e["ref"].startswith("sqlserver_spawns_shell @")]
    assert len(sql) == 5
    assert sql[-1]["summary"].endswith("(and 64 more)")


async def test_nested_layout_from_sigma_regression(server: Any) -> None:
    events = sigma_events("proc_creation_win_reg_add_run_key") + sigma_events(
        "proc_creation_win_renamed_binary_highly_relevant"
    )
    result = (await ask(server, {"host": {"hostname": "ar-win-1"}, "events": events}))["result"]
    assert result["severity"] == "high"
    assert {"T1547.001", "T1036.003"} <= set(result["mitre_techniques"])
    context = next(e for e in result["evidence"] if e["ref"] == "host_context")
    assert context["summary"].startswith("2 event(s) from 2025-")
    hits = {e["ref"].split(" @ ")[0] for e in result["evidence"] if e["kind"] == "rule_hit"}
    assert {"run_key", "renamed_binary"} <= hits


async def test_quiet_host(server: Any) -> None:
    events = evtx_folder("T1078.002")  # logons of special-group members, nothing more
    result = (await ask(server, {"host": {"hostname": "FS03"}, "events": events}))["result"]
    assert result["severity"] == "informational"
    assert result["confidence"] == 0.4
    assert result["recommended_actions"] == []
    assert result["summary"].startswith("No detection rule fired on 8 event(s) from FS03")


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
    params = {"host": {"hostname": "fs01", "criticality": "high"}, "events": evtx_folder("T1572")}
    async with ScriptedOpenAI(models=("aurora-test",)) as fake:
        llm = LLMBackend(base_url=fake.base_url, model="aurora-test", max_retries=0)
        server = server_for(tmp_path, attack, llm)
        try:
            fake.reply_tool_call("scan_events", {"event_ids": [4688, 1102]})
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
    assert "log_cleared" in scan[0]["summary"]
    assert "netsh_portproxy" in scan[0]["summary"]
    tool_reply = json.loads(fake.chat_requests[1].messages[-1]["content"])
    assert {hit["rule"] for hit in tool_reply} == {"log_cleared", "netsh_portproxy"}
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
    assert fallback["severity"] == "high"
    assert {"T1090.001", "T1070.001"} <= set(fallback["mitre_techniques"])
