"""The finding every specialist returns: one model for the orchestrator, receipts and evals."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["informational", "low", "medium", "high", "critical"]
SEVERITY_ORDER: dict[str, int] = {
    "informational": 0,
    "low": 1,
    "medium": 2,
    "high": 3,
    "critical": 4,
}
TECHNIQUE_ID = r"^T\d{4}(\.\d{3})?$"


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


class RecommendedAction(BaseModel):
    action: str = Field(min_length=1, max_length=64)
    target: str = Field(min_length=1, max_length=512)
    reason: str = Field(max_length=2000)
    impact: Literal["low", "medium", "high"]


class Finding(BaseModel):
    """A specialist's structured conclusion (ARCHITECTURE.md §5)."""

    agent: str
    summary: str = Field(max_length=4000)
    severity: Severity
    confidence: float = Field(ge=0.0, le=1.0)
    mitre_techniques: list[str] = Field(default_factory=list)
    iocs: list[FindingIoc] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    recommended_actions: list[RecommendedAction] = Field(default_factory=list)
    backend: Literal["builtin", "llm"] = "builtin"
    model: str | None = None
    prompt_version: str | None = None
    degraded: bool = False
    """True when the LLM was wanted but unavailable and built-in analysis answered."""
    tokens: int = Field(default=0, ge=0)
    """LLM tokens the finding cost (prompt and completion; 0 for built-in analysis)."""
