"""The graph's conditional edges."""

from __future__ import annotations

from typing import Literal

from langgraph.types import Send

from orchestrator.state import InvestigationState


async def fan_out(state: InvestigationState) -> list[Send] | Literal["respond"]:
    """The round's calls, one parallel ``call_agent`` branch each; none: on to ``respond``.

    A coroutine, though it never waits: LangGraph runs a plain function of an async graph on
    a worker thread, two thread hops an investigation for a few dictionary lookups."""
    calls = state.get("calls", [])
    if not calls:
        return "respond"
    return [Send("call_agent", call) for call in calls]


async def execute_or_report(state: InvestigationState) -> Literal["execute", "report"]:
    """``execute`` when the gate approved an action; else straight to ``report``: ``execute``
    would pass every action through unchanged and record nothing (in ``dry_run`` and
    ``monitor``, and when nothing was approved), and a graph step costs more than this."""
    if any(action["status"] == "approved" for action in state.get("actions", [])):
        return "execute"
    return "report"
