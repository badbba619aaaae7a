"""The state of one investigation as it flows through the graph, with its reducers."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


def merge_iocs(known: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Union of indicators by (type, value), first seen first."""
    seen = {(i["type"], i["value"]) for i in known}
    merged = list(known)
    for ioc in new:
        key = (ioc["type"], ioc["value"])
        if key not in seen:
            seen.add(key)
            merged.append(ioc)
    return merged


class InvestigationState(TypedDict, total=False):
    """What the nodes share. Lists with a reducer are appended to by parallel branches."""

    investigation_id: str
    subject: dict[str, Any]
    """What to investigate: ``title``, ``text``, ``iocs``, ``command_lines``, ``alert_id``, and
    ``corroborations``: indicators the platform's own detections confirm (set by the gateway,
    never by a caller)."""
    mode: str
    iocs: Annotated[list[dict[str, Any]], merge_iocs]
    seed: list[dict[str, Any]]
    """The indicators the investigation started with."""
    round: int
    calls: list[AgentCall]
    """The calls of the current round (dispatched in parallel)."""
    planner: dict[str, Any]
    """Who planned: ``{"kind": "builtin" | "llm", "model", "prompt_version", "fallback"}``."""
    messages: Annotated[list[dict[str, Any]], operator.add]
    """The LLM planner's transcript (OpenAI chat format); empty with the built-in planner."""
    tokens: Annotated[int, operator.add]
    """LLM tokens the planner spent."""
    findings: Annotated[list[dict[str, Any]], operator.add]
    corroborations: Annotated[list[dict[str, Any]], operator.add]
    """What the specialists' own sources confirm, kept only from the agent whose role it is
    (:func:`agents.acp.provenance.vouched`), each with that agent."""
    failures: Annotated[list[dict[str, Any]], operator.add]
    timeline: Annotated[list[dict[str, Any]], operator.add]
    response: dict[str, Any] | None
    actions: list[dict[str, Any]]
    """The response plan's actions with the gateway's guardrail decision, approval and
    execution each (see :mod:`orchestrator.actions`)."""
    report: dict[str, Any] | None


class AgentCall(TypedDict):
    """The payload of one parallel branch (LangGraph ``Send``)."""

    agent: str
    method: str
    params: dict[str, Any]
    investigation_id: str
    round: int
    tool_call_id: str | None
    """The LLM planner's call this answers (None with the built-in planner)."""
