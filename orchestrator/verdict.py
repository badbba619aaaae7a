"""The investigation's verdict, severity and confidence, from the evidence the specialists
observed.

**Evidence.** Each finding is read as typed :class:`Signal` s (:func:`signals_of`):

- ``detection``: a rule or detector fired on the data the agent examined (``rule_hit``
  evidence of the endpoint and malware agents, ``alert`` / severity-rated ``log`` evidence of
  the network agent); its severity is the finding's (the agent's own aggregation of its rules).
- ``intel``: a threat-intel feed lists the indicator, or a reputation service rates it
  malicious (the finding's ``threat_intel`` / ``reputation`` corroborations).
- ``sighting``: the platform's own logs record the indicator in a field that observes it
  (``telemetry`` corroborations, from the hunter).
- ``decoded``: an obfuscated payload was decoded (``decoded`` evidence).
- ``impact``: an observed technique of a high-impact tactic (:data:`HIGH_IMPACT_TACTICS`,
  read from ATT&CK's tactic membership: encryption for impact, credential dumping, process
  injection, ...), counted only where the same finding has a detection or a claim.
- ``claim``: a model's finding rated above informational with no detection of its own (what
  the model concluded from its tool calls, uncorroborated).

Nothing else counts. Techniques read from a request's free text (``context_techniques``
evidence) are what the caller wrote, not what anyone observed; an agent that examined nothing
has no signal, so it adds nothing, whatever its finding says.

**The rule** (:func:`judge`). Each agent is one source; its signals add log-odds
(:func:`agent_score`): severity steps (low 1 ... critical 4) times :attr:`Weights.detection`
for its detection, :attr:`Weights.impact` for an observed high-impact technique,
:attr:`Weights.decoded` for a decoded payload, :attr:`Weights.intel` for an intel match,
:attr:`Weights.sighting` for a sighting, and a model's claim at :attr:`Weights.claim` a step.
Agents add up (independent sources), and ``P(malicious) = sigmoid(prior + sum)``. Then:

- ``inconclusive`` when every specialist dispatched failed (nothing was examined);
- ``malicious`` when P ≥ :data:`MALICIOUS_P` and at least :data:`CORROBORATING_SOURCES`
  independent sources agree (distinct rules, feeds, services or log searches, of one agent or
  several): one detection alone, however severe, is ``suspicious``;
- ``suspicious`` when P ≥ :data:`SUSPICIOUS_P`;
- else ``benign_or_unknown``.

Severity is the worst severity the signals carry, kept within the verdict's band (at least
``MALICIOUS_FROM`` for malicious, at least ``SUSPICIOUS_FROM`` for suspicious, at most low for
benign_or_unknown). Confidence is the probability of the verdict given: P for suspicious and
malicious, 1 - P for benign_or_unknown, 0 for inconclusive.

**Calibration.** :data:`CALIBRATED`'s prior, detection, impact and decoded weights are a
class-balanced, L2-regularised logistic fit (``python -m evals.triage --calibrate``) of the
endpoint agent's findings on the tune half of the labelled attack logs' technique folders
(attack-event windows against the benign windows around them); the other half is the figure
to quote (see :mod:`evals.triage`). The shared logs carry no threat intelligence, sightings or
model findings, so those three weights are set, not fitted: an intel match weighs as a high
detection, a sighting as a medium one, a model's uncorroborated claim half a detection's step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final, Literal

from agents.acp.finding import Finding
from core.schemas import Severity
from tools.attack import AttackKB

type SignalKind = Literal["detection", "intel", "sighting", "decoded", "impact", "claim"]
type Verdict = Literal["malicious", "suspicious", "benign_or_unknown", "inconclusive"]

HIGH_IMPACT_TACTICS: Final = frozenset(
    {"impact", "credential-access", "exfiltration", "lateral-movement", "privilege-escalation"}
)
"""ATT&CK tactics (shortnames) whose techniques, once observed, mean damage done or about to
be: destruction and encryption, stolen credentials, data leaving, spread to other hosts,
higher privileges (process injection, token theft)."""
SUSPICIOUS_FROM: Final = Severity.MEDIUM
"""The least severity a ``suspicious`` verdict is given."""
MALICIOUS_FROM: Final = Severity.HIGH
"""The least severity a ``malicious`` verdict is given."""
SUSPICIOUS_P: Final = 0.5
"""The probability of malicious from which the verdict is ``suspicious`` (more likely than
not: the calibrated probability's own decision point)."""
MALICIOUS_P: Final = 0.85
"""The probability of malicious from which a corroborated verdict is ``malicious``."""
CORROBORATING_SOURCES: Final = 2
"""Independent sources a ``malicious`` verdict needs."""
DETECTION_KINDS: Final = frozenset({"rule_hit", "alert", "log"})
"""Evidence kinds that record a detection (a ``log`` entry only when rated with a severity)."""
SOURCE_KINDS: Final[frozenset[SignalKind]] = frozenset({"detection", "intel", "sighting"})
"""Signals that are a source of their own; a decoded payload, a technique or a claim qualify
what a source found."""


@dataclass(frozen=True, slots=True)
class Signal:
    """One piece of typed evidence: what kind, which agent, what raised it (a rule, a feed, a
    reputation service, a log search, a technique), and the severity it carries."""

    kind: SignalKind
    agent: str
    source: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class Weights:
    """Log-odds of the rule (see the module docstring)."""

    prior: float
    detection: float
    """Per severity step (low 1, medium 2, high 3, critical 4) of an agent's detection."""
    impact: float
    decoded: float
    intel: float
    sighting: float
    claim: float
    """Per severity step of a model's uncorroborated claim."""


CALIBRATED: Final = Weights(
    prior=-0.894,
    detection=0.544,
    impact=1.145,
    decoded=0.146,
    intel=3 * 0.544,
    sighting=2 * 0.544,
    claim=0.5 * 0.544,
)
"""Fitted on the tune half (see the module docstring); intel, sighting and claim set from the
detection weight."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict and what it rests on."""

    verdict: Verdict
    severity: Severity
    confidence: float
    probability: float
    """P(malicious) under the rule (0.5 for inconclusive: nothing is known)."""
    sources: int
    """Independent sources among the signals."""
    signals: tuple[Signal, ...]


def high_impact_techniques(kb: AttackKB) -> frozenset[str]:
    """Every technique of ``kb`` in one of the :data:`HIGH_IMPACT_TACTICS`."""
    wanted = {t.name for t in kb.tactics() if t.shortname in HIGH_IMPACT_TACTICS}
    return frozenset(t.id for t in kb.techniques() if wanted & set(t.tactics))


@cache
def shipped_high_impact() -> frozenset[str]:
    """:func:`high_impact_techniques` of the shipped ATT&CK index (read once: it is a file of
    the package, and tactic membership does not change with a deployment's settings)."""
    return high_impact_techniques(AttackKB.load())


def _rated(summary: str) -> bool:
    head = summary.split(":", 1)[0].split(" (", 1)[0].strip().lower()
    return head in {s.value for s in Severity}


def signals_of(finding: Finding, high_impact: frozenset[str]) -> list[Signal]:
    """The typed evidence of one finding (see the module docstring)."""
    agent = finding.agent
    found: list[Signal] = []
    for item in finding.evidence:
        if item.kind in DETECTION_KINDS and (item.kind != "log" or _rated(item.summary)):
            rule = item.ref.split(" @ ", 1)[0].split(":", 1)[0].strip() or item.kind
            found.append(Signal("detection", agent, rule, finding.severity))
        elif item.kind == "decoded":
            found.append(Signal("decoded", agent, item.ref, Severity.INFORMATIONAL))
    for corroboration in finding.corroborations:
        if corroboration.kind == "telemetry":
            found.append(Signal("sighting", agent, corroboration.source, Severity.MEDIUM))
        else:
            severity = max(finding.severity, SUSPICIOUS_FROM)
            found.append(Signal("intel", agent, corroboration.source, severity))
    detected = any(s.kind == "detection" for s in found)
    if not detected and finding.backend == "llm" and finding.severity > Severity.INFORMATIONAL:
        found.append(Signal("claim", agent, finding.model or "model", finding.severity))
    if detected or any(s.kind == "claim" for s in found):
        found += [
            Signal("impact", agent, technique, Severity.HIGH)
            for technique in finding.mitre_techniques
            if technique in high_impact or technique.split(".", 1)[0] in high_impact
        ]
    return found


def agent_features(signals: Iterable[Signal]) -> dict[str, float]:
    """What one agent's signals add, by weight (a linear form, so that the weights can be
    fitted): its worst detection's and claim's severity steps, and whether it has an observed
    high-impact technique, a decoded payload, an intel match, a sighting."""
    listed = list(signals)

    def steps(kind: SignalKind) -> float:
        return float(max((s.severity.rank for s in listed if s.kind == kind), default=0))

    def any_of(kind: SignalKind) -> float:
        return float(any(s.kind == kind for s in listed))

    return {
        "detection": steps("detection"),
        "impact": any_of("impact"),
        "decoded": any_of("decoded"),
        "intel": any_of("intel"),
        "sighting": any_of("sighting"),
        "claim": steps("claim"),
    }


def agent_score(signals: Iterable[Signal], weights: Weights = CALIBRATED) -> float:
    """The log-odds one agent's signals add."""
    features = agent_features(signals)
    return float(sum(getattr(weights, name) * value for name, value in features.items()))


def probability(signals: Sequence[Signal], weights: Weights = CALIBRATED) -> float:
    """P(malicious): the prior plus every agent's score, through the logistic function."""
    agents = dict.fromkeys(s.agent for s in signals)
    score = weights.prior + sum(
        agent_score([s for s in signals if s.agent == agent], weights) for agent in agents
    )
    return 1.0 / (1.0 + math.exp(-score))


def judge(
    findings: Sequence[Finding],
    *,
    failed: int,
    high_impact: frozenset[str] | None = None,
    weights: Weights = CALIBRATED,
) -> Judgement:
    """The verdict of an investigation whose specialists gave ``findings`` and ``failed``
    others (see the module docstring); ``high_impact``: the techniques that count as such
    (None: those of the shipped ATT&CK index)."""
    impact = shipped_high_impact() if high_impact is None else high_impact
    signals = tuple(s for finding in findings for s in signals_of(finding, impact))
    if failed and not findings:
        return Judgement("inconclusive", Severity.INFORMATIONAL, 0.0, 0.5, 0, signals)
    p = probability(signals, weights)
    sources = len({(s.agent, s.source) for s in signals if s.kind in SOURCE_KINDS})
    carried = Severity.highest(
        (s.severity for s in signals if s.kind in SOURCE_KINDS | {"claim"}),
        default=Severity.INFORMATIONAL,
    )
    verdict: Verdict
    if p >= MALICIOUS_P and sources >= CORROBORATING_SOURCES:
        verdict, severity = "malicious", max(carried, MALICIOUS_FROM)
    elif p >= SUSPICIOUS_P:
        verdict, severity = "suspicious", max(carried, SUSPICIOUS_FROM)
    else:
        verdict, severity = "benign_or_unknown", min(carried, Severity.LOW)
    confidence = p if verdict != "benign_or_unknown" else 1.0 - p
    return Judgement(verdict, severity, round(confidence, 3), round(p, 4), sources, signals)
