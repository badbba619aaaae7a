"""respond: the responder's plan for the findings (a finding of its own, validated as it
enters the graph); skipped when there is no finding or no responder."""

from __future__ import annotations

import logging
import time
from typing import Final

from langgraph.runtime import Runtime
from pydantic import ValidationError

from agents.acp.client import CallOptions
from agents.catalog import SPECIALISTS
from orchestrator.context import GraphContext
from orchestrator.receipt import caught, stamp
from orchestrator.state import Failure, InvestigationState, ResponsePlan, Stage, received

RESPONDER: Final = "responder"
INTERNAL_KEYS: Final = frozenset({"round", "latency_ms", "tool_call_id"})
"""What the graph adds to a finding, which the responder is not given."""

log = logging.getLogger("aurora.orchestrator")


def _failed(stage: Stage, err: Exception) -> InvestigationState:
    error = caught(RESPONDER, stage, err)
    return {
        "response": None,
        "failures": [
            Failure(agent=RESPONDER, round=-1, reason=error.message, stage=stage, error=error.error)
        ],
        "errors": [error],
        "timeline": [stamp("agent_failed", agent=RESPONDER, reason=error.message)],
    }


async def respond(state: InvestigationState, runtime: Runtime[GraphContext]) -> InvestigationState:
    context = runtime.context
    findings = [
        f.model_dump(mode="json", exclude=set(INTERNAL_KEYS)) for f in state.get("findings", [])
    ]
    if not findings or RESPONDER not in context.available:
        return {"response": None, "timeline": [stamp("respond", skipped=True)]}
    investigation_id = state.get("investigation_id")
    started = time.perf_counter()
    try:
        reply = await context.client.call(
            RESPONDER,
            SPECIALISTS[RESPONDER].method,
            {
                "findings": findings,
                "mode": state.get("mode", "dry_run"),
                "investigation_id": investigation_id,
            },
            CallOptions(
                investigation_id=investigation_id,
                timeout=context.call_timeout,
                idempotency_key=f"{investigation_id}:respond",
            ),
        )
    except Exception as err:
        log.warning("%s: the responder failed", investigation_id, exc_info=True)
        return _failed("respond", err)
    elapsed = round((time.perf_counter() - started) * 1000, 3)
    try:
        plan = received(ResponsePlan, RESPONDER, reply, latency_ms=elapsed)
    except ValidationError as err:
        log.warning("%s: the responder replied with no valid plan", investigation_id, exc_info=True)
        return _failed("finding", err)
    return {
        "response": plan,
        "timeline": [stamp("respond", actions=len(plan.recommended_actions), latency_ms=elapsed)],
    }
