"""Orchestrator dispatches, investigations, their approvals and the response-action ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, new_id, utcnow


class Dispatch(Base):
    __tablename__ = "orchestrator_dispatches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    agent: Mapped[str] = mapped_column(String(64), index=True)
    method: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    investigation_id: Mapped[str | None] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    """``ok`` or ``error``."""
    result: Mapped[Any | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    duration_ms: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Investigation(Base):
    """One investigation: queued durably, run by the graph, its receipt kept."""

    __tablename__ = "investigations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    priority: Mapped[str] = mapped_column(String(16), index=True)
    alert_id: Mapped[str | None] = mapped_column(String(32), index=True)
    case_id: Mapped[str | None] = mapped_column(String(32), index=True)
    subject: Mapped[dict[str, Any]] = mapped_column(JSON)
    requested_by: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    """When it first started (a resumed investigation keeps it)."""
    owner: Mapped[str | None] = mapped_column(String(128))
    """The gateway replica running it (``host:pid:tag``), while it runs."""
    heartbeat_at: Mapped[datetime | None]
    """When its owner last said it was still running it."""
    finished_at: Mapped[datetime | None]
    checkpoints_pruned_at: Mapped[datetime | None]
    """When the retention job deleted its graph checkpoints."""


class Approval(Base):
    """A human decision a response action waits for (its id is the action's key)."""

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    investigation_id: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    """What the approver sees: reason, impact, the guardrail decision and its reasons."""
    status: Mapped[str] = mapped_column(String(16), index=True)
    """``pending | approved | denied | expired | cancelled``."""
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    comment: Mapped[str | None] = mapped_column(String(2000))


class ResponseActionRecord(Base):
    """The response-action ledger: one row per action key, written before the action runs,
    so no action ever runs twice."""

    __tablename__ = "response_actions"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    investigation_id: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(String(2000))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    """``started | executed | failed``."""
    executor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
