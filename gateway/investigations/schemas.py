"""Wire models of the orchestrator routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from core.schemas import PageQuery
from gateway.streams import StreamQuery

DispatchStatus = Literal["ok", "error"]


class DispatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str = Field(min_length=1, max_length=64)
    method: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    params: dict[str, Any] = Field(default_factory=dict)
    investigation_id: str | None = Field(default=None, max_length=128)
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class DispatchRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    agent: str
    method: str
    params: dict[str, Any]
    investigation_id: str | None
    status: DispatchStatus
    result: Any | None
    error: dict[str, Any] | None
    duration_ms: float
    actor: str
    created_at: datetime


class HistoryQuery(PageQuery):
    agent: str | None = Field(default=None, max_length=64)
    method: str | None = Field(default=None, max_length=128)
    status: DispatchStatus | None = None
    investigation_id: str | None = Field(default=None, max_length=128)


class IocIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=32)
    value: str = Field(min_length=1, max_length=4096)


Priority = Literal["low", "normal", "high", "urgent"]
InvestigationStatus = Literal[
    "queued", "running", "awaiting_approval", "completed", "failed", "cancelled"
]
PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


class InvestigateRequest(BaseModel):
    """What to investigate: an alert, a case, indicators or free text (at least one)."""

    model_config = ConfigDict(extra="forbid")

    alert_id: str | None = Field(default=None, max_length=32)
    case_id: str | None = Field(default=None, max_length=32)
    iocs: list[IocIn] = Field(default_factory=list, max_length=500)
    text: str | None = Field(default=None, max_length=100_000)
    command_lines: list[str] = Field(default_factory=list, max_length=200)
    hosts: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list, max_length=50
    )
    """Hosts to scope in the logs (the hunter)."""
    users: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list, max_length=50
    )
    """Accounts to scope in the logs (the hunter)."""
    priority: Priority = "normal"

    @model_validator(mode="after")
    def _something(self) -> InvestigateRequest:
        if not (
            self.alert_id
            or self.case_id
            or self.iocs
            or (self.text or "").strip()
            or self.command_lines
            or self.hosts
            or self.users
        ):
            raise ValueError(
                "give an alert_id, a case_id, iocs, text, command lines, hosts or users"
            )
        return self


class InvestigationAccepted(BaseModel):
    id: str
    status: InvestigationStatus
    priority: Priority


class InvestigationSummary(BaseModel):
    """An investigation as a list shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    status: InvestigationStatus
    priority: Priority
    alert_id: str | None
    case_id: str | None
    requested_by: str
    created_at: datetime
    finished_at: datetime | None


class InvestigationRead(InvestigationSummary):
    """An investigation in full: what it looked at, its runs, its receipt."""

    subject: dict[str, Any]
    attempts: int
    receipt: dict[str, Any] | None
    error: str | None
    started_at: datetime | None


class InvestigationQuery(PageQuery):
    status: InvestigationStatus | None = None
    priority: Priority | None = None
    alert_id: str | None = Field(default=None, max_length=32)
    case_id: str | None = Field(default=None, max_length=32)


class ReceiptStreamQuery(StreamQuery):
    investigation_id: str | None = None
    """Only this investigation's receipts (its approvals, on the approvals stream)."""


class ThoughtStreamQuery(ReceiptStreamQuery):
    agent: str | None = None
    """Only this agent's thoughts."""


class DecideMessage(BaseModel):
    """An approvals client's decision on one approval (a human with ``soar:write`` or
    ``system:write``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["decide"]
    approval_id: str = Field(min_length=1, max_length=64)
    decision: Literal["approve", "deny"]
    comment: str | None = Field(default=None, max_length=2000)


class CancelMessage(BaseModel):
    """An approvals client's cancellation of an investigation (``investigations:write``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["cancel"]
    investigation_id: str = Field(min_length=1, max_length=32)
    reason: str | None = Field(default=None, max_length=2000)


type AnyClientMessage = Annotated[DecideMessage | CancelMessage, Field(discriminator="type")]


class ClientMessage(RootModel[AnyClientMessage]):
    """What an approvals client may send."""
