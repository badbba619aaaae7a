"""What LangGraph's engine alone costs an investigation: the investigation graph's own topology
(:func:`orchestrator.graph.build_graph`: its nodes, edges and conditional edges) run with nodes
that do nothing, against the same nodes called in the same order by a plain coroutine, in the
same run.

The no-op nodes return the keys the real ones return, so the graph takes the path a built-in
investigation of ``benchmarks/investigate.py`` takes: intake, plan, three parallel
``call_agent`` branches, correlate, a second round of one, correlate, respond, gate and report.
The conditional edges are the graph's own. The graph is invoked as the gateway invokes it
(``durability="exit"``, only the receipt's keys mapped), with LangGraph's in-memory saver
standing in for the gateway's held checkpoints, and without a checkpointer. What is left is the
engine's own work per investigation: preparing tasks, applying writes, checkpointing the
channels in memory, streaming. Set it beside the gateway's CPU per investigation in
``benchmarks/investigate.py``.

    .venv/bin/python benchmarks/graph_engine.py [--runs 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import eventloop
from gateway.investigations.service import RECEIPT_KEYS
from orchestrator.graph import build_graph

FIRST_ROUND: Final = ("threat_intel", "malware", "network")
"""The specialists a built-in investigation of ``benchmarks/investigate.py``'s subject asks
first; ``threat_intel`` again in a second round (it finds new indicators), then the responder
(from ``respond``): five calls."""

type Node = Callable[[Any], Awaitable[dict[str, Any]]]


def _entry(node: str) -> list[dict[str, Any]]:
    return [{"node": node, "at": time.time()}]


def _calls(state: Any, agents: Sequence[str], round_: int) -> list[dict[str, Any]]:
    return [
        {
            "agent": agent,
            "method": "analyze",
            "params": {"investigation_id": state["investigation_id"]},
            "investigation_id": state["investigation_id"],
            "round": round_,
            "tool_call_id": None,
        }
        for agent in agents
    ]


# Each returns the keys its real node returns on a built-in investigation's path.
async def _intake(state: Any) -> dict[str, Any]:
    subject = state.get("subject")
    return {"subject": subject, "iocs": [], "round": 0, "errors": [], "timeline": _entry("intake")}


async def _plan(state: Any) -> dict[str, Any]:
    calls = _calls(state, FIRST_ROUND, 0)
    return {
        "calls": calls,
        "planner": {"kind": "builtin"},
        "errors": [],
        "timeline": _entry("plan"),
    }


async def _call_agent(call: Any) -> dict[str, Any]:
    return {
        "findings": [{"agent": call["agent"], "round": call["round"]}],
        "corroborations": [],
        "iocs": [],
        "timeline": _entry(call["agent"]),
    }


async def _correlate(state: Any) -> dict[str, Any]:
    if state.get("round", 0) == 0:
        calls = _calls(state, ("threat_intel",), 1)
        return {"round": 1, "calls": calls, "timeline": _entry("correlate")}
    return {"calls": [], "timeline": _entry("correlate")}


async def _respond(state: Any) -> dict[str, Any]:
    return {"response": None, "timeline": _entry("respond")}


async def _gate(state: Any) -> dict[str, Any]:
    return {"actions": [], "timeline": _entry("gate")}


async def _execute(state: Any) -> dict[str, Any]:
    return {"timeline": _entry("execute")}


async def _report(state: Any) -> dict[str, Any]:
    return {"report": {"verdict": "benign"}, "timeline": _entry("report")}


NOOPS: dict[str, Node] = {
    "intake": _intake,
    "plan": _plan,
    "call_agent": _call_agent,
    "correlate": _correlate,
    "respond": _respond,
    "gate": _gate,
    "execute": _execute,
    "report": _report,
}


def noop_graph(checkpointer: BaseCheckpointSaver[Any] | None) -> Any:
    """The investigation graph's topology with :data:`NOOPS` for its nodes."""
    real = build_graph().builder
    if set(real.nodes) != set(NOOPS):
        raise SystemExit(f"the graph's nodes changed: {sorted(real.nodes)}; update NOOPS")
    graph = StateGraph(
        real.state_schema, context_schema=real.context_schema, input_schema=real.input_schema
    )
    for name, spec in real.nodes.items():
        graph.add_node(name, NOOPS[name], input_schema=spec.input_schema)
    graph.edges = set(real.edges)
    graph.branches = real.branches
    return graph.compile(checkpointer=checkpointer)


async def plain(state: dict[str, Any]) -> dict[str, Any]:
    """The path a built-in investigation takes through :data:`NOOPS`, as one coroutine."""
    timeline: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []

    def apply(update: dict[str, Any]) -> None:
        timeline.extend(update.pop("timeline", []))
        findings.extend(update.pop("findings", []))
        state.update(update)

    apply(await _intake(state))
    apply(await _plan(state))
    while state["calls"]:
        for update in await asyncio.gather(*(_call_agent(c) for c in state["calls"])):
            apply(update)
        apply(await _correlate(state))
    for node in (_respond, _gate, _report):
        apply(await node(state))
    state["findings"] = findings
    state["timeline"] = timeline
    return state


def _input() -> dict[str, Any]:
    return {"investigation_id": uuid.uuid4().hex, "subject": {"kind": "alert"}, "mode": "dry_run"}


async def cpu_per_run(run: Callable[[], Awaitable[Any]], runs: int) -> float:
    """Milliseconds of this process's CPU a run, over ``runs`` after a warm-up."""
    for _ in range(min(runs, 200)):
        await run()
    started = time.process_time()
    for _ in range(runs):
        await run()
    return (time.process_time() - started) / runs * 1000


async def main(runs: int, rounds: int) -> None:
    with_saver = noop_graph(InMemorySaver())
    without = noop_graph(None)

    async def engine_with_saver() -> Any:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        return await with_saver.ainvoke(
            _input(), config, durability="exit", output_keys=list(RECEIPT_KEYS)
        )

    async def engine_alone() -> Any:
        return await without.ainvoke(_input(), output_keys=list(RECEIPT_KEYS))

    async def coroutine() -> Any:
        return await plain(_input())

    # The same path either way: intake, plan, three calls, correlate, one call, correlate,
    # respond, gate, report.
    expected = 11
    for run in (engine_with_saver, engine_alone, coroutine):
        timeline = (await run())["timeline"]
        if len(timeline) != expected:
            raise SystemExit(f"{run.__name__} took another path: {len(timeline)} steps")

    sides = {
        "LangGraph, in-memory saver": engine_with_saver,
        "LangGraph, no checkpointer": engine_alone,
        "a plain coroutine": coroutine,
    }
    results: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, run in sides.items():
            results[name].append(await cpu_per_run(run, runs))
    print(f"CPU an investigation, {runs} runs a round, median of {rounds} rounds:")
    for name, values in results.items():
        rounds_text = ", ".join(f"{v:.3f}" for v in values)
        print(f"  {name:28s} {statistics.median(values):7.3f} ms  ({rounds_text})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    eventloop.run(main(args.runs, args.rounds))
