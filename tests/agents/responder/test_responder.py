"""The responder: merging the specialists' actions, ordering them, deciding each through the
guardrail policy under the mode, its bad-input answers and its LLM path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.acp.server import AgentServer
from agents.responder.agent import Responder, normalise_action, normalise_target
from agents.runtime.specialist import AgentDeps
from core.errors import ValidationFailed
from core.guardrails import GuardrailPolicy
from core.llm import LLMBackend
from core.llm.fence import unfence
from core.settings import Settings
from tests.agents.responder.conftest import (
    SHA,
    action,
    endpoint_finding,
    malware_finding,
    network_finding,
    plan,
    responder_server,
    rpc,
    threat_intel_finding,
)
from tests.fakes.openai_server import ScriptedOpenAI
from tools.attack import AttackKB

MODEL = "aurora-test-model"
ALL = [network_finding(), threat_intel_finding(), endpoint_finding(), malware_finding()]


def steps(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["action"], a["target"]) for a in result["recommended_actions"]]


def guardrail(result: dict[str, Any], ref: str) -> str:
    [found] = [e for e in result["evidence"] if e["kind"] == "guardrail" and e["ref"] == ref]
    summary: str = found["summary"]
    return summary


async def test_plan_merges_orders_and_keeps_provenance(server: AgentServer) -> None:
    result = await plan(server, {"findings": ALL, "investigation_id": "INV-1"})
    assert result["agent"] == "responder"
    assert result["backend"] == "builtin"
    assert result["severity"] == "high"
    assert steps(result) == [
        # containment, worst severity first, then most agents agreeing
        ("block_ip", "203.0.113.7"),
        ("quarantine_file", SHA),
        ("isolate_host", "ws-042"),
        ("kill_process", "ws-042:4242"),
        ("disable_account", "CORP\\jdoe"),
        ("isolate_host", "10.0.0.5"),
        # collection last
        ("collect_triage", "ws-042"),
        ("collect_sample", "C:\\Users\\jdoe\\AppData\\Local\\Temp\\upd.exe"),
        ("collect_pcap", "10.0.0.5"),
    ]
    block = result["recommended_actions"][0]
    assert block["impact"] == "medium"  # the highest impact any proposer gave
    assert "Proposed by network, threat_intel (high)" in block["reason"]
    assert "network: command-and-control candidate" in block["reason"]
    assert "threat_intel: listed by feodo (exact)" in block["reason"]
    assert "Rollback: remove the block rule." in block["reason"]
    quarantine = result["recommended_actions"][1]
    assert "Proposed by endpoint, malware (high)" in quarantine["reason"]
    assert result["mitre_techniques"] == [
        "T1071.001",
        "T1573.002",
        "T1071",
        "T1059.001",
        "T1003.001",
        "T1055",
    ]
    assert [i["value"] for i in result["iocs"]] == ["203.0.113.7", SHA]
    kinds = [e["kind"] for e in result["evidence"]]
    assert kinds.count("finding") == 4
    assert kinds.count("guardrail") == 9
    assert [e["ref"] for e in result["evidence"] if e["kind"] == "tool_call"] == [
        "merge_actions",
        "guardrail_check",
    ]


async def test_protected_asset_is_denied_and_critical_host_needs_approval(
    server: AgentServer,
) -> None:
    dc = {
        **endpoint_finding(),
        "recommended_actions": [
            action("isolate_host", "dc01.corp.example", "lateral movement from it", "high"),
            action("disable_account", "svc_backup", "its credentials were dumped", "medium"),
            action("isolate_host", "ws-042", "high activity on the host", "high"),
            action("collect_triage", "dc01.corp.example", "scope the intrusion"),
        ],
    }
    assets = {
        "dc01.corp.example": {
            "criticality": "critical",
            "owner": "identity team",
            "protected": True,
        },
        "svc_*": {"protected": True},
        "ws-042": {"criticality": "critical", "owner": "cfo office"},
    }
    result = await plan(server, {"findings": [dc], "assets": assets, "mode": "active"})
    # Denied actions leave the plan; their decisions stay in the evidence. Collection on the
    # protected DC is denied too: the default policy exempts nothing on protected assets.
    assert steps(result) == [("isolate_host", "ws-042")]
    dc_decision = guardrail(result, "isolate_host dc01.corp.example")
    assert dc_decision.startswith("deny → denied in active mode")
    assert "protected, owner identity team" in dc_decision
    assert "target is protected (marked protected)" in dc_decision
    assert guardrail(result, "disable_account svc_backup").startswith("deny → denied")
    isolate = guardrail(result, "isolate_host ws-042")
    assert isolate.startswith("require_approval → await_approval in active mode")
    assert "isolate_host on a critical asset needs approval" in isolate
    entry = result["recommended_actions"][0]
    assert entry["reason"].startswith("[await_approval] policy: require_approval")
    assert entry["impact"] == "high"
    assert "1 await a human's approval: isolate_host ws-042" in result["summary"]
    assert "denied by policy and left out: isolate_host dc01.corp.example" in result["summary"]
    assert guardrail(result, "collect_triage dc01.corp.example").startswith("deny")


@pytest.mark.parametrize(
    ("mode", "tags", "phrase"),
    [
        ("dry_run", {"record_only"}, "Dry run: nothing will be executed"),
        ("monitor", {"propose"}, "Monitor mode: 9 action(s) proposed to an analyst, none executed"),
        (
            "active",
            {"execute", "await_approval"},
            "Active mode: 4 to be executed by the gateway: block_ip 203.0.113.7, collect_triage",
        ),
    ],
)
async def test_every_mode(server: AgentServer, mode: str, tags: set[str], phrase: str) -> None:
    assets = {"10.0.0.5": {"criticality": "high", "owner": "finance"}}
    result = await plan(server, {"findings": ALL, "assets": assets, "mode": mode})
    seen = {a["reason"][1:].split("]")[0] for a in result["recommended_actions"]}
    assert seen == tags
    assert phrase in result["summary"]
    isolate = guardrail(result, "isolate_host 10.0.0.5")
    assert isolate.startswith(
        {
            "dry_run": "require_approval → record_only",
            "monitor": "require_approval → propose",
            "active": "require_approval → await_approval",
        }[mode]
    )
    # Only the feed-listed address is corroborated; the hosts, the process, the account and
    # the file rest on what the agents were given, so a human decides on them in active mode.
    assert "corroborated by threat_intel: threat_intel (feodo) on ip 203.0.113.7" in guardrail(
        result, "block_ip 203.0.113.7"
    )
    for ref in ("kill_process ws-042:4242", "disable_account CORP\\jdoe"):
        assert "no independent corroboration" in guardrail(result, ref)
        assert "no independent source corroborates the target" in guardrail(result, ref)
    if mode == "dry_run":
        assert "In active mode 4 would run" in result["summary"]
        assert "5 would need approval: quarantine_file" in result["summary"]
    if mode == "monitor":
        assert "In active mode 5 would need approval: quarantine_file" in result["summary"]
    if mode == "active":
        assert "5 await a human's approval: quarantine_file" in result["summary"]


async def test_confidence_from_agreement(server: AgentServer) -> None:
    alone = await plan(server, {"findings": [threat_intel_finding(confidence=0.9)]})
    assert alone["confidence"] == 0.8  # one agent: no independent agreement
    both = await plan(server, {"findings": [network_finding(), threat_intel_finding()]})
    # threat_intel (high, 0.9) corroborated by network (medium, 0.88) on 203.0.113.7
    assert both["confidence"] == round(1 - 0.1 * (1 - 0.5 * 0.88), 3)
    dissent = await plan(
        server,
        {
            "findings": [
                network_finding(),
                threat_intel_finding(severity="informational", confidence=0.5),
            ]
        },
    )
    assert dissent["severity"] == "medium"
    assert dissent["confidence"] == round(0.88 * (1 - 0.3 * 0.5), 3)
    unrelated = {**endpoint_finding(), "iocs": [], "recommended_actions": []}
    apart = await plan(server, {"findings": [threat_intel_finding(), unrelated]})
    assert apart["confidence"] == 0.9


async def test_weak_single_source_becomes_watchlist(server: AgentServer) -> None:
    weak = {
        **threat_intel_finding(severity="low", confidence=0.3),
        "recommended_actions": [
            action("block_ip", "198.51.100.9", "one feed, expired entry", "medium")
        ],
    }
    result = await plan(server, {"findings": [weak], "mode": "active"})
    assert steps(result) == [("watchlist", "198.51.100.9")]
    assert (
        "rests on one weak source (threat_intel, low, confidence 0.30)"
        in result["recommended_actions"][0]["reason"]
    )
    [note] = [e for e in result["evidence"] if e["kind"] == "plan"]
    assert "watchlist instead" in note["summary"]
    # The same proposal from a confident finding stays a block.
    strong = {**weak, "severity": "high", "confidence": 0.9}
    assert steps(await plan(server, {"findings": [strong]})) == [("block_ip", "198.51.100.9")]


async def test_inventory_patterns_blast_radius_and_unknown_actions(server: AgentServer) -> None:
    finding = {
        **endpoint_finding(),
        "recommended_actions": [
            action("isolate_host", "10.20.3.4", "ransomware note seen", "high"),
            action("reset_password", "grp-finance", "shared credential exposed", "medium"),
            action("Capture-Traffic", "10.20.3.4", "keep the wire"),
            action("frobnicate", "10.20.3.4", "the model's idea"),
        ],
    }
    assets = {
        "10.20.0.0/16": {"criticality": "critical"},
        "grp-finance": {"criticality": "medium", "blast_radius": 40},
    }
    result = await plan(server, {"findings": [finding], "assets": assets, "mode": "active"})
    assert steps(result) == [
        ("isolate_host", "10.20.3.4"),
        ("reset_password", "grp-finance"),
        ("frobnicate", "10.20.3.4"),
        ("collect_pcap", "10.20.3.4"),
    ]
    assert "critical asset needs approval" in guardrail(result, "isolate_host 10.20.3.4")
    assert "blast radius 40 exceeds 10" in guardrail(result, "reset_password grp-finance")
    assert "no policy for action 'frobnicate'" in guardrail(result, "frobnicate 10.20.3.4")
    assert guardrail(result, "collect_pcap 10.20.3.4").startswith("allow → execute")
    assert (
        "Active mode: 1 to be executed by the gateway: collect_pcap 10.20.3.4" in result["summary"]
    )


async def test_a_process_takes_its_hosts_criticality(server: AgentServer) -> None:
    assets = {"WS-042": {"criticality": "critical"}}
    result = await plan(server, {"findings": [endpoint_finding()], "assets": assets})
    assert "kill_process on a critical asset needs approval" in guardrail(
        result, "kill_process ws-042:4242"
    )
    kill = next(a for a in result["recommended_actions"] if a["action"] == "kill_process")
    assert kill["impact"] == "high"  # the endpoint said low; on a critical host it is not
    # "pid:4242" (the malware agent's form) names no host.
    other = {**endpoint_finding(), "recommended_actions": [action("kill_process", "pid:4242", "x")]}
    result = await plan(server, {"findings": [other], "assets": assets})
    assert "not in the inventory" in guardrail(result, "kill_process pid:4242")


async def test_no_actions_to_plan(server: AgentServer) -> None:
    quiet = {
        **threat_intel_finding(severity="informational", confidence=0.3),
        "recommended_actions": [],
    }
    result = await plan(server, {"findings": [quiet]})
    assert result["recommended_actions"] == []
    assert result["severity"] == "informational"
    assert "No finding recommended an action; nothing to plan." in result["summary"]


async def test_policy_from_the_settings_file(kb: AttackKB, tmp_path: Path) -> None:
    path = tmp_path / "guardrails.yaml"
    path.write_text("protected_targets: ['10.0.0.0/28']\nprotected_exempt_actions: ['collect_*']\n")
    server = responder_server(kb, tmp_path, guardrails_file=path)
    result = await plan(server, {"findings": [network_finding()], "mode": "active"})
    assert steps(result) == [("block_ip", "203.0.113.7"), ("collect_pcap", "10.0.0.5")]
    assert "matches protected pattern '10.0.0.0/28'" in guardrail(result, "isolate_host 10.0.0.5")


def test_bad_policy_file_stops_the_agent(kb: AttackKB, tmp_path: Path) -> None:
    path = tmp_path / "guardrails.yaml"
    path.write_text("actions: {isolate_host: {approval_from: sometimes}}\n")
    settings = Settings(data_dir=tmp_path, guardrails_file=path)
    with pytest.raises(ValidationFailed) as caught:
        Responder(AgentDeps(settings=settings, attack=kb))
    assert caught.value.detail[0]["loc"] == [
        "guardrails_file",
        "actions",
        "isolate_host",
        "approval_from",
    ]


async def test_injected_policy_is_used(kb: AttackKB, tmp_path: Path) -> None:
    policy = GuardrailPolicy(actions={"block_ip": {"decision": "deny"}})  # type: ignore[dict-item]
    server = responder_server(kb, tmp_path, policy=policy)
    result = await plan(server, {"findings": [threat_intel_finding()]})
    assert result["recommended_actions"] == []
    assert "policy for block_ip: refused" in guardrail(result, "block_ip 203.0.113.7")


def test_normalisation() -> None:
    assert normalise_action(" Capture Traffic ") == "collect_pcap"
    assert normalise_action("isolate-endpoint") == "isolate_host"
    assert normalise_target("2001:DB8:0:0::1") == "2001:db8::1"
    assert normalise_target("10.1.2.3/16") == "10.1.0.0/16"
    assert normalise_target("WS-042.Corp.Example") == "ws-042.corp.example"
    assert normalise_target("CORP\\JDoe") == "CORP\\JDoe"
    assert normalise_target("https://Evil.example/Path") == "https://Evil.example/Path"


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({}, ["findings"]),
        ({"findings": []}, ["findings"]),
        (
            {"findings": [{**network_finding(), "severity": "apocalyptic"}]},
            ["findings", 0, "severity"],
        ),
        ({"findings": [{**network_finding(), "confidence": 1.5}]}, ["findings", 0, "confidence"]),
        ({"findings": [{"agent": "network"}]}, ["findings", 0]),
        ({"findings": [network_finding()], "mode": "yolo"}, ["mode"]),
        (
            {"findings": [network_finding()], "assets": {"ws-1": {"criticality": "extreme"}}},
            ["assets"],
        ),
        ({"findings": [network_finding()], "assets": {"ws-1": {"colour": "red"}}}, ["assets"]),
        ({"findings": [network_finding()], "assets": {"": {}}}, ["assets"]),
        ({"findings": [network_finding()], "execute": True}, ["execute"]),
        (
            {
                "findings": [
                    {**network_finding(), "recommended_actions": [{"action": "x", "target": "y"}]}
                ]
            },
            ["findings", 0, "recommended_actions", 0],
        ),
    ],
)
async def test_bad_input_is_invalid_params(
    server: AgentServer, params: dict[str, Any], loc: list[object]
) -> None:
    reply = await rpc(server, params)
    assert "result" not in reply
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["errors"][0]["loc"][: len(loc)] == loc


# -- LLM path -------------------------------------------------------------------------------


async def test_llm_plan_is_held_to_the_guardrails(kb: AttackKB, tmp_path: Path) -> None:
    assets = {
        "ws-042": {"criticality": "critical"},
        "dc01.corp.example": {"protected": True},
    }
    findings = [endpoint_finding(), {**network_finding(), "summary": "also saw dc01.corp.example"}]
    async with ScriptedOpenAI(models=(MODEL,)) as fake:
        fake.reply_tool_call("check_guardrails", {"action": "isolate_host", "target": "WS-042"})
        fake.reply_json(
            {
                "agent": "responder",
                "summary": "Contain ws-042 and its C2 first.",
                "severity": "high",
                "confidence": 0.85,
                "mitre_techniques": ["T1059.001"],
                "iocs": [],
                "recommended_actions": [
                    action("isolate_host", "ws-042", "endpoint and network agree", "high"),
                    action("isolate_host", "dc01.corp.example", "to be safe", "high"),
                    action("block_ip", "198.18.0.1", "the model made this up", "low"),
                    action("block_ip", "203.0.113.7", "C2 per network and threat intel", "low"),
                ],
            }
        )
        async with LLMBackend(base_url=fake.base_url, model=MODEL, max_retries=0) as llm:
            server = responder_server(kb, tmp_path, llm)
            result = await plan(server, {"findings": findings, "assets": assets, "mode": "active"})
        assert fake.chat_requests[0].tool_names == [
            "proposed_actions",
            "check_guardrails",
            "asset_info",
        ]
        [fenced] = unfence(fake.chat_requests[1].messages[-1]["content"])  # tool results are fenced
        tool_reply = json.loads(fenced.text)
    assert tool_reply["decision"] == "require_approval"
    assert tool_reply["outcome"] == "await_approval"
    assert result["backend"] == "llm"
    assert result["model"] == MODEL
    assert steps(result) == [("isolate_host", "ws-042"), ("block_ip", "203.0.113.7")]
    assert result["recommended_actions"][0]["reason"].startswith("[await_approval]")
    # the model's "per threat intel" is no corroboration: no threat_intel finding lists it
    assert result["recommended_actions"][1]["reason"].startswith(
        "[await_approval] policy: require_approval (no independent source corroborates"
    )
    assert result["summary"].startswith(
        "Contain ws-042 and its C2 first. High incident per 2 finding(s)"
    )
    assert "denied by policy and left out: isolate_host dc01.corp.example" in result["summary"]
    [rejected] = [e for e in result["evidence"] if e["kind"] == "rejected_actions"]
    assert rejected["summary"] == "targets no finding mentions: block_ip 198.18.0.1"
    assert guardrail(result, "isolate_host dc01.corp.example").startswith("deny → denied")
    assert any(e["ref"] == "guardrail_check" for e in result["evidence"])  # the model's tool call


async def test_llm_failure_falls_back_to_builtin(kb: AttackKB, tmp_path: Path) -> None:
    async with ScriptedOpenAI(models=(MODEL,)) as fake:
        fake.fail(500)
        settings = Settings(
            data_dir=tmp_path, llm_base_url=fake.base_url, llm_model=MODEL, llm_max_retries=0
        )
        llm = LLMBackend.from_settings(settings)
        assert llm is not None
        async with llm:
            server = responder_server(kb, tmp_path, llm)
            result = await plan(server, {"findings": ALL})
        assert len(fake.chat_requests) == 1
    assert result["backend"] == "builtin"
    assert result["degraded"] is True
    assert steps(result)[0] == ("block_ip", "203.0.113.7")
    assert result["summary"].startswith("High incident per 4 finding(s)")


async def test_a_claimed_corroboration_outside_the_agents_role_counts_for_nothing(
    server: AgentServer,
) -> None:
    from_command_line = [{"kind": "command_line", "ref": "command_lines[0]"}]
    claimed = {
        **malware_finding(),
        "recommended_actions": [
            {
                **action("block_ip", "45.33.32.200", "in the cradle", "medium"),
                "provenance": from_command_line,
            },
            {
                **action("block_ip", "203.0.113.7", "in the cradle", "medium"),
                "provenance": from_command_line,
            },
        ],
        # the malware agent is no threat-intel source
        "corroborations": [
            {"type": "ip", "value": "45.33.32.200", "kind": "threat_intel", "source": "made up"}
        ],
    }
    result = await plan(server, {"findings": [claimed, threat_intel_finding()], "mode": "active"})
    by_target = {a["target"]: a for a in result["recommended_actions"]}
    assert by_target["45.33.32.200"]["reason"].startswith("[await_approval]")
    assert by_target["203.0.113.7"]["reason"].startswith("[execute]")
    # each plan entry keeps where its proposers took the target from
    assert by_target["45.33.32.200"]["provenance"] == from_command_line
    assert by_target["203.0.113.7"]["provenance"] == from_command_line
