"""Wire models of the network agent: flow records and Suricata eve.json events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    IPvAnyNetwork,
    field_validator,
    model_validator,
)

from agents.runtime.specialist import AlertParams, IocIn


def _aware(value: datetime) -> datetime:
    """Timestamps without a zone are taken as UTC (eve.json without an offset, epoch seconds)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class FlowIn(BaseModel):
    """One connection as a flow log records it (NetFlow/IPFIX, Zeek conn.log, firewall).

    ``bytes_out`` is what the source sent, ``bytes_in`` what it received. ``ts`` is ISO 8601
    or epoch seconds.
    """

    model_config = ConfigDict(extra="forbid")

    ts: datetime
    src_ip: IPvAnyAddress
    src_port: int | None = Field(default=None, ge=0, le=65535)
    dst_ip: IPvAnyAddress
    dst_port: int | None = Field(default=None, ge=0, le=65535)
    proto: str = Field(default="TCP", min_length=1, max_length=16)
    bytes_out: int | None = Field(default=None, ge=0)
    bytes_in: int | None = Field(default=None, ge=0)
    duration: float | None = Field(default=None, ge=0)

    @field_validator("ts")
    @classmethod
    def _zone(cls, value: datetime) -> datetime:
        return _aware(value)

    @field_validator("proto")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.strip().upper()


class EveAlert(BaseModel):
    """The ``alert`` object of a Suricata eve.json alert event."""

    model_config = ConfigDict(extra="allow")

    signature: str = Field(min_length=1, max_length=1024)
    signature_id: int | None = None
    category: str | None = Field(default=None, max_length=256)
    severity: int | None = Field(default=None, ge=0, le=255)
    action: str | None = Field(default=None, max_length=32)
    metadata: dict[str, Any] | None = None


class EveEvent(BaseModel):
    """One Suricata eve.json event: ``alert``, ``flow``, ``dns``, ``http``, ``tls`` (others
    are accepted and used for their addresses). The protocol objects are kept as sent."""

    model_config = ConfigDict(extra="allow")

    event_type: str = Field(min_length=1, max_length=32)
    timestamp: datetime | None = None
    flow_id: int | None = None
    src_ip: IPvAnyAddress | None = None
    src_port: int | None = Field(default=None, ge=0, le=65535)
    dest_ip: IPvAnyAddress | None = None
    dest_port: int | None = Field(default=None, ge=0, le=65535)
    proto: str | None = Field(default=None, max_length=16)
    alert: EveAlert | None = None
    flow: dict[str, Any] | None = None
    dns: dict[str, Any] | None = None
    http: dict[str, Any] | None = None
    tls: dict[str, Any] | None = None

    @field_validator("timestamp")
    @classmethod
    def _zone(cls, value: datetime | None) -> datetime | None:
        return _aware(value) if value is not None else None

    @model_validator(mode="after")
    def _alert_has_body(self) -> EveEvent:
        if self.event_type == "alert" and self.alert is None:
            raise ValueError("an 'alert' event needs its 'alert' object")
        return self


class AnalyzeNetworkRequest(AlertParams):
    """``analyze_network`` params: telemetry to analyse, indicators to look for, context."""

    iocs: list[IocIn] = Field(default_factory=list, max_length=500)
    """Indicators (IPs, domains) to look for in the telemetry."""
    flows: list[FlowIn] = Field(default_factory=list, max_length=100_000)
    alerts: list[EveEvent] = Field(default_factory=list, max_length=50_000)
    """Suricata eve.json events: alerts, and flow / dns / http / tls events."""
    context: str | None = Field(default=None, max_length=100_000)
    home_networks: list[IPvAnyNetwork] = Field(default_factory=list, max_length=256)
    """The organisation's address space (Suricata's HOME_NET); private ranges always count."""

    @model_validator(mode="after")
    def _something_to_analyse(self) -> AnalyzeNetworkRequest:
        if not (self.flows or self.alerts or self.iocs or (self.context and self.context.strip())):
            raise ValueError("give 'flows', 'alerts', 'iocs' or some 'context' to analyse")
        return self
