"""correlate: pair the model's calls with their results; then one more round (at most) when the
model asks for one, or, with the rules, for the indicators the first round found."""

from __future__ import annotations

import logging
from typing import Final

from langgraph.runtime import Runtime

from agents.acp.finding import FindingIoc
from core.errors import LLMUnavailable
from core.llm.types import Message
from orchestrator.context import GraphContext
from orchestrator.nodes.plan import llm_update
from orchestrator.planner import plan_turn, result_message, unanswered
from orchestrator.receipt import caught, stamp
from orchestrator.rules import follow_up
from orchestrator.state import AgentFinding, Failure, InvestigationState

MAX_ROUNDS: Final = 2
"""The first round, and at most one more."""

log = logging.getLogger("aurora.orchestrator")


def new_iocs(state: InvestigationState) -> list[FindingIoc]:
    """Indicators the specialists found that the investigation did not start with."""
    seed = {(i.type, i.value) for i in state["subject"].iocs}
    return [i for i in state.get("iocs", []) if (i.type, i.value) not in seed]


def answers(state: InvestigationState) -> list[Message]:
    """A ``tool`` message for every call of the model's last turn still unanswered: its finding,
    its failure, or why there is none."""
    pending = unanswered(state.get("messages", []))
    if not pending:
        return []
    given: list[AgentFinding | Failure] = [*state.get("findings", []), *state.get("failures", [])]
    outcomes: dict[str, AgentFinding | Failure] = {}
    for outcome in given:
        if outcome.tool_call_id:
            outcomes[outcome.tool_call_id] = outcome
    return [result_message(call_id, outcomes.get(call_id)) for call_id in pending]


async def _llm_round(
    state: InvestigationState, context: GraphContext, found: int
) -> InvestigationState:
    current = state.get("round", 0)
    replies = answers(state)
    planner = context.llm_planner
    if planner is None or current + 1 >= MAX_ROUNDS:
        return {
            "calls": [],
            "messages": replies,
            "timeline": [stamp("correlate", new_iocs=found, next_round=False)],
        }
    llm, tools = planner
    investigation_id = state.get("investigation_id", "")
    try:
        step = await plan_turn(
            llm,
            tools,
            state.get("messages", []) + replies,
            investigation_id=investigation_id,
            round_=current + 1,
        )
    except LLMUnavailable as err:
        log.warning("%s: the LLM planner is unavailable", investigation_id, exc_info=True)
        return {
            "calls": [],
            "messages": replies,
            "errors": [caught("planner", "correlate", err)],
            "timeline": [
                stamp("correlate", new_iocs=found, stopped=f"LLM unavailable: {err.message}")
            ],
        }
    if step.calls:
        update = llm_update(replies + step.messages, step, round_=current + 1)
        event = stamp("correlate", new_iocs=found, next_round=True)
        update["timeline"] = [event, *update.get("timeline", [])]
        return update
    return {
        "calls": [],
        "messages": replies + step.messages,
        "tokens": step.tokens,
        "timeline": [stamp("correlate", new_iocs=found, next_round=False)],
    }


async def correlate(
    state: InvestigationState, runtime: Runtime[GraphContext]
) -> InvestigationState:
    context = runtime.context
    new = new_iocs(state)
    if state.get("planner", {}).get("kind") == "llm":
        return await _llm_round(state, context, len(new))
    current = state.get("round", 0)
    calls = (
        follow_up(
            state["subject"],
            new,
            context.available,
            investigation_id=state.get("investigation_id", ""),
            round_=current + 1,
        )
        if new and current + 1 < MAX_ROUNDS
        else []
    )
    event = stamp("correlate", new_iocs=len(new), next_round=bool(calls))
    if calls:
        return {"round": current + 1, "calls": calls, "timeline": [event]}
    return {"calls": [], "timeline": [event]}
