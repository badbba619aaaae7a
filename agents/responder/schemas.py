"""Wire models of the responder agent."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from agents.acp.finding import Finding
from core.guardrails import Criticality
from core.runtime import SystemMode

AssetKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]


class AssetIn(BaseModel):
    """What the asset inventory knows about one target (a host, an address, an account)."""

    model_config = ConfigDict(extra="forbid")

    criticality: Criticality | None = None
    """How much the business depends on it; None: the policy's default."""
    owner: str | None = Field(default=None, max_length=256)
    protected: bool = False
    """No response action may touch it (a domain controller, a safety system)."""
    blast_radius: int | None = Field(default=None, ge=1, le=10_000_000)
    """Assets or users an action on it touches (a shared server's users, a group's members)."""


class PlanResponseRequest(BaseModel):
    """``plan_response`` params: other specialists' findings, the asset inventory, the mode."""

    model_config = ConfigDict(extra="forbid")

    findings: list[Finding] = Field(min_length=1, max_length=100)
    assets: dict[AssetKey, AssetIn] = Field(default_factory=dict, max_length=10_000)
    """Target (exact name or address, or a CIDR / glob pattern) → what is known about it."""
    mode: SystemMode = SystemMode.DRY_RUN
    alert_id: str | None = Field(default=None, max_length=128)
    investigation_id: str | None = Field(default=None, max_length=128)
