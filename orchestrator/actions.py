"""Response actions between the responder's plan and the world: the gateway's own guardrail
check, human approval, and execution at most once.

Each action of the responder's plan is decided again here with the platform's policy
(:mod:`core.guardrails`) under the mode the investigation runs in; an action the responder rated
``high`` impact waits for a human even where the policy alone would allow it. Whether its
target is corroborated is not the responder's word either: it comes from the specialists'
findings (:class:`agents.acp.provenance.Provenance`), and a disruptive action on a target that
no independent source corroborates waits for a human. Each action records where its target came
from and what corroborated it (``provenance``). What follows:

========================  =================================================================
guardrail outcome          status in the receipt
========================  =================================================================
``record_only`` (dry_run)  ``recorded``: nothing runs
``propose`` (monitor)      ``proposed``: nothing runs, an analyst may act on it
``denied``                 ``denied``, error AURORA-4031
``execute`` (active)       ``executed`` (or ``failed`` / ``unknown``, see below)
``await_approval``         a human decides over ``/ws/approvals``: ``approved`` → executed;
                           ``denied`` → ``denied`` with AURORA-4031; no decision in time →
                           ``expired`` with AURORA-4080 (fail closed: the action is not taken);
                           the investigation cancelled → ``cancelled``
========================  =================================================================

Execution goes through an :class:`ActionExecutor` with a key unique to the investigation and
the action; the executor records the key before it acts and never acts twice on one key, so an
investigation resumed after a crash cannot repeat an action (a key found started but never
finished is reported ``unknown``, not retried).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agents.acp.provenance import Provenance, describe
from core.errors import ApprovalTimeout, GuardrailDenied
from core.guardrails import (
    ActionRequest,
    Decision,
    GuardrailPolicy,
    Outcome,
    decide,
    needs_corroboration,
    outcome,
)
from core.runtime import SystemMode

HUMAN_DECISIONS = frozenset({"approved", "denied", "expired", "cancelled"})
"""How an approval ends."""

type ExecutionStatus = Literal["executed", "failed", "unknown"]


@dataclass(frozen=True, slots=True)
class ActionOrder:
    """One action to carry out. ``key`` is unique per investigation and action."""

    key: str
    investigation_id: str
    action: str
    target: str
    reason: str
    approved_by: str | None = None
    corroborated_by: tuple[str, ...] = ()
    """The independent sources that corroborate the target (empty: a human approved it)."""


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    status: ExecutionStatus
    executor: str
    detail: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False
    """True when the key had been executed before and this is that earlier outcome."""


class ActionExecutor(Protocol):
    """Carries out response actions, at most once per :attr:`ActionOrder.key`."""

    async def execute(self, order: ActionOrder) -> ExecutionResult: ...


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def denial_error(message: str | None = None) -> dict[str, str]:
    return _error(GuardrailDenied.code, message or GuardrailDenied.message)


def timeout_error() -> dict[str, str]:
    return _error(ApprovalTimeout.code, ApprovalTimeout.message)


_STATUS = {
    Outcome.RECORD_ONLY: "recorded",
    Outcome.PROPOSE: "proposed",
    Outcome.DENIED: "denied",
    Outcome.EXECUTE: "approved",
    Outcome.AWAIT_APPROVAL: "awaiting_approval",
}


def gate(
    policy: GuardrailPolicy,
    investigation_id: str,
    mode: SystemMode,
    proposed: list[dict[str, Any]],
    provenance: Provenance | None = None,
) -> list[dict[str, Any]]:
    """The plan's actions with the gateway's decision each, in plan order. Statuses:
    ``recorded | proposed | denied | approved`` (by policy: to execute) ``| awaiting_approval``.
    ``provenance`` says where targets came from and what corroborates them (None: nothing
    does). Each action's ``provenance``: ``origin`` (who proposed the target, from what),
    ``corroborated_by`` (the independent sources), ``corroboration`` (``corroborated``,
    ``none``, or ``not_required`` for collection) and ``human_required``.
    """
    known = provenance or Provenance([], [])
    actions = []
    for number, item in enumerate(proposed, start=1):
        target = str(item["target"])
        corroborations = known.corroborations(target)
        request = ActionRequest(
            action=str(item["action"]),
            target=target,
            corroborated_by=[describe(c) for c in corroborations][:100],
        )
        verdict = decide(policy, request, mode)
        decision, reasons = verdict.decision, list(verdict.reasons)
        if item.get("impact") == "high" and decision is Decision.ALLOW:
            decision = Decision.REQUIRE_APPROVAL
            reasons.append("the responder rates it high impact: a human decides")
        result = outcome(decision, mode)
        required = needs_corroboration(policy, request.action)
        entry: dict[str, Any] = {
            "key": f"{investigation_id}/A{number}",
            "action": request.action,
            "target": request.target,
            "reason": item.get("reason", ""),
            "impact": item.get("impact"),
            "guardrail": {
                "decision": decision.value,
                "outcome": result.value,
                "mode": mode.value,
                "reasons": reasons,
                "rules": verdict.rules,
                "criticality": verdict.criticality.value,
                "blast_radius": verdict.blast_radius,
            },
            "provenance": {
                "origin": known.origin(target),
                "corroborated_by": corroborations,
                "corroboration": (
                    "corroborated" if corroborations else "none" if required else "not_required"
                ),
                "human_required": decision is Decision.REQUIRE_APPROVAL,
            },
            "status": _STATUS[result],
        }
        if result is Outcome.DENIED:
            entry["error"] = denial_error()
        actions.append(entry)
    return actions


def approval_requests(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a human is asked to decide: one entry per action awaiting approval."""
    return [
        {
            "approval_id": a["key"],
            "action": a["action"],
            "target": a["target"],
            "reason": a["reason"],
            "impact": a["impact"],
            "guardrail": a["guardrail"],
            "provenance": a.get("provenance"),
        }
        for a in actions
        if a["status"] == "awaiting_approval"
    ]


def apply_decisions(
    actions: list[dict[str, Any]], decisions: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The actions with the humans' decisions applied (``decisions``: approval id →
    ``{"decision", "by", "at", "comment"}``); an approval with no decision counts as expired."""
    decided = []
    for action in actions:
        if action["status"] != "awaiting_approval":
            decided.append(action)
            continue
        given = decisions.get(action["key"]) or {"decision": "expired"}
        verdict = given.get("decision")
        if verdict not in HUMAN_DECISIONS:
            verdict = "expired"
        approval = {
            "decision": verdict,
            "by": given.get("by"),
            "at": given.get("at"),
            "comment": given.get("comment"),
        }
        entry = {**action, "approval": approval}
        if verdict == "approved":
            entry["status"] = "approved"
        elif verdict == "denied":
            entry["status"] = "denied"
            entry["error"] = denial_error(f"Action denied by {given.get('by') or 'an approver'}")
        elif verdict == "cancelled":
            entry["status"] = "cancelled"
        else:
            entry["status"] = "expired"
            entry["error"] = timeout_error()
        decided.append(entry)
    return decided


def order_for(investigation_id: str, action: dict[str, Any]) -> ActionOrder:
    approval = action.get("approval") or {}
    provenance = action.get("provenance") or {}
    return ActionOrder(
        key=action["key"],
        investigation_id=investigation_id,
        action=action["action"],
        target=action["target"],
        reason=action.get("reason", ""),
        approved_by=approval.get("by"),
        corroborated_by=tuple(describe(c) for c in provenance.get("corroborated_by", [])),
    )
