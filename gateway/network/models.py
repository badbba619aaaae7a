"""Network security state: configuration versions, attacks, findings, detector state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class NetworkConfigVersion(Base):
    """One version of the network telemetry configuration: the whole document, who made it,
    when, why, and what changed from the version before. The newest is the one in force; a
    rollback is a new version whose document equals an older one's."""

    __tablename__ = "network_config_versions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    diff: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """``[{"path": "thresholds.port_scan.distinct_ports", "old": 25, "new": 40}, ...]``."""
    changed_by: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    reason: Mapped[str | None] = mapped_column(String(500))
    rollback_of: Mapped[int | None] = mapped_column()
    """The history id this version restored, when it is a rollback."""


class NetworkAttack(Base):
    """One network attack: what a detector found, kept up to date while it goes on."""

    __tablename__ = "network_attacks"
    __table_args__ = (Index("ix_network_attacks_key_last_seen", "key", "last_seen"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """``NATK-YYYY-NNNNN``."""
    detector: Mapped[str] = mapped_column(String(32), index=True)
    key: Mapped[str] = mapped_column(String(512))
    """What makes two detections the same activity (detector, source, target)."""
    title: Mapped[str] = mapped_column(String(500))
    severity: Mapped[str] = mapped_column(String(16), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    """open, promoted (a case holds it), responded (a response was dispatched), dismissed."""
    techniques: Mapped[list[str]] = mapped_column(JSON)
    source_ip: Mapped[str | None] = mapped_column(String(64), index=True)
    destination_ips: Mapped[list[str]] = mapped_column(JSON)
    destination_ports: Mapped[list[int]] = mapped_column(JSON)
    domains: Mapped[list[str]] = mapped_column(JSON)
    first_seen: Mapped[datetime] = mapped_column()
    last_seen: Mapped[datetime] = mapped_column(index=True)
    detections: Mapped[int] = mapped_column(default=1)
    """How many detector runs saw it."""
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    event_ids: Mapped[list[str]] = mapped_column(JSON)
    query: Mapped[str] = mapped_column(Text)
    case_id: Mapped[str | None] = mapped_column(String(32))
    responses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """Dispatched responses: ``{"execution_id", "playbook_id", "by", "at"}``."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NetworkFinding(Base):
    """The network specialist's finding on a window of telemetry or a set of records."""

    __tablename__ = "network_findings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """``NFND-YYYY-NNNNN``."""
    status: Mapped[str] = mapped_column(String(16), index=True)
    """succeeded or failed."""
    requested_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    window_start: Mapped[datetime | None] = mapped_column()
    window_end: Mapped[datetime | None] = mapped_column()
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    """What was analysed: the window and query, or the records given; counts of each kind."""
    attack_id: Mapped[str | None] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    techniques: Mapped[list[str]] = mapped_column(JSON)
    finding: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The specialist's whole finding (iocs, evidence, recommended actions, backend)."""
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)


class NetworkDetectorState(Base):
    """Each detector's last run and its counters (one row per detector)."""

    __tablename__ = "network_detector_state"

    detector: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_started_at: Mapped[datetime | None] = mapped_column()
    last_window_end: Mapped[datetime | None] = mapped_column()
    last_duration_ms: Mapped[float | None] = mapped_column(Float)
    last_status: Mapped[str | None] = mapped_column(String(16))
    """succeeded, failed or skipped (disabled)."""
    last_error: Mapped[str | None] = mapped_column(Text)
    last_candidates: Mapped[int] = mapped_column(default=0)
    runs: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
    attacks_opened: Mapped[int] = mapped_column(default=0)
    attacks_updated: Mapped[int] = mapped_column(default=0)
