"""Turning rule hits and decoded layers into a finding's evidence.

Shared by the specialists that run the behaviour rules, so that all report a rule hit the same
way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Final

from agents.acp.finding import Evidence
from tools.behaviour import RuleHit
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
