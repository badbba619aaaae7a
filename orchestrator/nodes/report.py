"""report: the receipt (:func:`orchestrator.receipt.build_receipt`), and the techniques the
subject's text describes with the sentences behind each
(:func:`orchestrator.text_techniques.text_techniques`)."""

from __future__ import annotations

import asyncio

from langgraph.runtime import Runtime

from orchestrator.context import GraphContext
from orchestrator.receipt import build_receipt, stamp
from orchestrator.state import InvestigationState
from orchestrator.text_techniques import text_techniques


async def report(state: InvestigationState, runtime: Runtime[GraphContext]) -> InvestigationState:
    receipt = build_receipt(state)
    load = runtime.context.attack
    subject = state.get("subject")
    receipt["text_techniques"] = (
        # CPU-bound (a long report takes a few hundred ms): off the event loop.
        await asyncio.to_thread(lambda: text_techniques(load(), subject))
        if load is not None and subject is not None and subject.context
        else []
    )
    return {"report": receipt, "timeline": [stamp("report", verdict=receipt["verdict"])]}
