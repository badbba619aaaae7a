"""intake: the subject as a model, its indicators normalised (those given, then those in its
title and text); a given indicator that does not normalise is left out, and the receipt says
why."""

from __future__ import annotations

import logging
from typing import Any

from agents.acp.finding import FindingIoc
from agents.catalog import Subject
from core.errors import AuroraError
from orchestrator.receipt import MAX_MESSAGE, caught, stamp
from orchestrator.state import InvestigationInput, InvestigationState, StepError, merge_iocs
from tools.ioc import Ioc, extract_iocs, normalise_ioc

log = logging.getLogger("aurora.orchestrator")


def _given(raw: Any) -> tuple[list[Ioc], list[StepError]]:
    """The given indicators that normalise, and why each other one was left out."""
    given, errors = [], []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        try:
            given.append(normalise_ioc(str(item.get("type")), str(item.get("value"))))
        except AuroraError as err:
            log.info("an indicator of type %.32r is left out", item.get("type"), exc_info=True)
            error = caught("intake", "intake", err)
            detail = err.detail if isinstance(err.detail, list) else []
            if problems := [str(d["msg"]) for d in detail if isinstance(d, dict) and "msg" in d]:
                why = f"{error.message}: {'; '.join(problems)}"[:MAX_MESSAGE]
                error = error.model_copy(update={"message": why})
            errors.append(error)
    return given, errors


async def intake(state: InvestigationInput) -> InvestigationState:
    """Async although it awaits nothing: LangGraph runs a plain function on a worker thread,
    and the hop there and back costs more than the work (well under a millisecond)."""
    raw = state.get("subject") or {}
    given, errors = _given(raw.get("iocs"))
    text = " ".join(str(raw.get(k) or "") for k in ("title", "text"))
    found = extract_iocs(text) if text.strip() else []
    taken = [FindingIoc.model_validate(i.model_dump(exclude_none=True)) for i in [*given, *found]]
    iocs = merge_iocs([], taken)
    return {
        "subject": Subject.model_validate({**raw, "iocs": iocs}),
        "iocs": iocs,
        "round": 0,
        "errors": errors,
        "timeline": [stamp("intake", iocs=len(taken))],
    }
