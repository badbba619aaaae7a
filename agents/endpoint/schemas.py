"""Wire models of the endpoint agent."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agents.runtime.specialist import AlertParams
from tools.logs.windows import event_id_of

Criticality = Literal["low", "medium", "high", "critical"]


class HostIn(BaseModel):
    """The host the events come from, as the asset inventory knows it."""

    model_config = ConfigDict(extra="forbid")

    hostname: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._$-]*$")
    ip: str | None = Field(default=None, max_length=64)
    os: str | None = Field(default=None, max_length=128)
    criticality: Criticality = "medium"
    """How much the business depends on the host; high and critical hosts make isolation a
    decision for a human."""
    owner: str | None = Field(default=None, max_length=256)
    tags: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("ip")
    @classmethod
    def _valid_ip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError as err:
            raise ValueError(f"not an IP address: {value[:64]!r}") from err

    @field_validator("tags")
    @classmethod
    def _short_tags(cls, value: list[str]) -> list[str]:
        if any(not tag.strip() or len(tag) > 64 for tag in value):
            raise ValueError("tags must be non-empty and at most 64 characters")
        return value


class AnalyzeEndpointRequest(AlertParams):
    """``analyze_endpoint`` params: a host and the Windows/Sysmon events seen on it."""

    host: HostIn
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    """Windows events, flat (``{EventID, Channel, Computer, ...}``) or nested as the ``evtx``
    package writes them (``{Event: {System: {...}, EventData: {...}}}``)."""
    context: str | None = Field(default=None, max_length=100_000)

    @model_validator(mode="after")
    def _valid_events(self) -> AnalyzeEndpointRequest:
        for index, raw in enumerate(self.events):
            if event_id_of(raw) is None:
                raise ValueError(
                    f"events[{index}] has no EventID (expected {{EventID, ...}} or "
                    "{Event: {System: {EventID, ...}, EventData: {...}}})"
                )
        if not self.events and not (self.context and self.context.strip()):
            raise ValueError("give some 'events' or some 'context' text")
        return self
