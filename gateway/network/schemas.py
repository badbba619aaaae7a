"""Wire models of network attacks and findings (the configuration's, the status's and the
coverage's are beside their services)."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, field_validator

from core.schemas import TAG, PageQuery, Severity, Tags
from core.validation import UtcDatetime
from gateway.network.configuration import Detector

AttackStatus = Literal["open", "promoted", "responded", "dismissed"]
ATTACK_SORTABLE: Final = ("last_seen", "first_seen", "created_at", "severity", "confidence")


class AttackRead(BaseModel):
    """A network attack as the list shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    detector: str
    title: str
    severity: Severity
    confidence: float
    status: str
    ongoing: bool = False
    """Seen within the configuration's dedupe window: a new detection of it updates this
    attack."""
    techniques: list[str]
    source_ip: str | None
    destination_ips: list[str]
    destination_ports: list[int]
    domains: list[str]
    first_seen: datetime
    last_seen: datetime
    detections: int
    case_id: str | None
    created_at: datetime
    updated_at: datetime


class AttackDetail(AttackRead):
    """An attack with its evidence, the query behind it and the events it rests on."""

    evidence: dict[str, Any]
    query: str
    event_ids: list[str]
    responses: list[dict[str, Any]]
    events: list[dict[str, Any]] = Field(default_factory=list)
    """The events behind it that the store still holds (retention may have removed some)."""


class AttackQuery(PageQuery):
    detector: Detector | None = None
    severity: Severity | None = None
    """At least this severity."""
    status: Literal["open", "promoted", "responded", "dismissed"] | None = None
    source_ip: IPvAnyAddress | None = None
    technique: str | None = Field(default=None, pattern=r"^T\d{4}(\.\d{3})?$")
    ongoing: bool | None = None
    since: UtcDatetime | None = None
    """Last seen at or after."""
    until: UtcDatetime | None = None
    """First seen before."""
    sort: str = Field(default="-last_seen", pattern=r"^-?(" + "|".join(ATTACK_SORTABLE) + r")$")


class AttackPromote(BaseModel):
    """``POST /network-attacks/{id}/case``: the case to open (defaults from the attack)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=50_000)
    severity: Severity | None = None
    assignee: str | None = Field(default=None, min_length=1, max_length=64)
    tags: Tags = Field(default_factory=list)


class AttackPromoted(BaseModel):
    attack: AttackRead
    case_id: str
    observables_added: int
    observables_skipped: list[str]


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError as err:
        raise ValueError(f"not an IP address: {value[:64]!r}") from err


class AttackDispatch(BaseModel):
    """``POST /network-attacks/{id}/dispatch``: a response through a SOAR playbook.

    By default the built-in ``network-attack-response`` playbook, with the addresses to block
    and the hosts to isolate chosen from the attack (the external party is blocked; an
    internal host that the detection says is compromised is isolated); either list can be
    given instead. Another playbook gets ``inputs`` as given, plus ``attack_id`` when its
    definition declares it. The playbook's response steps pass the guardrails, the system mode
    and human approval like every other response."""

    model_config = ConfigDict(extra="forbid")

    playbook_id: str = Field(
        default="network-attack-response", min_length=1, max_length=64, pattern=TAG.pattern
    )
    block: list[str] | None = Field(default=None, max_length=100)
    isolate: list[str] | None = Field(default=None, max_length=100)
    inputs: dict[str, Any] | None = None
    reason: str | None = Field(default=None, max_length=1000)

    @field_validator("block", "isolate")
    @classmethod
    def _addresses(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else list(dict.fromkeys(_address(v) for v in values))


class AttackDispatched(BaseModel):
    attack_id: str
    execution_id: str
    playbook_id: str
    mode: str
    status: str
    inputs: dict[str, Any]


# --- findings ---------------------------------------------------------------------------------


class AnalyzeRequest(BaseModel):
    """``POST /network-security/analyze``: what the network specialist analyses.

    Either a window of the stored telemetry (``start``/``end``, narrowed by ``query`` in the
    search language, by ``sensor`` or by an attack's events with ``attack_id``), or records
    given inline (``flows``, ``eve``: the specialist's own wire shapes)."""

    model_config = ConfigDict(extra="forbid")

    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    query: str | None = Field(default=None, max_length=8192)
    sensor: str | None = Field(default=None, min_length=1, max_length=128)
    attack_id: str | None = Field(default=None, min_length=1, max_length=32)
    flows: list[dict[str, Any]] | None = Field(default=None, max_length=20_000)
    eve: list[dict[str, Any]] | None = Field(default=None, max_length=20_000)
    iocs: list[dict[str, Any]] | None = Field(default=None, max_length=500)
    limit: int = Field(default=20_000, ge=1, le=100_000)
    """The most stored events read for a window."""


class FindingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    status: str
    requested_by: str
    created_at: datetime
    window_start: datetime | None
    window_end: datetime | None
    scope: dict[str, Any]
    attack_id: str | None
    severity: Severity
    confidence: float
    summary: str
    techniques: list[str]
    finding: dict[str, Any]
    error: str | None
    duration_ms: float


FINDING_SORTABLE: Final = ("created_at", "severity", "confidence")


class FindingQuery(PageQuery):
    severity: Severity | None = None
    """At least this severity."""
    status: Literal["succeeded", "failed"] | None = None
    technique: str | None = Field(default=None, pattern=r"^T\d{4}(\.\d{3})?$")
    attack_id: str | None = Field(default=None, max_length=32)
    since: UtcDatetime | None = None
    until: UtcDatetime | None = None
    sort: str = Field(default="-created_at", pattern=r"^-?(" + "|".join(FINDING_SORTABLE) + r")$")


class DetectorHealth(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    detector: str
    enabled: bool = True
    healthy: bool = True
    last_started_at: datetime | None = None
    last_window_end: datetime | None = None
    last_duration_ms: float | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_candidates: int = 0
    runs: int = 0
    failures: int = 0
    attacks_opened: int = 0
    attacks_updated: int = 0


class SecurityStatus(BaseModel):
    """``GET /network-security/status``."""

    scheduler: dict[str, Any]
    detectors: list[DetectorHealth]
    attacks: dict[str, Any]
    findings: dict[str, Any]
    agent: dict[str, Any]
