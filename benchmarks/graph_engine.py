"""What LangGraph's engine alone costs an investigation: the investigation graph's own topology
(:func:`orchestrator.graph.build_graph`: its nodes, edges and conditional edges) run with nodes
that do nothing, against the same nodes called in the same order by a plain coroutine, in the
same run.

The nodes are replaced by no-ops that return updates of the real ones' shape (a timeline entry
each, the plan's five specialist calls, a finding a call), so the graph takes the path a
built-in investigation takes: intake, plan, five parallel ``call_agent`` branches, correlate,
respond, gate, report. The conditional edges are the graph's own. The graph is invoked as the
gateway invokes it (``durability="exit"``, only the receipt's keys mapped), with LangGraph's
in-memory saver standing in for the gateway's held checkpoints, and without a checkpointer.
What is left is the engine's own work per investigation: preparing tasks, applying writes,
checkpointing the channels in memory, streaming. Set it beside the gateway's CPU per
investigation in ``benchmarks/investigate.py``.

    .venv/bin/python benchmarks/graph_engine.py [--runs 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import eventloop
from gateway.investigations.service import RECEIPT_KEYS
from orchestrator.graph import build_graph

CALLS = 5
"""The specialist calls of a built-in investigation in ``benchmarks/investigate.py``."""

type Node = Callable[[Any], Awaitable[dict[str, Any]]]


def _entry(node: str) -> list[dict[str, Any]]:
    return [{"node": node, "at": time.time()}]


async def _intake(state: Any) -> dict[str, Any]:
    return {"subject": state.get("subject"), "iocs": [], "round": 0, "timeline": _entry("intake")}


async def _plan(state: Any) -> dict[str, Any]:
    calls = [
        {
            "agent": f"agent-{i}",
            "method": "analyze",
            "params": {"investigation_id": state["investigation_id"]},
            "investigation_id": state["investigation_id"],
            "round": 1,
            "tool_call_id": None,
        }
        for i in range(CALLS)
    ]
    return {"calls": calls, "round": 1, "timeline": _entry("plan")}


async def _call_agent(call: Any) -> dict[str, Any]:
    return {"findings": [{"agent": call["agent"]}], "timeline": _entry(call["agent"])}


async def _correlate(state: Any) -> dict[str, Any]:
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

    def apply(update: dict[str, Any]) -> None:
        timeline.extend(update.pop("timeline", []))
        state.update(update)

    apply(await _intake(state))
    apply(await _plan(state))
    for update in await asyncio.gather(*(_call_agent(c) for c in state["calls"])):
        state.setdefault("findings", []).extend(update.pop("findings"))
        apply(update)
    for node in (_correlate, _respond, _gate, _report):
        apply(await node(state))
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

    # The same path either way: every node once, each call a branch.
    expected = 6 + CALLS
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
