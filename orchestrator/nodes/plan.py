"""plan: the first round's calls, from the model when one is configured (it calls the
specialists' tools), else, or when it is unavailable or chooses none, from the catalogue's
rules (:mod:`orchestrator.rules`); the receipt says which planned and why the rules did."""

from __future__ import annotations

import logging

from langgraph.runtime import Runtime

from core.errors import LLMUnavailable
from core.llm.types import Message
from orchestrator.context import GraphContext
from orchestrator.planner import PlanStep, opening_messages, plan_turn
from orchestrator.receipt import caught, stamp
from orchestrator.rules import rule_plan
from orchestrator.state import InvestigationState, PlannerInfo
from prompts import load_prompt

log = logging.getLogger("aurora.orchestrator")


def llm_update(messages: list[Message], step: PlanStep, *, round_: int) -> InvestigationState:
    """The state update for a round the model planned (``messages``: what it adds to the
    transcript)."""
    update: InvestigationState = {
        "calls": step.calls,
        "messages": messages,
        "tokens": step.tokens,
        "timeline": [
            stamp(
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


async def plan(state: InvestigationState, runtime: Runtime[GraphContext]) -> InvestigationState:
    context = runtime.context
    investigation_id = state.get("investigation_id", "")
    subject = state["subject"]
    errors = []
    fallback = None
    if (planner := context.llm_planner) is not None:
        llm, tools = planner
        transcript = opening_messages(subject, state.get("iocs", []))
        try:
            step = await plan_turn(
                llm, tools, transcript, investigation_id=investigation_id, round_=0
            )
        except LLMUnavailable as err:
            log.warning("%s: the LLM planner is unavailable", investigation_id, exc_info=True)
            fallback = f"LLM unavailable: {err.message}"
            errors.append(caught("planner", "plan", err))
        else:
            if step.calls:
                return llm_update(transcript + step.messages, step, round_=0)
            fallback = "the model chose no specialist"
    calls = rule_plan(subject, context.available, investigation_id=investigation_id)
    info: PlannerInfo = {"kind": "builtin"}
    if fallback is not None:
        info["fallback"] = fallback
    return {
        "calls": calls,
        "planner": info,
        "errors": errors,
        "timeline": [stamp("plan", planner="builtin", agents=[c["agent"] for c in calls])],
    }
