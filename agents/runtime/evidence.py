"""What the behaviour rules found, as a finding's verdict and evidence.

Shared by the specialists that run the behaviour rules (:mod:`tools.behaviour`), so that all
score hits and report them the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from agents.acp.finding import Evidence
from agents.runtime.specialist import ToolTrace
from tools.attack import AttackKB
from tools.behaviour import Assessment, RuleHit, assess, techniques_of
from tools.decode import Layer

MAX_EVIDENCE_PER_RULE: Final[int] = 5
"""Hits of one rule reported one by one; the rest are counted in the last entry."""


def hit_evidence(hits: Iterable[RuleHit]) -> list[Evidence]:
    """One ``rule_hit`` entry per hit (at most :data:`MAX_EVIDENCE_PER_RULE` per rule), worst
    rules first: the rule, its techniques, where it fired and the excerpt it fired on."""
    by_rule: dict[str, list[RuleHit]] = defaultdict(list)
    for hit in hits:
        by_rule[hit.rule.id].append(hit)
    ordered = sorted(by_rule.values(), key=lambda group: group[0].rule.severity, reverse=True)
    evidence: list[Evidence] = []
    for group in ordered:
        rule = group[0].rule
        for index, hit in enumerate(group[:MAX_EVIDENCE_PER_RULE]):
            more = len(group) - MAX_EVIDENCE_PER_RULE
            tail = f" (and {more} more)" if more > 0 and index == MAX_EVIDENCE_PER_RULE - 1 else ""
            evidence.append(
                Evidence(
                    kind="rule_hit",
                    ref=f"{rule.id} @ {hit.source}"[:2048],
                    summary=(
                        f"{rule.severity}: {rule.title} [{', '.join(rule.techniques)}]: "
                        f"{hit.excerpt}{tail}"
                    )[:4000],
                )
            )
    return evidence


def layer_evidence(source: str, layers: Iterable[Layer]) -> list[Evidence]:
    """One ``decoded`` entry per layer recovered from the text at ``source``."""
    return [
        Evidence(
            kind="decoded",
            ref=source[:2048],
            summary=f"{layer.method}: {' '.join(layer.text.split())[:300]}",
        )
        for layer in layers
    ]


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """What a request's rule hits add up to: the assessment, the ATT&CK techniques the rules
    observed and the finding's evidence (where the techniques the context text describes are
    reported apart: :func:`context_evidence`)."""

    assessment: Assessment
    techniques: list[str]
    evidence: list[Evidence]


async def rule_verdict(
    trace: ToolTrace,
    kb: AttackKB,
    hits: list[RuleHit],
    *,
    behaviour: bool,
    from_context: list[str],
    layers: Iterable[tuple[str, list[Layer]]],
) -> RuleVerdict:
    """Score ``hits`` (:func:`tools.behaviour.assess`; ``behaviour``: whether anything
    behavioural was examined), tell the caller, and gather the evidence: the tool calls so far,
    each hit, each decoded layer of ``layers`` (by source) and the techniques the context text
    describes (``from_context``, reported apart: :func:`context_evidence`)."""
    assessment = assess(hits, behaviour=behaviour)
    techniques = techniques_of(hits, kb.canonical_id)
    await trace.thought(
        "assess",
        f"{len({h.rule.id for h in hits})} rule(s) fired → {assessment.severity} "
        f"(confidence {assessment.confidence})",
    )
    evidence = [*trace.evidence, *hit_evidence(hits)]
    for source, decoded in layers:
        evidence += layer_evidence(source, decoded)
    evidence += context_evidence(from_context)
    return RuleVerdict(assessment, techniques, evidence)


def context_evidence(techniques: Iterable[str]) -> list[Evidence]:
    """The techniques the request's free text describes, as one ``context_techniques`` entry
    (their ids, comma-separated; none: no entry). What the caller wrote is not what the agent
    observed: these are never the finding's :attr:`~agents.acp.finding.Conclusion.mitre_techniques`
    and never weigh in a verdict."""
    found = list(dict.fromkeys(techniques))
    if not found:
        return []
    return [Evidence(kind="context_techniques", ref="context", summary=", ".join(found)[:4000])]


def verdict_sentences(assessment: Assessment, rules: int, techniques: list[str]) -> list[str]:
    """How a summary ends: the severity (and why it was raised a step), the confidence from
    ``rules`` agreeing rules, and the techniques."""
    severity = f"Severity {assessment.severity} from the worst rule"
    if assessment.escalated:
        severity += (
            f", raised one step because the activity spans {len(assessment.phases)} phases "
            f"of an intrusion ({', '.join(assessment.phases)})"
        )
    sentences = [f"{severity}; confidence {assessment.confidence} from {rules} agreeing rule(s)."]
    if techniques:
        sentences.append(f"Techniques: {', '.join(techniques[:10])}.")
    return sentences
