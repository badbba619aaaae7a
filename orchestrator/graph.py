"""The investigation graph: intake → plan → parallel dispatch → correlate (one bounded extra
round) → respond → gate (guardrails, human approval) → execute (when an action is approved)
→ report.

Planning reads the specialist catalogue (:mod:`agents.catalog`): without an LLM the rules
dispatch every specialist whose wanted subjects the investigation has; with one, the model
plans by calling the specialists' HandoffTools (:mod:`orchestrator.planner`), and every call it
makes is answered with its finding or failure before it is asked again; when it is
unavailable, the rules plan and the receipt says so. A specialist's reply is validated into a
finding as it enters the graph; one that fails, or replies with no valid finding, is recorded
and the investigation completes degraded, its verdict from the ones that answered; when every
one dispatched failed, the verdict is ``inconclusive`` (nothing was examined, so nothing is
benign). Response actions are decided again by the platform's guardrail policy
(:mod:`orchestrator.actions`); one that needs a human stops the graph with a LangGraph
``interrupt`` until the decisions come back as the resume value, so the graph needs a
checkpointer when the mode is ``active``.

The nodes (:mod:`orchestrator.nodes`) take their dependencies from the run's context:
``graph.ainvoke(input, config, context=GraphContext(...))``. ``build_graph()`` is a factory;
nothing is global.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from orchestrator.context import GraphContext
from orchestrator.edges import execute_or_report, fan_out
from orchestrator.nodes.correlate import correlate
from orchestrator.nodes.dispatch import call_agent
from orchestrator.nodes.execute import execute
from orchestrator.nodes.gate import gate_actions
from orchestrator.nodes.intake import intake
from orchestrator.nodes.plan import plan
from orchestrator.nodes.report import report
from orchestrator.nodes.respond import respond
from orchestrator.state import AgentCall, InvestigationInput, InvestigationState

type InvestigationGraph = CompiledStateGraph[
    InvestigationState, GraphContext, InvestigationInput, InvestigationState
]


def build_graph(*, checkpointer: BaseCheckpointSaver[Any] | None = None) -> InvestigationGraph:
    """The investigation graph (compile once, run per investigation with its context: one
    thread per investigation id when ``checkpointer`` is given)."""
    graph = StateGraph(
        InvestigationState, context_schema=GraphContext, input_schema=InvestigationInput
    )
    graph.add_node("intake", intake)
    graph.add_node("plan", plan)
    graph.add_node("call_agent", call_agent, input_schema=AgentCall)
    graph.add_node("correlate", correlate)
    graph.add_node("respond", respond)
    graph.add_node("gate", gate_actions)
    graph.add_node("execute", execute)
    graph.add_node("report", report)
    graph.add_edge(START, "intake")
    graph.add_edge("intake", "plan")
    graph.add_conditional_edges("plan", fan_out, ["call_agent", "respond"])
    graph.add_edge("call_agent", "correlate")
    graph.add_conditional_edges("correlate", fan_out, ["call_agent", "respond"])
    graph.add_edge("respond", "gate")
    graph.add_conditional_edges("gate", execute_or_report, ["execute", "report"])
    graph.add_edge("execute", "report")
    graph.add_edge("report", END)
    return graph.compile(checkpointer=checkpointer)
