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
    """What to investigate: ``title``, ``text``, ``iocs``, ``command_lines``, ``alert_id``."""
    mode: str
    iocs: Annotated[list[dict[str, Any]], merge_iocs]
    seed: list[dict[str, Any]]
    """The indicators the investigation started with."""
    round: int
    plan: list[str]
    """The agents to call in the current round."""
    findings: Annotated[list[dict[str, Any]], operator.add]
    failures: Annotated[list[dict[str, Any]], operator.add]
    timeline: Annotated[list[dict[str, Any]], operator.add]
    response: dict[str, Any] | None
    report: dict[str, Any] | None


class AgentCall(TypedDict):
    """The payload of one parallel branch (LangGraph ``Send``)."""

    agent: str
    method: str
    params: dict[str, Any]
    investigation_id: str
    round: int
