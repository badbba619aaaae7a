"""execute: carry out the approved actions, each at most once (the executor keeps the keys);
an executor's error fails that action and is recorded."""

from __future__ import annotations

import logging
from typing import Any

from langgraph.runtime import Runtime

from orchestrator.actions import order_for
from orchestrator.context import GraphContext
from orchestrator.receipt import caught, stamp
from orchestrator.state import InvestigationState, StepError

EXECUTOR = "executor"

log = logging.getLogger("aurora.orchestrator")


async def execute(state: InvestigationState, runtime: Runtime[GraphContext]) -> InvestigationState:
    executor = runtime.context.executor
    investigation_id = state.get("investigation_id", "")
    done: list[dict[str, Any]] = []
    errors: list[StepError] = []
    events = []
    for action in state.get("actions", []):
        if action["status"] != "approved":
            done.append(action)
            continue
        execution: dict[str, Any]
        if executor is None:
            execution = {"status": "failed", "detail": "no executor"}
        else:
            try:
                result = await executor.execute(order_for(investigation_id, action))
            except Exception as err:
                log.exception("%s: executing %s failed", investigation_id, action["key"])
                error = caught(EXECUTOR, "execute", err)
                errors.append(error)
                execution = {"status": "failed", "detail": error.error}
            else:
                execution = {
                    "status": result.status,
                    "executor": result.executor,
                    "detail": result.detail,
                    "replayed": result.replayed,
                }
        done.append({**action, "status": execution["status"], "execution": execution})
        events.append(
            stamp(
                "action",
                key=action["key"],
                action=action["action"],
                target=action["target"],
                status=execution["status"],
            )
        )
    return {"actions": done, "errors": errors, "timeline": events}
