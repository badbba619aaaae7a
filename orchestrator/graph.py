"""The investigation graph: intake → plan → parallel dispatch → correlate (one bounded extra
round when new indicators appear) → respond → report.

Planning here is rule-based: the specialists whose inputs the subject carries. Specialists are
called through the HandoffClient; one that fails is recorded and the investigation completes
degraded. ``build_graph()`` is a factory; nothing is global.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

from agents.acp.client import CallOptions, HandoffClient
from agents.acp.finding import SEVERITY_ORDER
from core.errors import AuroraError
from orchestrator.state import AgentCall, InvestigationState
from tools.ioc import extract_iocs, normalise_ioc

MAX_ROUNDS = 2
"""The first round, and at most one more for indicators the first one found."""
NETWORK_TYPES = frozenset({"ip", "domain", "url"})


@dataclass(frozen=True, slots=True)
class GraphDeps:
    client: HandoffClient
    available: frozenset[str]
    """The specialists the registry knows; the plan never names others."""
    call_timeout: float = 60.0


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


def _requests(state: InvestigationState, agents: list[str]) -> list[AgentCall]:
    subject = state.get("subject", {})
    text = str(subject.get("text") or subject.get("title") or "") or None
    iocs = state.get("iocs", []) if state.get("round", 0) == 0 else _new_iocs(state)
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
                round=state.get("round", 0),
            )
        )
    return calls


def _plan(deps: GraphDeps):  # type: ignore[no-untyped-def]
    def plan(state: InvestigationState) -> dict[str, Any]:
        subject = state.get("subject", {})
        kinds = {i["type"] for i in state.get("iocs", [])}
        wanted: list[str] = []
        if kinds or subject.get("text"):
            wanted.append("threat_intel")
        if "hash" in kinds or subject.get("command_lines"):
            wanted.append("malware")
        if kinds & NETWORK_TYPES:
            wanted.append("network")
        chosen = [a for a in wanted if a in deps.available]
        return {"plan": chosen, "timeline": [_stamp("plan", agents=chosen)]}

    return plan


def _fan_out(state: InvestigationState) -> list[Send] | Literal["respond"]:
    calls = _requests(state, state.get("plan", []))
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
        try:
            finding = await deps.client.call(call["agent"], call["method"], call["params"], options)
        except Exception as err:
            reason = err.message if isinstance(err, AuroraError) else type(err).__name__
            return {
                "failures": [{"agent": call["agent"], "round": call["round"], "reason": reason}],
                "timeline": [_stamp("agent_failed", agent=call["agent"], reason=reason)],
            }
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        return {
            "findings": [{**finding, "round": call["round"], "latency_ms": elapsed}],
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


def _correlate(deps: GraphDeps):  # type: ignore[no-untyped-def]
    def correlate(state: InvestigationState) -> dict[str, Any]:
        """One more round, on the new indicators only, when the first round found some."""
        current = state.get("round", 0)
        new = _new_iocs(state)
        again = current + 1 < MAX_ROUNDS and bool(new) and "threat_intel" in deps.available
        event = _stamp("correlate", new_iocs=len(new), next_round=again)
        if again:
            return {"round": current + 1, "plan": ["threat_intel"], "timeline": [event]}
        return {"plan": [], "timeline": [event]}

    return correlate


def _after_correlate(state: InvestigationState) -> list[Send] | Literal["respond"]:
    return _fan_out(state) if state.get("plan") else "respond"


def _respond(deps: GraphDeps):  # type: ignore[no-untyped-def]
    async def respond(state: InvestigationState) -> dict[str, Any]:
        findings = [
            {k: v for k, v in f.items() if k not in {"round", "latency_ms"}}
            for f in state.get("findings", [])
        ]
        if not findings or "responder" not in deps.available:
            return {"response": None, "timeline": [_stamp("respond", skipped=True)]}
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
                    investigation_id=state.get("investigation_id"), timeout=deps.call_timeout
                ),
            )
        except Exception as err:
            reason = err.message if isinstance(err, AuroraError) else type(err).__name__
            return {
                "response": None,
                "failures": [{"agent": "responder", "round": -1, "reason": reason}],
                "timeline": [_stamp("agent_failed", agent="responder", reason=reason)],
            }
        return {
            "response": plan,
            "timeline": [_stamp("respond", actions=len(plan.get("recommended_actions", [])))],
        }

    return respond


def _report(state: InvestigationState) -> dict[str, Any]:
    findings = state.get("findings", [])
    severity = max(
        (f["severity"] for f in findings), key=SEVERITY_ORDER.__getitem__, default="informational"
    )
    techniques: dict[str, list[str]] = {}
    for finding in findings:
        for technique in finding.get("mitre_techniques", []):
            techniques.setdefault(technique, []).append(finding["agent"])
    confidence = max((f["confidence"] for f in findings), default=0.0)
    verdict = (
        "malicious"
        if SEVERITY_ORDER[severity] >= SEVERITY_ORDER["high"]
        else "suspicious"
        if SEVERITY_ORDER[severity] >= SEVERITY_ORDER["medium"]
        else "benign_or_unknown"
    )
    chain = "0" * 64
    tool_calls = []
    for finding in findings:
        for evidence in finding.get("evidence", []):
            if evidence.get("kind") != "tool_call":
                continue
            record = {
                "agent": finding["agent"],
                "tool": evidence["ref"],
                "summary": evidence["summary"],
            }
            chain = hashlib.sha256(
                (chain + json.dumps(record, sort_keys=True)).encode()
            ).hexdigest()
            tool_calls.append({**record, "chain": chain})
    report = {
        "verdict": verdict,
        "severity": severity,
        "confidence": confidence,
        "techniques": [{"id": t, "agents": sorted(set(a))} for t, a in techniques.items()],
        "iocs": state.get("iocs", []),
        "findings": findings,
        "failures": state.get("failures", []),
        "degraded": bool(state.get("failures")),
        "response": state.get("response"),
        "tool_calls": tool_calls,
        "tool_call_chain": chain,
    }
    return {"report": report, "timeline": [_stamp("report", verdict=verdict)]}


def build_graph(deps: GraphDeps) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The investigation graph over ``deps`` (compile once, run per investigation)."""
    graph = StateGraph(InvestigationState)
    graph.add_node("intake", _intake)
    graph.add_node("plan", _plan(deps))
    graph.add_node("call_agent", _call_agent(deps))
    graph.add_node("correlate", _correlate(deps))
    graph.add_node("respond", _respond(deps))
    graph.add_node("report", _report)
    graph.add_edge(START, "intake")
    graph.add_edge("intake", "plan")
    graph.add_conditional_edges("plan", _fan_out, ["call_agent", "respond"])
    graph.add_edge("call_agent", "correlate")
    graph.add_conditional_edges("correlate", _after_correlate, ["call_agent", "respond"])
    graph.add_edge("respond", "report")
    graph.add_edge("report", END)
    return graph.compile()
