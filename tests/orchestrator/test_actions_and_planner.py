"""The graph's response half (guardrails, approvals through interrupts, execution at most once)
and its LLM planner (through the scripted OpenAI-compatible server), over real specialists."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agents.acp.client import HandoffClient
from agents.acp.provenance import Provenance, platform_corroborations, vouched
from core.guardrails import parse_policy
from core.llm.backend import LLMBackend
from core.runtime import SystemMode
from orchestrator.actions import ActionOrder, ExecutionResult, gate
from orchestrator.checkpoints import strict_serializer
from orchestrator.context import GraphContext
from orchestrator.graph import InvestigationGraph, build_graph
from orchestrator.receipt import verify_receipt_chain
from tests.fakes.openai_server import ScriptedOpenAI
from tests.orchestrator.test_graph import (  # noqa: F401
    SUBJECT,
    attack,
    client_for,
    fleet,
    investigate,
)

APPROVE_BLOCKS = parse_policy("actions:\n  block_ip:\n    decision: require_approval\n")
FEED_LISTING = {
    "type": "ip",
    "value": "45.33.32.156",
    "kind": "threat_intel",
    "source": "feed",
    "detail": "listed high, confidence 85",
}
MODEL = "aurora-test"


class CountingExecutor:
    """At most once per key, like the platform's: a repeated key replays the first outcome."""

    def __init__(self) -> None:
        self.done: dict[str, ExecutionResult] = {}
        self.calls: list[ActionOrder] = []

    async def execute(self, order: ActionOrder) -> ExecutionResult:
        if order.key in self.done:
            first = self.done[order.key]
            return ExecutionResult(first.status, first.executor, first.detail, replayed=True)
        self.calls.append(order)
        result = ExecutionResult("executed", "counting", {"target": order.target})
        self.done[order.key] = result
        return result


def by_action(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["action"]: a for a in report["actions"]}


async def run_until_interrupt(
    fleet: dict[str, Any],  # noqa: F811
    executor: CountingExecutor,
    thread: str,
) -> tuple[InvestigationGraph, HandoffClient, GraphContext, dict[str, Any]]:
    client = client_for(fleet)
    context = GraphContext(
        client=client, available=frozenset(fleet), policy=APPROVE_BLOCKS, executor=executor
    )
    graph = build_graph(checkpointer=InMemorySaver(serde=strict_serializer()))
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    state = await graph.ainvoke(
        {"investigation_id": thread, "subject": SUBJECT, "mode": "active"}, config, context=context
    )
    return graph, client, context, state


async def test_active_mode_waits_for_a_human_then_executes_once(
    fleet: dict[str, Any],  # noqa: F811
) -> None:
    executor = CountingExecutor()
    graph, client, context, state = await run_until_interrupt(fleet, executor, "INV-A1")
    config: RunnableConfig = {"configurable": {"thread_id": "INV-A1"}}
    try:
        (pending,) = state["__interrupt__"]
        approvals = pending.value["approvals"]
        assert [(a["action"], a["target"]) for a in approvals] == [("block_ip", "45.33.32.156")]
        assert approvals[0]["approval_id"] == "INV-A1/A1"
        assert approvals[0]["guardrail"]["outcome"] == "await_approval"
        assert executor.calls == []  # nothing runs while a human decides
        snapshot = await graph.aget_state(config)
        assert snapshot.next == ("gate",)
        decision = {"decision": "approved", "by": "rita", "at": "2026-11-28T12:00:00Z"}
        state = await graph.ainvoke(
            Command(resume={"INV-A1/A1": decision}), config, context=context
        )
    finally:
        await client.close()
    report = state["report"]
    actions = by_action(report)
    assert actions["block_ip"]["status"] == "executed"
    assert actions["block_ip"]["approval"]["by"] == "rita"
    assert actions["block_url"]["status"] == "executed"  # allowed by policy, no human needed
    assert actions["block_url"]["guardrail"]["decision"] == "allow"
    assert sorted(o.key for o in executor.calls) == ["INV-A1/A1", "INV-A1/A2"]
    assert [o.approved_by for o in executor.calls if o.action == "block_ip"] == ["rita"]
    assert verify_receipt_chain(report)


@pytest.mark.parametrize(
    ("decisions", "status", "code"),
    [
        ({"INV-A2/A1": {"decision": "denied", "by": "rita"}}, "denied", "AURORA-4031"),
        # no decision for it (another approval's only): fail closed
        ({"INV-A2/A9": {"decision": "approved"}}, "expired", "AURORA-4080"),
        ({"INV-A2/A1": {"decision": "expired"}}, "expired", "AURORA-4080"),
        ({"INV-A2/A1": {"decision": "whatever"}}, "expired", "AURORA-4080"),
    ],
)
async def test_a_denied_or_unanswered_approval_never_executes(
    fleet: dict[str, Any],  # noqa: F811
    decisions: dict[str, Any],
    status: str,
    code: str,
) -> None:
    executor = CountingExecutor()
    graph, client, context, _ = await run_until_interrupt(fleet, executor, "INV-A2")
    try:
        state = await graph.ainvoke(
            Command(resume=decisions), {"configurable": {"thread_id": "INV-A2"}}, context=context
        )
    finally:
        await client.close()
    blocked = by_action(state["report"])["block_ip"]
    assert blocked["status"] == status
    assert blocked["error"]["code"] == code
    assert "execution" not in blocked
    assert [o.action for o in executor.calls] == ["block_url"]


def test_the_gate_follows_the_mode_and_the_responders_impact() -> None:
    proposed = [
        {"action": "block_ip", "target": "45.33.32.156", "impact": "medium", "reason": "c2"},
        {"action": "isolate_host", "target": "ws-17", "impact": "high", "reason": "beacon"},
        {"action": "block_ip", "target": "127.0.0.1", "impact": "low", "reason": "oops"},
    ]
    policy = parse_policy("{}")
    detected = {"type": "host", "value": "WS-17", "kind": "telemetry", "source": "rule R-1"}
    listed = Provenance(
        [],
        [
            *vouched("threat_intel", {"corroborations": [FEED_LISTING]}),
            *platform_corroborations([detected]),
        ],
    )
    statuses = {
        mode: [a["status"] for a in gate(policy, "INV-9", mode, proposed, listed)]
        for mode in SystemMode
    }
    assert statuses == {
        SystemMode.DRY_RUN: ["recorded", "recorded", "denied"],
        SystemMode.MONITOR: ["proposed", "proposed", "denied"],
        SystemMode.ACTIVE: ["approved", "awaiting_approval", "denied"],
    }
    active = gate(policy, "INV-9", SystemMode.ACTIVE, proposed, listed)
    assert active[1]["guardrail"]["decision"] == "require_approval"
    assert "high impact" in active[1]["guardrail"]["reasons"][-1]
    assert active[2]["error"]["code"] == "AURORA-4031"
    assert [a["key"] for a in active] == ["INV-9/A1", "INV-9/A2", "INV-9/A3"]
    assert active[0]["provenance"]["corroboration"] == "corroborated"
    assert active[0]["provenance"]["corroborated_by"] == [
        {"agent": "threat_intel", **{k: FEED_LISTING[k] for k in ("kind", "source", "type")}}
        | {"value": "45.33.32.156", "detail": FEED_LISTING["detail"]}
    ]
    assert active[0]["provenance"]["human_required"] is False
    assert active[1]["provenance"]["corroborated_by"][0]["agent"] == "platform"
    assert active[1]["provenance"]["human_required"] is True
    # without the corroborations, every disruptive action waits for a human in active mode
    bare = gate(policy, "INV-9", SystemMode.ACTIVE, proposed)
    assert [a["status"] for a in bare] == ["awaiting_approval", "awaiting_approval", "denied"]
    assert "uncorroborated" in bare[0]["guardrail"]["rules"]
    assert bare[0]["provenance"] == {
        "origin": [],
        "corroborated_by": [],
        "corroboration": "none",
        "human_required": True,
    }


async def test_a_tampered_receipt_fails_its_chain(fleet: dict[str, Any]) -> None:  # noqa: F811
    report = (await investigate(fleet, "INV-T"))["report"]
    assert verify_receipt_chain(report)
    edited = copy.deepcopy(report)
    edited["tool_calls"][0]["summary"] = "nothing to see"
    assert not verify_receipt_chain(edited)
    dropped = copy.deepcopy(report)
    del dropped["tool_calls"][1]
    assert not verify_receipt_chain(dropped)


# -- the LLM planner ---------------------------------------------------------------------------


async def test_the_llm_plans_through_the_specialists_tools(
    fleet: dict[str, Any],  # noqa: F811
) -> None:
    async with ScriptedOpenAI(models=(MODEL,)) as fake:
        fake.reply_tool_calls(
            [
                (
                    "threat_intel__analyze_threat",
                    {"iocs": [{"type": "ip", "value": "45.33.32.156"}], "context": "phish"},
                ),
                ("network__analyze_network", {"iocs": [{"type": "ip", "value": "45.33.32.156"}]}),
                ("threat_intel__analyze_threat", {"iocs": []}),  # twice in a round: refused
                ("shell__run", {"command": "rm -rf /"}),  # not a tool: refused
            ],
            usage=(900, 60),
        )
        fake.reply_text("A phishing server contacted by an encoded PowerShell.", usage=(1500, 20))
        async with LLMBackend(base_url=fake.base_url, model=MODEL, max_retries=0) as llm:
            state = await investigate(fleet, "INV-L", llm=llm)
        first, second = fake.chat_requests
    offered = set(first.tool_names)
    assert {"threat_intel__analyze_threat", "network__analyze_network"} <= offered
    assert "malware__analyze_malware" in offered
    assert not any(name.startswith("responder") for name in offered)
    # every call of the first turn is answered in the second request, paired by id
    assistant = second.messages[2]
    ids = [c["id"] for c in assistant["tool_calls"]]
    answers = {m["tool_call_id"]: m["content"] for m in second.messages[3:]}
    assert set(answers) == set(ids)
    assert len(second.messages) == 3 + len(ids)
    assert "already called" in answers[ids[2]]
    assert "unknown tool" in answers[ids[3]]
    assert '"severity"' in answers[ids[0]]
    assert '"agent": "network"' in answers[ids[1]]
    report = state["report"]
    assert report["planner"]["kind"] == "llm"
    assert report["planner"]["model"] == MODEL
    assert report["planner"]["prompt_version"] == "v2"
    assert sorted(f["agent"] for f in report["findings"]) == ["network", "threat_intel"]
    assert {f["tool_call_id"] for f in report["findings"]} == set(ids[:2])
    assert report["tokens"] == 900 + 60 + 1500 + 20
    transcript = state["messages"]
    assert transcript[-1] == {
        "role": "assistant",
        "content": "A phishing server contacted by an encoded PowerShell.",
    }


async def test_the_llm_may_ask_for_one_more_round_only(
    fleet: dict[str, Any],  # noqa: F811
) -> None:
    async with ScriptedOpenAI(models=(MODEL,)) as fake:
        fake.reply_tool_call(
            "malware__analyze_malware", {"command_lines": SUBJECT["command_lines"]}
        )
        fake.reply_tool_call(
            "threat_intel__analyze_threat", {"iocs": [{"type": "ip", "value": "45.33.32.156"}]}
        )
        async with LLMBackend(base_url=fake.base_url, model=MODEL, max_retries=0) as llm:
            state = await investigate(fleet, "INV-R", llm=llm)
        assert len(fake.chat_requests) == 2  # the bound: no third turn
    findings = state["report"]["findings"]
    assert [(f["agent"], f["round"]) for f in findings] == [("malware", 0), ("threat_intel", 1)]
    # the second round's call is answered too, though the model is not asked again
    assert state["messages"][-1]["role"] == "tool"
    assert state["messages"][-1]["tool_call_id"] == findings[1]["tool_call_id"]


async def test_an_unavailable_llm_leaves_planning_to_the_rules(
    fleet: dict[str, Any],  # noqa: F811
) -> None:
    async with ScriptedOpenAI(models=(MODEL,)) as fake:
        fake.fail(500)
        async with LLMBackend(base_url=fake.base_url, model=MODEL, max_retries=0) as llm:
            state = await investigate(fleet, "INV-F", llm=llm)
    report = state["report"]
    assert report["planner"]["kind"] == "builtin"
    assert report["planner"]["fallback"].startswith("LLM unavailable")
    assert {"threat_intel", "malware", "network"} <= {f["agent"] for f in report["findings"]}
    assert state.get("messages", []) == []
