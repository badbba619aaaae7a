"""The investigation graph: intake → plan → parallel dispatch → correlate (one bounded extra
round when new indicators appear) → respond → gate (guardrails, human approval) → execute →
report.

Planning is rule-based without an LLM: the specialists whose inputs the subject carries. With
one, the model plans by calling the specialists' HandoffTools (:mod:`orchestrator.planner`), and
every call it makes is answered with its finding or failure before it is asked again; when it is
unavailable, the rules plan and the receipt says so. Specialists are called through the
HandoffClient; one that fails is recorded and the investigation completes degraded, its verdict
from the ones that answered; when every one dispatched failed, the verdict is ``inconclusive``
(nothing was examined, so nothing is benign). Response actions are decided again by the
platform's guardrail policy (:mod:`orchestrator.actions`), with the corroborations the
specialists' own sources gave (only from the agent whose role it is) and those of the platform's
own detections in the subject; one that needs a human stops the graph with a LangGraph
``interrupt`` until the decisions come back as the resume value, so the graph needs a
checkpointer when the mode is ``active``. ``build_graph()`` is a factory; nothing is global.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send, interrupt

from agents.acp.client import CallOptions, HandoffClient
from agents.acp.finding import SEVERITY_ORDER
from agents.acp.provenance import Provenance, platform_corroborations, vouched
from core.errors import AuroraError, LLMUnavailable
from core.guardrails import GuardrailPolicy, default_policy
from core.llm.backend import LLMBackend
from core.runtime import SystemMode
from orchestrator.actions import (
    ActionExecutor,
    apply_decisions,
    approval_requests,
    gate,
    order_for,
)
from orchestrator.planner import (
    PlannerTools,
    PlanStep,
    opening_messages,
    plan_turn,
    result_message,
    unanswered,
)
from orchestrator.state import AgentCall, InvestigationState
from prompts import load_prompt
from tools.ioc import extract_iocs, normalise_ioc

MAX_ROUNDS = 2
"""The first round, and at most one more for indicators the first one found."""
NETWORK_TYPES = frozenset({"ip", "domain", "url"})
HUNTABLE_TYPES = frozenset({"ip", "domain", "url", "hash", "email"})


@dataclass(frozen=True, slots=True)
class GraphDeps:
    client: HandoffClient
    available: frozenset[str]
    """The specialists the registry knows; the plan never names others."""
    call_timeout: float = 60.0
    policy: GuardrailPolicy = field(default_factory=default_policy)
    executor: ActionExecutor | None = None
    """Carries out approved actions; None: nothing is ever executed (reported ``failed``)."""
    llm: LLMBackend | None = None
    """The planner's model; None: rule-based planning."""
    planner_tools: PlannerTools | None = None


def _stamp(event: str, **fields: Any) -> dict[str, Any]:
    return {"at": round(time.time(), 3), "event": event, **fields}


def _intake(state: InvestigationState) -> dict[str, Any]:
    subject = state.get("subject", {})
    given = []
    for raw in subject.get("iocs", []):
        try:
            given.append(normalise_ioc(str(raw.get("type")), str(raw.get("value"))))
        except AuroraError:
            continue
    text = " ".join(str(subject.get(k, "")) for k in ("title", "text"))
    found = extract_iocs(text) if text.strip() else []
    iocs = [i.model_dump(exclude_none=True) for i in [*given, *found]]
    return {
        "iocs": iocs,
        "seed": iocs,
        "round": 0,
        "timeline": [_stamp("intake", iocs=len(iocs))],
    }


def _requests(
    state: InvestigationState, agents: list[str], round_: int, iocs: list[dict[str, Any]]
) -> list[AgentCall]:
    """The built-in planner's calls: each agent's method with the params it takes."""
    subject = state.get("subject", {})
    text = str(subject.get("text") or subject.get("title") or "") or None
    plain = [{"type": i["type"], "value": i["value"]} for i in iocs]
    calls: list[AgentCall] = []
    for agent in agents:
        params: dict[str, Any]
        if agent == "threat_intel":
            method, params = "analyze_threat", {"iocs": plain, "context": text}
        elif agent == "malware":
            method, params = (
                "analyze_malware",
                {
                    "hashes": [{"value": i["value"]} for i in iocs if i["type"] == "hash"],
                    "command_lines": list(subject.get("command_lines", [])),
                    "context": text,
                },
            )
        elif agent == "hunter":
            method, params = (
                "hunt_threats",
                {
                    "iocs": [i for i in plain if i["type"] in HUNTABLE_TYPES],
                    "hosts": list(subject.get("hosts", []))[:50],
                    "users": list(subject.get("users", []))[:50],
                    "context": text,
                },
            )
        elif agent == "network":
            method, params = (
                "analyze_network",
                {
                    "iocs": [i for i in plain if i["type"] in NETWORK_TYPES],
                    "context": text,
                },
            )
        else:
            continue
        calls.append(
            AgentCall(
                agent=agent,
                method=method,
                params=params,
                investigation_id=state.get("investigation_id", ""),
                round=round_,
                tool_call_id=None,
            )
        )
    return calls


def _rule_plan(state: InvestigationState, available: frozenset[str]) -> list[AgentCall]:
    subject = state.get("subject", {})
    iocs = state.get("iocs", [])
    kinds = {i["type"] for i in iocs}
    wanted: list[str] = []
    if kinds or subject.get("text"):
        wanted.append("threat_intel")
    if "hash" in kinds or subject.get("command_lines"):
        wanted.append("malware")
    if kinds & NETWORK_TYPES:
        wanted.append("network")
    if subject.get("hosts") or subject.get("users"):
        wanted.append("hunter")  # named hosts or accounts: scope them in the logs
    return _requests(state, [a for a in wanted if a in available], 0, iocs)


def _llm_planner(deps: GraphDeps) -> tuple[LLMBackend, PlannerTools] | None:
    if deps.llm is None or deps.planner_tools is None:
        return None
    return deps.llm, deps.planner_tools


def _plan(deps: GraphDeps):  # type: ignore[no-untyped-def]
    async def plan(state: InvestigationState) -> dict[str, Any]:
        fallback = None
        if (planner := _llm_planner(deps)) is not None:
            llm, tools = planner
            transcript = opening_messages(state.get("subject", {}), state.get("iocs", []))
            try:
                step = await plan_turn(
                    llm,
                    tools,
                    transcript,
                    investigation_id=state.get("investigation_id", ""),
                    round_=0,
                )
            except LLMUnavailable as err:
                fallback = f"LLM unavailable: {err.message}"
            else:
                if step.calls:
                    return _llm_step(transcript + step.messages, step, round_=0)
                fallback = "the model chose no specialist"
        calls = _rule_plan(state, deps.available)
        planner_info: dict[str, Any] = {"kind": "builtin"}
        if fallback is not None:
            planner_info["fallback"] = fallback
        return {
            "calls": calls,
            "planner": planner_info,
            "timeline": [_stamp("plan", planner="builtin", agents=[c["agent"] for c in calls])],
        }

    return plan


def _llm_step(messages: list[dict[str, Any]], step: PlanStep, *, round_: int) -> dict[str, Any]:
    update: dict[str, Any] = {
        "calls": step.calls,
        "messages": messages,
        "tokens": step.tokens,
        "timeline": [
            _stamp(
                "plan",
                planner="llm",
                round=round_,
                agents=[c["agent"] for c in step.calls],
                tokens=step.tokens,
            )
        ],
    }
    if round_ == 0:
        update["planner"] = {
            "kind": "llm",
            "model": step.model,
            "prompt_version": load_prompt("orchestrator_planner").version,
        }
    else:
        update["round"] = round_
    return update


def _fan_out(state: InvestigationState) -> list[Send] | Literal["respond"]:
    calls = state.get("calls", [])
    if not calls:
        return "respond"
    return [Send("call_agent", call) for call in calls]


def _call_agent(deps: GraphDeps):  # type: ignore[no-untyped-def]
    async def call_agent(call: AgentCall) -> dict[str, Any]:
        started = time.perf_counter()
        options = CallOptions(
            investigation_id=call["investigation_id"] or None,
            timeout=deps.call_timeout,
            idempotency_key=f"{call['investigation_id']}:{call['round']}:{call['agent']}",
        )
        link = {"tool_call_id": call["tool_call_id"]} if call.get("tool_call_id") else {}
        try:
            finding = await deps.client.call(call["agent"], call["method"], call["params"], options)
        except Exception as err:
            reason = err.message if isinstance(err, AuroraError) else type(err).__name__
            return {
                "failures": [
                    {"agent": call["agent"], "round": call["round"], "reason": reason, **link}
                ],
                "timeline": [_stamp("agent_failed", agent=call["agent"], reason=reason)],
            }
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        return {
            "findings": [{**finding, "round": call["round"], "latency_ms": elapsed, **link}],
            "corroborations": vouched(call["agent"], finding),
            "iocs": [dict(i) for i in finding.get("iocs", [])],
            "timeline": [
                _stamp(
                    "finding",
                    agent=call["agent"],
                    severity=finding.get("severity"),
                    latency_ms=elapsed,
                )
            ],
        }

    return call_agent


def _new_iocs(state: InvestigationState) -> list[dict[str, Any]]:
    """Indicators the specialists found that the investigation did not start with."""
    seed = {(i["type"], i["value"]) for i in state.get("seed", [])}
    return [i for i in state.get("iocs", []) if (i["type"], i["value"]) not in seed]


def _answers(state: InvestigationState) -> list[dict[str, Any]]:
    """A ``tool`` message for every call of the model's last turn still unanswered: its finding,
    its failure, or why there is none."""
    transcript = state.get("messages", [])
    pending = unanswered(transcript)
    if not pending:
        return []
    outcomes = {
        o["tool_call_id"]: o
        for o in [*state.get("findings", []), *state.get("failures", [])]
        if o.get("tool_call_id")
    }
    return [
        result_message(call_id, outcomes.get(call_id) or {"reason": "no result"})
        for call_id in pending
    ]


def _correlate(deps: GraphDeps):  # type: ignore[no-untyped-def]
    async def correlate(state: InvestigationState) -> dict[str, Any]:
        """Pair the model's calls with their results; then one more round when the model (or,
        with the rules, new indicators) asks for one."""
        current = state.get("round", 0)
        answers = _answers(state)
        new = _new_iocs(state)
        more = current + 1 < MAX_ROUNDS
        planner = _llm_planner(deps)
        if planner is not None and state.get("planner", {}).get("kind") == "llm":
            llm, tools = planner
            transcript = state.get("messages", []) + answers
            if more:
                try:
                    step = await plan_turn(
                        llm,
                        tools,
                        transcript,
                        investigation_id=state.get("investigation_id", ""),
                        round_=current + 1,
                    )
                except LLMUnavailable as err:
                    reason = f"LLM unavailable: {err.message}"
                    return {
                        "calls": [],
                        "messages": answers,
                        "timeline": [_stamp("correlate", new_iocs=len(new), stopped=reason)],
                    }
                if step.calls:
                    update = _llm_step(answers + step.messages, step, round_=current + 1)
                    update["timeline"].insert(
                        0, _stamp("correlate", new_iocs=len(new), next_round=True)
                    )
                    return update
                return {
                    "calls": [],
                    "messages": answers + step.messages,
                    "tokens": step.tokens,
                    "timeline": [_stamp("correlate", new_iocs=len(new), next_round=False)],
                }
            return {
                "calls": [],
                "messages": answers,
                "timeline": [_stamp("correlate", new_iocs=len(new), next_round=False)],
            }
        again = more and bool(new) and "threat_intel" in deps.available
        event = _stamp("correlate", new_iocs=len(new), next_round=again)
        if again:
            return {
                "round": current + 1,
                "calls": _requests(state, ["threat_intel"], current + 1, new),
                "timeline": [event],
            }
        return {"calls": [], "timeline": [event]}

    return correlate


INTERNAL_KEYS = frozenset({"round", "latency_ms", "tool_call_id"})


def _respond(deps: GraphDeps):  # type: ignore[no-untyped-def]
    async def respond(state: InvestigationState) -> dict[str, Any]:
        findings = [
            {k: v for k, v in f.items() if k not in INTERNAL_KEYS}
            for f in state.get("findings", [])
        ]
        if not findings or "responder" not in deps.available:
            return {"response": None, "timeline": [_stamp("respond", skipped=True)]}
        started = time.perf_counter()
        try:
            plan = await deps.client.call(
                "responder",
                "plan_response",
                {
                    "findings": findings,
                    "mode": state.get("mode", "dry_run"),
                    "investigation_id": state.get("investigation_id"),
                },
                CallOptions(
                    investigation_id=state.get("investigation_id"),
                    timeout=deps.call_timeout,
                    idempotency_key=f"{state.get('investigation_id')}:respond",
                ),
            )
        except Exception as err:
            reason = err.message if isinstance(err, AuroraError) else type(err).__name__
            return {
                "response": None,
                "failures": [{"agent": "responder", "round": -1, "reason": reason}],
                "timeline": [_stamp("agent_failed", agent="responder", reason=reason)],
            }
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        return {
            "response": {**plan, "latency_ms": elapsed},
            "timeline": [
                _stamp(
                    "respond",
                    actions=len(plan.get("recommended_actions", [])),
                    latency_ms=elapsed,
                )
            ],
        }

    return respond


def _gate(deps: GraphDeps):  # type: ignore[no-untyped-def]
    def gate_actions(state: InvestigationState) -> dict[str, Any]:
        """The platform's own guardrail decision on every planned action; those a human must
        decide stop the graph here until the decisions are the resume value."""
        response = state.get("response") or {}
        subject = state.get("subject", {})
        provenance = Provenance(
            state.get("findings", []),
            [
                *state.get("corroborations", []),
                *platform_corroborations(subject.get("corroborations") or []),
            ],
        )
        actions = gate(
            deps.policy,
            state.get("investigation_id", ""),
            SystemMode(state.get("mode", "dry_run")),
            list(response.get("recommended_actions", [])),
            provenance,
        )
        events = []
        if pending := approval_requests(actions):
            decisions = interrupt({"approvals": pending})
            actions = apply_decisions(actions, decisions if isinstance(decisions, dict) else {})
            decided = {a["key"]: a["approval"]["decision"] for a in actions if "approval" in a}
            events.append(_stamp("approvals", decided=decided))
        counts: dict[str, int] = {}
        for action in actions:
            counts[action["status"]] = counts.get(action["status"], 0) + 1
        events.append(_stamp("guardrails", **counts))
        return {"actions": actions, "timeline": events}

    return gate_actions


def _execute(deps: GraphDeps):  # type: ignore[no-untyped-def]
    async def execute(state: InvestigationState) -> dict[str, Any]:
        """Carry out the approved actions, each at most once (the executor keeps the keys)."""
        investigation_id = state.get("investigation_id", "")
        done: list[dict[str, Any]] = []
        events = []
        for action in state.get("actions", []):
            if action["status"] != "approved":
                done.append(action)
                continue
            if deps.executor is None:
                execution: dict[str, Any] = {"status": "failed", "detail": "no executor"}
            else:
                try:
                    result = await deps.executor.execute(order_for(investigation_id, action))
                except Exception as err:
                    execution = {"status": "failed", "detail": type(err).__name__}
                else:
                    execution = {
                        "status": result.status,
                        "executor": result.executor,
                        "detail": result.detail,
                        "replayed": result.replayed,
                    }
            done.append({**action, "status": execution["status"], "execution": execution})
            events.append(
                _stamp(
                    "action",
                    key=action["key"],
                    action=action["action"],
                    target=action["target"],
                    status=execution["status"],
                )
            )
        return {"actions": done, "timeline": events}

    return execute


def tool_call_chain(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Each record with ``chain``: SHA-256 over the previous link (64 zeros first) and the
    record's canonical JSON (sorted keys); and the last link. Anyone holding the records can
    recompute it, so a receipt whose tool calls were edited no longer matches its chain."""
    chain = "0" * 64
    linked = []
    for record in records:
        chain = hashlib.sha256((chain + json.dumps(record, sort_keys=True)).encode()).hexdigest()
        linked.append({**record, "chain": chain})
    return linked, chain


def verify_receipt_chain(receipt: dict[str, Any]) -> bool:
    """Whether ``receipt``'s tool calls still hash to its ``tool_call_chain``."""
    records = [{k: v for k, v in c.items() if k != "chain"} for c in receipt.get("tool_calls", [])]
    linked, last = tool_call_chain(records)
    return last == receipt.get("tool_call_chain") and all(
        a["chain"] == b.get("chain") for a, b in zip(linked, receipt["tool_calls"], strict=True)
    )


def _mentions(evidence: dict[str, Any], technique: str) -> bool:
    text = f"{evidence.get('ref', '')} {evidence.get('summary', '')}"
    return technique in text or technique.split(".")[0] in text


def _techniques(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each technique with the agents that name it and the evidence behind each."""
    by_id: dict[str, dict[str, Any]] = {}
    for finding in findings:
        for technique in finding.get("mitre_techniques", []):
            entry = by_id.setdefault(technique, {"id": technique, "agents": [], "support": []})
            if finding["agent"] not in entry["agents"]:
                entry["agents"].append(finding["agent"])
            evidence = finding.get("evidence", [])
            cited = [e for e in evidence if _mentions(e, technique)] or [
                e for e in evidence if e.get("kind") == "tool_call"
            ]
            entry["support"].append(
                {
                    "agent": finding["agent"],
                    "summary": finding.get("summary", ""),
                    "evidence": [
                        {k: e.get(k) for k in ("kind", "ref", "summary")} for e in cited[:5]
                    ],
                }
            )
    return list(by_id.values())


def _verdict(findings: list[dict[str, Any]], failures: list[dict[str, Any]], severity: str) -> str:
    if failures and not findings:
        return "inconclusive"  # every specialist dispatched failed: nothing was examined
    if SEVERITY_ORDER[severity] >= SEVERITY_ORDER["high"]:
        return "malicious"
    if SEVERITY_ORDER[severity] >= SEVERITY_ORDER["medium"]:
        return "suspicious"
    return "benign_or_unknown"


def _report(state: InvestigationState) -> dict[str, Any]:
    findings = state.get("findings", [])
    failures = state.get("failures", [])
    severity = max(
        (f["severity"] for f in findings), key=SEVERITY_ORDER.__getitem__, default="informational"
    )
    confidence = max((f["confidence"] for f in findings), default=0.0)
    verdict = _verdict(findings, failures, severity)
    response = state.get("response")
    sources = [*findings, *([response] if response else [])]
    records = [
        {"agent": finding["agent"], "tool": evidence["ref"], "summary": evidence["summary"]}
        for finding in sources
        for evidence in finding.get("evidence", [])
        if evidence.get("kind") == "tool_call"
    ]
    tool_calls, chain = tool_call_chain(records)
    tokens = int(state.get("tokens", 0) or 0) + sum(int(f.get("tokens", 0) or 0) for f in sources)
    report = {
        "verdict": verdict,
        "severity": severity,
        "confidence": confidence,
        "techniques": _techniques(findings),
        "iocs": state.get("iocs", []),
        "findings": findings,
        "failures": failures,
        "degraded": bool(failures) or any(f.get("degraded") for f in sources),
        "planner": state.get("planner", {"kind": "builtin"}),
        "response": response,
        "actions": state.get("actions", []),
        "tool_calls": tool_calls,
        "tool_call_chain": chain,
        "tokens": tokens,
    }
    return {"report": report, "timeline": [_stamp("report", verdict=verdict)]}


def build_graph(
    deps: GraphDeps, *, checkpointer: BaseCheckpointSaver[Any] | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The investigation graph over ``deps`` (compile once, run per investigation: one thread
    per investigation id when ``checkpointer`` is given)."""
    graph = StateGraph(InvestigationState)
    graph.add_node("intake", _intake)
    graph.add_node("plan", _plan(deps))
    graph.add_node("call_agent", _call_agent(deps))
    graph.add_node("correlate", _correlate(deps))
    graph.add_node("respond", _respond(deps))
    graph.add_node("gate", _gate(deps))
    graph.add_node("execute", _execute(deps))
    graph.add_node("report", _report)
    graph.add_edge(START, "intake")
    graph.add_edge("intake", "plan")
    graph.add_conditional_edges("plan", _fan_out, ["call_agent", "respond"])
    graph.add_edge("call_agent", "correlate")
    graph.add_conditional_edges("correlate", _fan_out, ["call_agent", "respond"])
    graph.add_edge("respond", "gate")
    graph.add_edge("gate", "execute")
    graph.add_edge("execute", "report")
    graph.add_edge("report", END)
    return graph.compile(checkpointer=checkpointer)
