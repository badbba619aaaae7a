"""call_agent: one specialist's call, a parallel branch of its round. Its reply enters the
graph here, validated into a finding of that agent (:func:`orchestrator.state.received`); a
call that fails, or a reply that is not such a finding, is that agent's failure."""

from __future__ import annotations

import logging
import time

from langgraph.runtime import Runtime
from pydantic import ValidationError

from agents.acp.client import CallOptions
from agents.acp.provenance import vouched
from orchestrator.context import GraphContext
from orchestrator.receipt import caught, stamp
from orchestrator.state import AgentCall, AgentFinding, Failure, InvestigationState, Stage, received

log = logging.getLogger("aurora.orchestrator")


def _failed(call: AgentCall, stage: Stage, err: Exception) -> InvestigationState:
    error = caught(call["agent"], stage, err)
    failure = Failure(
        agent=call["agent"],
        round=call["round"],
        reason=error.message,
        stage=stage,
        error=error.error,
        tool_call_id=call.get("tool_call_id"),
    )
    return {
        "failures": [failure],
        "errors": [error],
        "timeline": [stamp("agent_failed", agent=call["agent"], reason=failure.reason)],
    }


async def call_agent(state: AgentCall, runtime: Runtime[GraphContext]) -> InvestigationState:
    """``state``: the call (the branch's ``Send`` payload)."""
    call, context = state, runtime.context
    agent, investigation_id = call["agent"], call["investigation_id"]
    started = time.perf_counter()
    options = CallOptions(
        investigation_id=investigation_id or None,
        timeout=context.call_timeout,
        idempotency_key=f"{investigation_id}:{call['round']}:{agent}",
    )
    try:
        reply = await context.client.call(agent, call["method"], call["params"], options)
    except Exception as err:
        log.warning("%s: the call to %s failed", investigation_id, agent, exc_info=True)
        return _failed(call, "dispatch", err)
    elapsed = round((time.perf_counter() - started) * 1000, 3)
    try:
        finding = received(
            AgentFinding,
            agent,
            reply,
            round=call["round"],
            latency_ms=elapsed,
            tool_call_id=call.get("tool_call_id"),
        )
    except ValidationError as err:
        log.warning("%s: %s replied with no valid finding", investigation_id, agent, exc_info=True)
        return _failed(call, "finding", err)
    return {
        "findings": [finding],
        "corroborations": vouched(
            agent, {"corroborations": [c.model_dump(mode="json") for c in finding.corroborations]}
        ),
        "iocs": list(finding.iocs),
        "timeline": [
            stamp("finding", agent=agent, severity=finding.severity.value, latency_ms=elapsed)
        ],
    }
