"""The finding every specialist returns: one model for the orchestrator, receipts and evals."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.schemas import Severity

TECHNIQUE_ID = r"^T\d{4}(\.\d{3})?$"

SourceKind = Literal[
    "command_line",
    "text",
    "alert_field",
    "log_field",
    "model_output",
    "threat_intel",
    "reputation",
    "telemetry",
]
"""Where a target was taken from. The first five are data an attacker can write (a command
line or a script, free text, an alert's or a request's field, a field of a log event, flow or
file record, a model's answer); the last three are sources independent of the attacker's data
(a threat-intel feed listing, a reputation service's verdict, the platform's own telemetry)."""
CorroborationKind = Literal["threat_intel", "reputation", "telemetry"]
Impact = Literal["low", "medium", "high"]
"""What a recommended action disrupts if it is wrong."""
IMPACT_RANK: Final[dict[str, int]] = {"low": 0, "medium": 1, "high": 2}


class FindingIoc(BaseModel):
    """An indicator, normalised and refanged; extra keys (subtype, context) are kept."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1, max_length=32)
    value: str = Field(min_length=1, max_length=4096)


class Evidence(BaseModel):
    """What a conclusion rests on: a query, a tool call, a log id, a document."""

    kind: str = Field(min_length=1, max_length=64)
    ref: str = Field(max_length=2048)
    summary: str = Field(max_length=4000)


class TargetSource(BaseModel):
    """Where a recommended action's target came from: its kind and which part of the input
    (``command_lines[0]``, ``flows``, a feed's name)."""

    kind: SourceKind
    ref: str = Field(default="", max_length=512)


class RecommendedAction(BaseModel):
    action: str = Field(min_length=1, max_length=64)
    target: str = Field(min_length=1, max_length=512)
    reason: str = Field(max_length=2000)
    impact: Impact
    provenance: list[TargetSource] = Field(default_factory=list, max_length=20)
    """Where the target was taken from; empty: not said (treated as data an attacker can
    write). A claim, not a corroboration: only :attr:`Finding.corroborations` of the agent
    whose role it is can corroborate a target."""

    @classmethod
    def of(
        cls,
        action: str,
        target: str,
        reason: str,
        impact: Impact,
        provenance: Iterable[TargetSource] = (),
    ) -> RecommendedAction:
        """An action whose target and reason are cut to their limits (512 and 2,000
        characters), as a specialist builds one from data of any length."""
        return cls(
            action=action,
            target=target[:512],
            reason=reason[:2000],
            impact=impact,
            provenance=list(provenance),
        )


class Corroboration(BaseModel):
    """An indicator that a source independent of the investigated data confirms as hostile:
    a threat-intel feed lists that exact value, a reputation service rates it malicious, or the
    platform's own telemetry shows it (a detection rule matched on it, a log sighting). Set by
    the agent's code from its tools' results, never by a model."""

    type: str = Field(min_length=1, max_length=32)
    value: str = Field(min_length=1, max_length=4096)
    kind: CorroborationKind
    source: str = Field(min_length=1, max_length=256)
    """The feed, the reputation service, the detection rule or log search."""
    detail: str = Field(default="", max_length=1000)


class Conclusion(BaseModel):
    """What an analysis concludes: what a finding says, and what a model must answer."""

    summary: str = Field(max_length=4000)
    severity: Severity
    confidence: float = Field(ge=0.0, le=1.0)
    mitre_techniques: list[str] = Field(default_factory=list)


class Finding(Conclusion):
    """A specialist's structured conclusion (ARCHITECTURE.md §5)."""

    agent: str
    iocs: list[FindingIoc] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    recommended_actions: list[RecommendedAction] = Field(default_factory=list)
    corroborations: list[Corroboration] = Field(default_factory=list, max_length=1000)
    """Indicators this agent's own sources confirm (see :class:`Corroboration`)."""
    backend: Literal["builtin", "llm"] = "builtin"
    model: str | None = None
    prompt_version: str | None = None
    degraded: bool = False
    """True when the LLM was wanted but unavailable and built-in analysis answered."""
    tokens: int = Field(default=0, ge=0)
    """LLM tokens the finding cost (prompt and completion; 0 for built-in analysis)."""
