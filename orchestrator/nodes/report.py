"""report: the receipt (:func:`orchestrator.receipt.build_receipt`)."""

from __future__ import annotations

from orchestrator.receipt import build_receipt, stamp
from orchestrator.state import InvestigationState


def report(state: InvestigationState) -> InvestigationState:
    receipt = build_receipt(state)
    return {"report": receipt, "timeline": [stamp("report", verdict=receipt["verdict"])]}
