"""intake: the subject as a model, its indicators normalised (those given, then those in its
title and text)."""

from __future__ import annotations

from typing import Any

from agents.acp.finding import FindingIoc
from agents.catalog import Subject
from core.errors import AuroraError
from orchestrator.receipt import stamp
from orchestrator.state import InvestigationInput, InvestigationState, merge_iocs
from tools.ioc import Ioc, extract_iocs, normalise_ioc


def _given(raw: Any) -> list[Ioc]:
    """The caller's indicators that normalise; the others are left out."""
    given = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        try:
            given.append(normalise_ioc(str(item.get("type")), str(item.get("value"))))
        except AuroraError:
            continue
    return given


def intake(state: InvestigationInput) -> InvestigationState:
    raw = state.get("subject") or {}
    text = " ".join(str(raw.get(k) or "") for k in ("title", "text"))
    found = extract_iocs(text) if text.strip() else []
    taken = [
        FindingIoc.model_validate(i.model_dump(exclude_none=True))
        for i in [*_given(raw.get("iocs")), *found]
    ]
    iocs = merge_iocs([], taken)
    return {
        "subject": Subject.model_validate({**raw, "iocs": iocs}),
        "iocs": iocs,
        "round": 0,
        "timeline": [stamp("intake", iocs=len(taken))],
    }
