"""The investigation's receipt: the verdict and what it rests on, which agent said what, every
error caught on the way, and the SHA-256 chain over the tool calls that anyone holding the
receipt can recompute.

The receipt is part of the API: its keys and their meaning stay as they are. The verdict,
severity and confidence are :func:`orchestrator.verdict.judge`'s, from the evidence the
specialists observed (never from techniques read from the request's text); ``techniques`` are
the ones the agents observed, each with the agents that did.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Final

from pydantic import ValidationError

from agents.acp.finding import Evidence, Finding
from core.errors import AuroraError
from core.validation import validation_detail
from orchestrator.state import InvestigationState, Stage, StepError
from orchestrator.verdict import judge

MAX_MESSAGE: Final = 500


def stamp(event: str, **fields: Any) -> dict[str, Any]:
    """A timeline event, stamped with the wall clock (seconds, to the millisecond)."""
    return {"at": round(time.time(), 3), "event": event, **fields}


def safe_message(err: BaseException) -> str:
    """What may be shown of ``err``: a platform error's own message, a validation error's
    fields and problems (never the values), else only the exception's type, whose text may
    hold internals."""
    if isinstance(err, AuroraError):
        return err.message
    if isinstance(err, ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in e['loc'][1:]) or '(root)'}: {e['msg']}"
            for e in validation_detail(err, "reply")
        ]
        return "; ".join(problems)[:MAX_MESSAGE]
    return type(err).__name__


def caught(agent: str, stage: Stage, err: BaseException) -> StepError:
    """The receipt's record of ``err``, caught at ``stage`` while working for ``agent``."""
    return StepError(agent=agent, stage=stage, error=type(err).__name__, message=safe_message(err))


def tool_call_chain(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Each record with ``chain``: SHA-256 over the previous link (64 zeros first) and the
    record's canonical JSON (sorted keys); and the last link. Anyone holding the records can
    recompute it, so a receipt whose tool calls were edited no longer matches its chain."""
    chain = "0" * 64
    linked = []
    for record in records:
        chain = hashlib.sha256((chain + json.dumps(record, sort_keys=True)).encode()).hexdigest()
        linked.append({**record, "chain": chain})
    return linked, chain


def verify_receipt_chain(receipt: dict[str, Any]) -> bool:
    """Whether ``receipt``'s tool calls still hash to its ``tool_call_chain``."""
    records = [{k: v for k, v in c.items() if k != "chain"} for c in receipt.get("tool_calls", [])]
    linked, last = tool_call_chain(records)
    return last == receipt.get("tool_call_chain") and all(
        a["chain"] == b.get("chain") for a, b in zip(linked, receipt["tool_calls"], strict=True)
    )


def _mentions(evidence: Evidence, technique: str) -> bool:
    text = f"{evidence.ref} {evidence.summary}"
    return technique in text or technique.split(".")[0] in text


def techniques(findings: list[Finding]) -> list[dict[str, Any]]:
    """Each technique with the agents that name it and the evidence behind each."""
    by_id: dict[str, dict[str, Any]] = {}
    for finding in findings:
        for technique in finding.mitre_techniques:
            entry = by_id.setdefault(technique, {"id": technique, "agents": [], "support": []})
            if finding.agent not in entry["agents"]:
                entry["agents"].append(finding.agent)
            cited = [e for e in finding.evidence if _mentions(e, technique)] or [
                e for e in finding.evidence if e.kind == "tool_call"
            ]
            entry["support"].append(
                {
                    "agent": finding.agent,
                    "summary": finding.summary,
                    "evidence": [e.model_dump(mode="json") for e in cited[:5]],
                }
            )
    return list(by_id.values())


def build_receipt(state: InvestigationState) -> dict[str, Any]:
    """The receipt of a finished graph (the gateway adds its id, timeline and latency)."""
    findings = state.get("findings", [])
    failures = state.get("failures", [])
    judged = judge(findings, failed=len(failures))
    response = state.get("response")
    sources: list[Finding] = [*findings, *([response] if response else [])]
    records = [
        {"agent": finding.agent, "tool": evidence.ref, "summary": evidence.summary}
        for finding in sources
        for evidence in finding.evidence
        if evidence.kind == "tool_call"
    ]
    tool_calls, chain = tool_call_chain(records)
    return {
        "verdict": judged.verdict,
        "severity": judged.severity.value,
        "confidence": judged.confidence,
        "techniques": techniques(list(findings)),
        "iocs": [i.model_dump(mode="json") for i in state.get("iocs", [])],
        "findings": [f.receipt() for f in findings],
        "failures": [f.receipt() for f in failures],
        "errors": [e.model_dump() for e in state.get("errors", [])],
        "degraded": bool(failures) or any(f.degraded for f in sources),
        "planner": state.get("planner", {"kind": "builtin"}),
        "response": response.model_dump(mode="json") if response else None,
        "actions": state.get("actions", []),
        "tool_calls": tool_calls,
        "tool_call_chain": chain,
        "tokens": int(state.get("tokens", 0) or 0) + sum(f.tokens for f in sources),
    }
