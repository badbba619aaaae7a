"""Wire models of the EDR routes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.schemas import PageQuery
from tools.edr.base import EdrAction, EndpointState


class EndpointSource(StrEnum):
    CONNECTOR = "connector"
    TELEMETRY = "telemetry"


class ActionState(StrEnum):
    """Where an EDR action stands (see :class:`gateway.edr.models.EdrActionRecord`)."""

    RECORDED = "recorded"
    PROPOSED = "proposed"
    AWAITING_APPROVAL = "awaiting_approval"
    DENIED = "denied"
    EXPIRED = "expired"
    REQUESTED = "requested"
    EXECUTED = "executed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


GUARDRAIL_ACTIONS: dict[EdrAction, str] = {
    EdrAction.ISOLATE: "isolate_host",
    EdrAction.UNISOLATE: "release_host",
    EdrAction.SCAN: "scan_host",
}
"""The guardrail policy's name of each EDR action (``core.guardrails.DEFAULT_ACTIONS``)."""


class EndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    hostname: str
    fqdn: str | None
    ips: list[str]
    os: str | None
    state: str
    source: str
    connector: str | None
    native_id: str | None
    details: dict[str, Any]
    first_seen: datetime
    last_seen: datetime | None
    logs_last_seen: datetime | None
    log_events: int
    updated_at: datetime
    version: int


class EdrActionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    endpoint_id: str
    hostname: str
    action: str
    status: str
    connector: str | None
    native_action_id: str | None
    mode: str
    requested_by: str
    approved_by: str | None
    reason: str
    guardrail: dict[str, Any] | None
    detail: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class AlertMention(BaseModel):
    """An alert whose entities name the endpoint."""

    id: str
    title: str
    severity: str
    status: str
    last_seen: datetime


class CaseMention(BaseModel):
    """A case with an observable naming the endpoint."""

    id: str
    title: str
    severity: str
    status: str
    observable: str


class EndpointDetail(EndpointRead):
    recent_alerts: list[AlertMention]
    cases: list[CaseMention]
    recent_actions: list[EdrActionRead]


SORTABLE = ("hostname", "last_seen", "state", "first_seen")


class EndpointListQuery(PageQuery):
    state: EndpointState | None = None
    connector: str | None = Field(default=None, min_length=1, max_length=64)
    source: EndpointSource | None = None
    search: str | None = Field(default=None, min_length=1, max_length=255)
    """A part of the host name, its FQDN or one of its addresses."""
    sort: str = Field(default="hostname", pattern=r"^-?(" + "|".join(SORTABLE) + r")$")


class EdrActionRequest(BaseModel):
    """The body of ``isolate``, ``unisolate`` and ``scan`` (optional as a whole)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, min_length=1, max_length=2000)
    """Why; shown to an approver and kept with the action."""
    comment: str | None = Field(default=None, min_length=1, max_length=1000)
    """What the product records with the action (Defender's comment); default the reason."""
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@/+-]+$"
    )
    """The same key again (from the same caller) answers the action it started, instead of
    starting another."""


class EdrActionResult(BaseModel):
    """What an action request led to: the action, and the endpoint as it stands now."""

    action: EdrActionRead
    endpoint: EndpointRead
    replayed: bool = False
    """True when the idempotency key named an action already requested."""


class ConnectorStatus(BaseModel):
    name: str
    product: str
    endpoints: int
    last_refresh: datetime | None
    error: str | None
    """Why its last inventory failed (its AURORA code and message), None when it answered."""


class EdrStats(BaseModel):
    endpoints_total: int
    endpoints_by_state: dict[str, int]
    endpoints_by_source: dict[str, int]
    endpoints_by_connector: dict[str, int]
    actions_total: int
    actions_by_status: dict[str, int]
    actions_by_connector: dict[str, dict[str, int]]
    """connector → status → count (actions never handed to a connector under ``none``)."""
    actions_by_action: dict[str, int]
    connectors: list[ConnectorStatus]
    last_refresh: datetime | None
