"""responder: a response plan from the findings of the other specialists, checked against the
guardrail policy (``core.guardrails``) under the system mode. It proposes; it never executes
(the gateway does, after its own guardrail check).

Built-in analysis:

1. Merge: every recommended action of every finding, deduplicated on (action, target) with
   action aliases folded (``capture_traffic`` → ``collect_pcap``) and targets normalised
   (canonical IP text; names in lower case; paths and URLs as given). Each plan entry keeps
   which agents proposed it, their reasons, the worst severity and best confidence behind it.
2. Weak sources: a containment or eradication action proposed by one agent only, from a finding
   below ``WEAK_MIN_CONFIDENCE`` confidence and below medium severity, becomes ``watchlist`` on
   the same target: one weak source does not justify disruption.
3. Guardrails: each entry is decided with the asset inventory (exact target first, then the
   host of a ``host:pid`` process target, then CIDR and glob keys, combining to the highest
   criticality, any ``protected`` and the largest blast radius of those that match), the
   corroborations the findings carry (only from the agent whose role it is, see
   :mod:`agents.acp.provenance`: a disruptive action on a target nothing independent
   corroborates needs a human) and the mode: ``allow | require_approval | deny`` and
   ``record_only | propose | execute | await_approval | denied``. Denied entries leave the
   plan; their decision stays in the evidence. Asset-bound actions (isolation, account and
   process actions) on a high or critical asset are high impact whatever the proposer said.
   Each entry keeps where its proposers took the target from (``provenance``); the gateway
   decides again from the findings themselves, not from this plan.
4. Order: containment, then eradication, then other actions, then collection; within a phase
   the worst severity first, then the most agents agreeing, then the order proposed.

Severity is the highest input severity. Confidence is the most confident finding at that
severity, raised by each other agent's finding of medium severity or more on the same targets or
indicators (``1 - (1 - c)(1 - 0.5 c')``), lowered by each other agent that examined them and
found little (low or informational: ``c (1 - 0.3 c')``), and held at 0.8 when only one agent
spoke (no independent agreement).
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel

from agents.acp.finding import (
    IMPACT_RANK,
    Evidence,
    Finding,
    FindingIoc,
    Impact,
    RecommendedAction,
    TargetSource,
)
from agents.acp.provenance import (
    Provenance,
    describe,
    normalise_action,
    normalise_target,
    vouched,
)
from agents.acp.server import CallContext
from agents.responder.schemas import AssetIn, PlanResponseRequest
from agents.runtime.specialist import AgentDeps, Specialist, ToolTrace, string_tool
from core.guardrails import (
    ActionRequest,
    Criticality,
    GuardrailPolicy,
    GuardrailVerdict,
    Outcome,
    decide,
    policy_from_settings,
    target_matches,
)
from core.llm import LLMBackend
from core.llm.types import Tool
from core.runtime import SystemMode
from core.schemas import Severity

type Phase = Literal["containment", "eradication", "other", "collection"]

PHASE_ORDER: Final[dict[str, int]] = {
    "containment": 0,
    "eradication": 1,
    "other": 2,
    "collection": 3,
}
PHASES: Final[dict[str, Phase]] = {
    **dict.fromkeys(
        (
            "block_ip",
            "block_domain",
            "block_url",
            "block_sender",
            "block_hash",
            "rate_limit",
            "isolate_host",
            "kill_process",
            "quarantine_file",
            "disable_account",
            "lock_account",
            "revoke_sessions",
        ),
        "containment",
    ),
    **dict.fromkeys(
        (
            "reset_password",
            "remove_persistence",
            "delete_file",
            "reimage_host",
            "patch_host",
            "remove_email",
            "shutdown_host",
        ),
        "eradication",
    ),
    **dict.fromkeys(
        (
            "collect_triage",
            "collect_pcap",
            "collect_memory",
            "collect_sample",
            "watchlist",
            "create_detection",
            "hunt",
            "notify",
        ),
        "collection",
    ),
}
ROLLBACK: Final[dict[str, str]] = {
    "block_ip": "remove the block rule",
    "block_domain": "remove the domain from the block list",
    "block_url": "remove the URL from the block list",
    "block_sender": "remove the sender block",
    "block_hash": "remove the hash from the deny list",
    "rate_limit": "lift the rate limit",
    "isolate_host": "release the host from network isolation in the EDR",
    "kill_process": "none: restart the program if it was legitimate",
    "quarantine_file": "restore the file from quarantine",
    "disable_account": "re-enable the account",
    "lock_account": "unlock the account",
    "revoke_sessions": "none needed: the user signs in again",
    "reset_password": "none: give the owner the new credential",
    "reimage_host": "none: restore data from backup",
    "delete_file": "none: restore from backup",
}
# Actions whose disruption follows the asset: on a high or critical asset they are high impact.
ASSET_BOUND: Final = frozenset(
    {
        "isolate_host",
        "disable_account",
        "lock_account",
        "reimage_host",
        "shutdown_host",
        "kill_process",
        "reset_password",
    }
)
WEAK_MIN_CONFIDENCE: Final = 0.4
SINGLE_SOURCE_CAP: Final = 0.8


def phase_of(action: str) -> Phase:
    return PHASES.get(action, "other")


@dataclass(slots=True)
class Proposal:
    """One plan entry: an action on a target and everything said for it."""

    action: str
    target: str
    order: int
    reasons: list[tuple[str, str]] = field(default_factory=list)
    """(agent, reason), in the order proposed."""
    agents: list[str] = field(default_factory=list)
    impact: Impact = "low"
    severity: Severity = Severity.INFORMATIONAL
    confidence: float = 0.0
    note: str | None = None
    sources: list[TargetSource] = field(default_factory=list)
    """Where the proposers took the target from."""

    def add(self, agent: str, finding: Finding, action: RecommendedAction) -> None:
        if agent not in self.agents:
            self.agents.append(agent)
        self.sources += [s for s in action.provenance if s not in self.sources]
        if action.reason and (agent, action.reason) not in self.reasons:
            self.reasons.append((agent, action.reason))
        if IMPACT_RANK[action.impact] > IMPACT_RANK[self.impact]:
            self.impact = action.impact
        self.severity = max(self.severity, finding.severity)
        self.confidence = max(self.confidence, finding.confidence)


@dataclass(slots=True)
class Decided:
    proposal: Proposal
    verdict: GuardrailVerdict
    asset: AssetIn | None
    corroborated_by: list[str] = field(default_factory=list)


def finding_provenance(findings: list[Finding]) -> Provenance:
    """Where the findings' targets came from and what their agents' own sources corroborate."""
    dumped = [f.model_dump(mode="json") for f in findings]
    return Provenance(dumped, [c for f in dumped for c in vouched(str(f["agent"]), f)])


def merge_proposals(findings: list[Finding]) -> tuple[list[Proposal], list[str]]:
    """Every finding's actions, one entry per (action, target), and notes on weak ones that
    were turned into watchlist entries."""
    merged: dict[tuple[str, str], Proposal] = {}
    notes: list[str] = []
    for finding in findings:
        for action in finding.recommended_actions:
            name = normalise_action(action.action)
            target = normalise_target(action.target)
            proposal = merged.get((name, target))
            if proposal is None:
                proposal = merged[(name, target)] = Proposal(name, target, len(merged))
            proposal.add(finding.agent, finding, action)
    kept: dict[tuple[str, str], Proposal] = {}
    for key, proposal in merged.items():
        weak = (
            phase_of(proposal.action) in ("containment", "eradication")
            and len(proposal.agents) == 1
            and proposal.confidence < WEAK_MIN_CONFIDENCE
            and proposal.severity < Severity.MEDIUM
        )
        if not weak:
            kept.setdefault(key, proposal)
            continue
        note = (
            f"{proposal.action} {proposal.target} rests on one weak source "
            f"({proposal.agents[0]}, {proposal.severity}, confidence {proposal.confidence:.2f}): "
            "watchlist instead"
        )
        notes.append(note)
        watch = kept.get(("watchlist", proposal.target)) or merged.get(
            ("watchlist", proposal.target)
        )
        if watch is None:
            watch = Proposal("watchlist", proposal.target, proposal.order, impact="low")
        watch.agents = list(dict.fromkeys([*watch.agents, *proposal.agents]))
        watch.reasons += [r for r in proposal.reasons if r not in watch.reasons]
        watch.severity = max(watch.severity, proposal.severity)
        watch.confidence = max(watch.confidence, proposal.confidence)
        watch.sources += [s for s in proposal.sources if s not in watch.sources]
        watch.note = note
        kept[("watchlist", proposal.target)] = watch
    return list(kept.values()), notes


class AssetBook:
    """The asset inventory of a request: exact keys, then CIDR and glob patterns."""

    def __init__(self, assets: dict[str, AssetIn]) -> None:
        self.exact: dict[str, AssetIn] = {}
        self.patterns: list[tuple[str, AssetIn]] = []
        for key, asset in assets.items():
            if any(c in key for c in "*?[") or ("/" in key and _is_network(key)):
                self.patterns.append((key.lower(), asset))
            else:
                self.exact[normalise_target(key)] = asset

    def lookup(self, target: str) -> AssetIn | None:
        """What the inventory says about ``target``; several matching patterns combine to the
        strictest (highest criticality, protected if any is, largest blast radius)."""
        exact = self.exact.get(normalise_target(target))
        if exact is not None:
            return exact
        host = _host_of(target)
        if host is not None and (on_host := self.exact.get(normalise_target(host))):
            return on_host
        matches = [asset for pattern, asset in self.patterns if target_matches(pattern, target)]
        if not matches:
            return None
        rated = [a.criticality for a in matches if a.criticality is not None]
        radii = [a.blast_radius for a in matches if a.blast_radius is not None]
        owners = [a.owner for a in matches if a.owner]
        return AssetIn(
            criticality=max(rated, key=lambda c: c.rank) if rated else None,
            owner=", ".join(dict.fromkeys(owners)) or None,
            protected=any(a.protected for a in matches),
            blast_radius=max(radii) if radii else None,
        )


def _host_of(target: str) -> str | None:
    """The host of a ``host:pid`` target (a process, as the endpoint agent names one)."""
    host, colon, pid = target.strip().rpartition(":")
    if not colon or not host or not pid.isdigit() or host.lower() == "pid" or ":" in host:
        return None
    return host


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def evaluate_proposals(
    proposals: list[Proposal],
    book: AssetBook,
    policy: GuardrailPolicy,
    mode: SystemMode,
    provenance: Provenance | None = None,
) -> list[Decided]:
    """Each proposal's guardrail verdict under ``mode``, in plan order; ``provenance`` says
    what corroborates each target (None: nothing does)."""
    decided: list[Decided] = []
    for proposal in proposals:
        asset = book.lookup(proposal.target)
        corroborated = (
            [describe(c) for c in provenance.corroborations(proposal.target)][:100]
            if provenance is not None
            else []
        )
        request = ActionRequest(
            action=proposal.action,
            target=proposal.target,
            criticality=asset.criticality if asset else None,
            blast_radius=(asset.blast_radius or 1) if asset else 1,
            protected=asset.protected if asset else False,
            corroborated_by=corroborated,
        )
        decided.append(Decided(proposal, decide(policy, request, mode), asset, corroborated))
    decided.sort(
        key=lambda d: (
            PHASE_ORDER[phase_of(d.proposal.action)],
            -d.proposal.severity.rank,
            -len(d.proposal.agents),
            d.proposal.order,
        )
    )
    return decided


def _impact(decided: Decided) -> Impact:
    impact = decided.proposal.impact
    critical = decided.verdict.criticality in (Criticality.HIGH, Criticality.CRITICAL)
    if decided.proposal.action in ASSET_BOUND and critical:
        return "high"
    return impact


def plan_action(decided: Decided) -> RecommendedAction:
    """The plan entry as a recommended action: who proposed it and why, the policy's word,
    and how to undo it."""
    proposal, verdict = decided.proposal, decided.verdict
    said = "; ".join(f"{agent}: {reason}" for agent, reason in proposal.reasons[:4])
    parts = [
        f"[{verdict.outcome.value}] policy: {verdict.decision.value} ({verdict.reasons[0]}).",
        f"Proposed by {', '.join(proposal.agents)} ({proposal.severity}): {said}."
        if said
        else f"Proposed by {', '.join(proposal.agents)} ({proposal.severity}).",
    ]
    if proposal.note:
        parts.append(proposal.note + ".")
    if rollback := ROLLBACK.get(proposal.action):
        parts.append(f"Rollback: {rollback}.")
    return RecommendedAction(
        action=proposal.action,
        target=proposal.target,
        reason=" ".join(parts)[:2000],
        impact=_impact(decided),
        provenance=proposal.sources[:20],
    )


def guardrail_evidence(decided: Decided) -> Evidence:
    verdict = decided.verdict
    asset = decided.asset
    known = (
        f"inventory: {verdict.criticality.value}"
        + (", protected" if asset and asset.protected else "")
        + (f", owner {asset.owner}" if asset and asset.owner else "")
        if asset
        else f"not in the inventory (default {verdict.criticality.value})"
    )
    corroboration = (
        f"corroborated by {'; '.join(decided.corroborated_by)}"
        if decided.corroborated_by
        else "no independent corroboration"
    )
    return Evidence(
        kind="guardrail",
        ref=f"{verdict.action} {verdict.target}"[:2048],
        summary=(
            f"{verdict.decision.value} → {verdict.outcome.value} in {verdict.mode.value} mode; "
            f"{known}; blast radius {verdict.blast_radius}; {corroboration}; "
            + "; ".join(verdict.reasons)
        )[:4000],
    )


def _subjects(finding: Finding) -> set[str]:
    """What a finding is about: its indicators and its action targets, normalised."""
    found = {normalise_target(ioc.value) for ioc in finding.iocs}
    found |= {normalise_target(a.target) for a in finding.recommended_actions}
    return found


def plan_confidence(findings: list[Finding]) -> float:
    """Confidence from agreement between agents (see the module doc)."""
    top = max(f.severity for f in findings)
    anchor = max((f for f in findings if f.severity == top), key=lambda f: f.confidence)
    about = set().union(*(_subjects(f) for f in findings if f.severity == top))
    confidence = anchor.confidence
    agents = {f.agent for f in findings}
    for finding in findings:
        if finding.agent == anchor.agent or not (_subjects(finding) & about):
            continue
        if finding.severity >= Severity.MEDIUM:
            confidence = 1 - (1 - confidence) * (1 - 0.5 * finding.confidence)
        elif finding.severity <= Severity.LOW:
            confidence *= 1 - 0.3 * finding.confidence
    if len(agents) == 1:
        confidence = min(confidence, SINGLE_SOURCE_CAP)
    return round(min(confidence, 0.97), 3)


def _listing(decided: list[Decided]) -> str:
    shown = ", ".join(f"{d.verdict.action} {d.verdict.target}" for d in decided[:4])
    return shown + (f" and {len(decided) - 4} more" if len(decided) > 4 else "")


def plan_summary(
    decided: list[Decided], mode: SystemMode, findings: list[Finding], severity: Severity
) -> str:
    """What would be executed, proposed, wait for approval or is denied under ``mode``."""
    by_outcome: dict[Outcome, list[Decided]] = {}
    for item in decided:
        by_outcome.setdefault(item.verdict.outcome, []).append(item)
    denied = by_outcome.get(Outcome.DENIED, [])
    planned = [d for d in decided if d.verdict.outcome is not Outcome.DENIED]
    approval = [d for d in planned if d.verdict.decision.value == "require_approval"]
    agents = ", ".join(dict.fromkeys(f.agent for f in findings))
    head = (
        f"{severity.capitalize()} incident per {len(findings)} finding(s) from {agents}; "
        f"plan of {len(planned)} action(s)."
    )
    if not decided:
        return f"{head} No finding recommended an action; nothing to plan."
    parts = [head]
    if mode is SystemMode.DRY_RUN:
        parts.append("Dry run: nothing will be executed, the plan is recorded only.")
        allowed = [d for d in planned if d not in approval]
        if allowed:
            parts.append(f"In active mode {len(allowed)} would run: {_listing(allowed)}.")
        if approval:
            parts.append(f"{len(approval)} would need approval: {_listing(approval)}.")
    elif mode is SystemMode.MONITOR:
        parts.append(
            f"Monitor mode: {len(planned)} action(s) proposed to an analyst, none executed"
            + (f": {_listing(planned)}." if planned else ".")
        )
        if approval:
            parts.append(
                f"In active mode {len(approval)} would need approval: {_listing(approval)}."
            )
    else:
        execute = by_outcome.get(Outcome.EXECUTE, [])
        waiting = by_outcome.get(Outcome.AWAIT_APPROVAL, [])
        if execute:
            parts.append(
                f"Active mode: {len(execute)} to be executed by the gateway: {_listing(execute)}."
            )
        if waiting:
            parts.append(f"{len(waiting)} await a human's approval: {_listing(waiting)}.")
    if denied:
        parts.append(f"{len(denied)} denied by policy and left out: {_listing(denied)}.")
    return " ".join(parts)[:4000]


class Responder(Specialist, name="responder", method="plan_response"):
    """Incident response: a containment, eradication and collection plan from the other
    specialists' findings, checked against the guardrail policy and the system mode."""

    method_description = (
        "Merge the findings' recommended actions into an ordered plan and decide each through "
        "the guardrail policy under the mode (nothing is executed)."
    )
    request_model = PlanResponseRequest

    def __init__(self, deps: AgentDeps) -> None:
        super().__init__(deps)
        given = deps.extra.get("guardrail_policy")
        # A bad policy file stops the agent at start, not at its first plan.
        self.policy = (
            given if isinstance(given, GuardrailPolicy) else policy_from_settings(deps.settings)
        )

    def decide_all(self, request: PlanResponseRequest, proposals: list[Proposal]) -> list[Decided]:
        return evaluate_proposals(
            proposals,
            AssetBook(request.assets),
            self.policy,
            request.mode,
            finding_provenance(request.findings),
        )

    async def builtin(self, request: PlanResponseRequest, trace: ToolTrace) -> Finding:
        findings = request.findings
        proposals, notes = await trace.compute(
            "merge_actions",
            {"findings": len(findings)},
            lambda: merge_proposals(findings),
            lambda merged: (
                f"{len(merged[0])} distinct action(s) from "
                f"{sum(len(f.recommended_actions) for f in findings)} proposed"
            ),
        )
        decided = await trace.compute(
            "guardrail_check",
            {"actions": len(proposals), "mode": request.mode.value},
            lambda: self.decide_all(request, proposals),
            lambda result: (
                ", ".join(
                    f"{n} {o}" for o, n in Counter(d.verdict.outcome.value for d in result).items()
                )
                or "nothing to check"
            ),
        )
        severity = max(f.severity for f in findings)
        evidence = list(trace.evidence)
        evidence += [
            Evidence(
                kind="finding",
                ref=f"findings[{i}] {f.agent}",
                summary=f"{f.severity} ({f.confidence:.2f}): {f.summary}"[:4000],
            )
            for i, f in enumerate(findings)
        ]
        evidence += [guardrail_evidence(d) for d in decided]
        evidence += [Evidence(kind="plan", ref="weak source", summary=n[:4000]) for n in notes]
        return Finding(
            agent=self.name,
            summary=plan_summary(decided, request.mode, findings, severity),
            severity=severity,
            confidence=plan_confidence(findings),
            mitre_techniques=self._techniques(findings),
            iocs=_iocs(findings),
            evidence=evidence,
            recommended_actions=[
                plan_action(d) for d in decided if d.verdict.outcome is not Outcome.DENIED
            ],
        )

    def _techniques(self, findings: list[Finding]) -> list[str]:
        found = (self.deps.attack.canonical_id(t) for f in findings for t in f.mitre_techniques)
        return list(dict.fromkeys(t for t in found if t is not None))

    async def with_llm(
        self, llm: LLMBackend, request: BaseModel, ctx: CallContext, trace: ToolTrace
    ) -> Finding:
        """The model's plan, held to the same rules as the built-in one: actions on targets
        the findings never mention are dropped, every other one is decided by the guardrail
        policy under the mode, denied ones leave the plan, and the summary says so."""
        assert isinstance(request, PlanResponseRequest)
        finding = await super().with_llm(llm, request, ctx, trace)
        known = json.dumps(
            [f.model_dump(mode="json") for f in request.findings], ensure_ascii=False
        ).lower()
        invented = [
            a
            for a in finding.recommended_actions
            if normalise_target(a.target).lower() not in known
        ]
        proposals, _ = merge_proposals(
            [
                finding.model_copy(
                    update={
                        "recommended_actions": [
                            a for a in finding.recommended_actions if a not in invented
                        ]
                    }
                )
            ]
        )
        decided = self.decide_all(request, proposals)
        evidence = list(finding.evidence) + [guardrail_evidence(d) for d in decided]
        if invented:
            evidence.append(
                Evidence(
                    kind="rejected_actions",
                    ref="model output",
                    summary=(
                        "targets no finding mentions: "
                        + ", ".join(f"{a.action} {a.target}" for a in invented)
                    )[:4000],
                )
            )
        severity = max(f.severity for f in request.findings)
        outcomes = plan_summary(decided, request.mode, request.findings, severity)
        return finding.model_copy(
            update={
                "summary": f"{finding.summary} {outcomes}"[:4000],
                "evidence": evidence,
                "recommended_actions": [
                    plan_action(d) for d in decided if d.verdict.outcome is not Outcome.DENIED
                ],
            }
        )

    def llm_tools(self, request: PlanResponseRequest, trace: ToolTrace) -> list[Tool]:
        book = AssetBook(request.assets)

        async def proposed(_arguments: dict[str, Any]) -> object:
            proposals, notes = merge_proposals(request.findings)
            return {
                "actions": [
                    {
                        "action": p.action,
                        "target": p.target,
                        "agents": p.agents,
                        "severity": p.severity,
                        "confidence": p.confidence,
                        "impact": p.impact,
                        "reasons": [f"{a}: {r}" for a, r in p.reasons],
                    }
                    for p in proposals
                ],
                "notes": notes,
            }

        async def check(arguments: dict[str, Any]) -> object:
            action = normalise_action(str(arguments.get("action", "")))
            target = normalise_target(str(arguments.get("target", "")))
            if not action or not target:
                return {"error": "action and target are required"}
            verdict = await trace.compute(
                "guardrail_check",
                {"action": action, "target": target, "mode": request.mode.value},
                lambda: (
                    evaluate_proposals(
                        [Proposal(action, target, 0)],
                        book,
                        self.policy,
                        request.mode,
                        finding_provenance(request.findings),
                    )[0].verdict
                ),
                lambda v: f"{v.decision.value} → {v.outcome.value}: {'; '.join(v.reasons)}",
            )
            return verdict.model_dump(mode="json")

        async def asset(arguments: dict[str, Any]) -> object:
            target = str(arguments.get("target", "")).strip()
            found = book.lookup(target) if target else None
            if found is None:
                return {
                    "target": target,
                    "in_inventory": False,
                    "criticality": self.policy.default_criticality.value,
                }
            return {"target": target, "in_inventory": True, **found.model_dump(mode="json")}

        return [
            string_tool(
                "proposed_actions",
                "The findings' recommended actions merged per action and target, "
                "with the agents that proposed each, their reasons and the severity behind it.",
                proposed,
            ),
            string_tool(
                "check_guardrails",
                "The guardrail policy's decision on one action under the current "
                "mode (allow, require_approval or deny, and whether it would be executed).",
                check,
                "action",
                "target",
            ),
            string_tool(
                "asset_info",
                "What the asset inventory says about a target: criticality, owner, "
                "protected, blast radius.",
                asset,
                "target",
            ),
        ]


def _iocs(findings: list[Finding]) -> list[FindingIoc]:
    seen: dict[tuple[str, str], FindingIoc] = {}
    for finding in findings:
        for ioc in finding.iocs:
            seen.setdefault((ioc.type, ioc.value), ioc)
    return list(seen.values())
