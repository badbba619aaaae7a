"""gate: the platform's own guardrail decision on every planned action, with the
corroborations the specialists' own sources gave and those of the platform's detections;
the actions a human must decide stop the graph here (a LangGraph ``interrupt``) until the
decisions are the resume value."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agents.acp.provenance import Provenance, platform_corroborations
from core.runtime import SystemMode
from orchestrator.actions import apply_decisions, approval_requests, gate
from orchestrator.context import GraphContext
from orchestrator.receipt import stamp
from orchestrator.state import InvestigationState


async def gate_actions(
    state: InvestigationState, runtime: Runtime[GraphContext]
) -> InvestigationState:
    """Async for the same reason as ``intake`` (no worker-thread hop)."""
    response = state.get("response")
    provenance = Provenance(
        [f.model_dump(mode="json") for f in state.get("findings", [])],
        [
            *state.get("corroborations", []),
            *platform_corroborations(state["subject"].corroborations),
        ],
    )
    actions = gate(
        runtime.context.policy,
        state.get("investigation_id", ""),
        SystemMode(state.get("mode", "dry_run")),
        [a.model_dump(mode="json") for a in response.recommended_actions] if response else [],
        provenance,
    )
    events = []
    if pending := approval_requests(actions):
        decisions: Any = interrupt({"approvals": pending})
        actions = apply_decisions(actions, decisions if isinstance(decisions, dict) else {})
        decided = {a["key"]: a["approval"]["decision"] for a in actions if "approval" in a}
        events.append(stamp("approvals", decided=decided))
    counts: dict[str, int] = {}
    for action in actions:
        counts[action["status"]] = counts.get(action["status"], 0) + 1
    events.append(stamp("guardrails", **counts))
    return {"actions": actions, "timeline": events}
