"""Detection rules, their runs and hits, suppressions, feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, new_id, utcnow
from gateway.siem.models import Edited, SearchRun


class DetectionRule(Edited, Base):
    __tablename__ = "detection_rules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sigma_id: Mapped[str | None] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(32))
    sigma: Mapped[str] = mapped_column(Text)
    """The rule's Sigma YAML, as given."""
    condition: Mapped[str] = mapped_column(Text)
    """Its ClickHouse condition (converted once, at create or update)."""
    correlation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    techniques: Mapped[list[str]] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON)
    logsource: Mapped[dict[str, Any]] = mapped_column(JSON)
    warnings: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=False, index=True)
    interval_seconds: Mapped[int] = mapped_column(default=300)
    lookback_seconds: Mapped[int] = mapped_column(default=360)
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    last_run_at: Mapped[datetime | None]


class RuleRun(SearchRun, Base):
    __tablename__ = "detection_runs"

    rule_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``preview`` (nothing raised), ``backfill`` or ``scheduled``."""
    status: Mapped[str] = mapped_column(String(16), index=True)
    """``running | succeeded | failed``."""
    alerts: Mapped[int] = mapped_column(default=0)
    """Alerts created or merged by this run."""
    suppressed: Mapped[int] = mapped_column(default=0)
    already_seen: Mapped[int] = mapped_column(default=0)
    """Matches an earlier run of the rule had already raised."""
    sample: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class RuleHit(Base):
    """A log event a rule has raised an alert for: a re-run never raises it again."""

    __tablename__ = "detection_hits"
    __table_args__ = (UniqueConstraint("rule_id", "log_id", name="uq_detection_hits_rule_log"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    rule_id: Mapped[str] = mapped_column(String(32))
    log_id: Mapped[str] = mapped_column(String(36))
    alert_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suppression(Base):
    __tablename__ = "detection_suppressions"
    __table_args__ = (Index("ix_detection_suppressions_rule_expires", "rule_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    rule_id: Mapped[str] = mapped_column(String(32))
    match: Mapped[dict[str, str]] = mapped_column(JSON)
    """Field → value: an event whose fields all have these values is suppressed."""
    reason: Mapped[str] = mapped_column(String(2000))
    expires_at: Mapped[datetime]
    hits: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Feedback(Base):
    __tablename__ = "detection_feedback"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    rule_id: Mapped[str] = mapped_column(String(32), index=True)
    verdict: Mapped[str] = mapped_column(String(32))
    """``true_positive | false_positive | benign``."""
    comment: Mapped[str | None] = mapped_column(String(4000))
    alert_id: Mapped[str | None] = mapped_column(String(32))
    log_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
